"""Coordinate systems: parsing and reprojecting (crs.py), GCJ-02 and BD-09 (datums.py), and the
checks of positions and boxes clients send (points.py)."""
