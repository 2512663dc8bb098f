"""Database access: connection settings, migrations and the embedded PostGIS cluster."""
