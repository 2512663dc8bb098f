"""The unit model without the database: the levels as one table (levels.py), codes, geometry
checks and repairs, a unit on its way in (model.py) and where it lies among the stored ones
(containment.py)."""
