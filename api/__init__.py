"""The HTTP API (FastAPI): api/app.py builds the app; a route in api/routes/ parses, calls geo,
and renders (docs/architecture.md)."""
