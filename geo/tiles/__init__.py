"""Vector-tile maths and the GCJ-02 shift of tiles (no database: geo/db/tiles.py builds them)."""
