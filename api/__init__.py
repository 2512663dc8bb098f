"""The HTTP API (FastAPI). Requests enter in api.app and reach the store in geo.store."""
