"""A small FastAPI app and a load generator, run as real processes by the app tests."""
