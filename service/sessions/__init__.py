"""Domain services for the persisted Garmin session."""
