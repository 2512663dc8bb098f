"""What people do with gridmap, one module per kind of work: each use case owns its
transaction and writes its audit row in it. boundaries.py is the redraw pipeline every
change to units goes through; units.py loads, edits and exports units; plans.py draws,
edits, commits and discards plans; incidents.py takes reports in and moves them;
keys.py creates and revokes API keys; validation.py checks the stored units;
locators.py keeps each process's in-memory index for /locate and intake."""
