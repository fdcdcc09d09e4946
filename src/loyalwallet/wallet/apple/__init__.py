"""apple."""
