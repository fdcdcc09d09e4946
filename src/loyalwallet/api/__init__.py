"""FastAPI app assembly, authentication and problem+json errors."""
