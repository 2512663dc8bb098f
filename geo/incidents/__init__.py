"""Incidents without the database: the lifecycle and its rules (lifecycle.py), who takes an
incident (dispatch.py), statistics from counted rows (stats.py), reading hotline exports
(importing.py) and generating realistic ones (sample.py)."""
