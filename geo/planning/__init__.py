"""Planning without the database, in a metric CRS: splitting an area into balanced,
contiguous, compact parts (atoms → graph → search, refine), small neighbourhoods
(neighbourhoods.py), communities from whole grids (communities.py), merging (merge.py),
codes and names for new units (naming.py), the quality figures (quality.py), tiling and
the checks of stored units (tiling.py, checks.py), and a plan against today (compare.py)."""
