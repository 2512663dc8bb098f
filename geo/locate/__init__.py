"""Which units hold a point, in memory: a grid index per level (index.py) and the chain of
parents (locator.py). No database here: geo/db/units.py reads the rows an index is built from."""
