"""The garth engine: the only package of the service that imports garth."""
