"""HTTP layer: middlewares, request parsing and the versioned routes."""
