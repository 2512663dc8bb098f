"""The pieces a community is split into communities from: its whole grids, joined where one
compound spans several, so no grid and no compound is cut. Metric CRS."""

from __future__ import annotations

import numpy as np
import shapely

from geo.planning.atoms import NODE_GRID_M, Feature, union_find


def grid_clusters(grids: list[Feature], compounds: list[Feature]) -> list[Feature]:
    """Whole grids, one feature per group of grids that a compound ties together."""
    find, join = union_find(len(grids))
    if grids and compounds:
        tree = shapely.STRtree(np.array([g.geom for g in grids], dtype=object))
        for c in compounds:
            hits = [int(h) for h in tree.query(c.geom, predicate="intersects")
                    if shapely.intersection(grids[int(h)].geom, c.geom).area > 1.0]
            for h in hits[1:]:
                join(h, hits[0])
    groups: dict[int, list[int]] = {}
    for i in range(len(grids)):
        groups.setdefault(find(i), []).append(i)
    return [Feature("+".join(grids[i].code for i in idx),
                    shapely.union_all([grids[i].geom for i in idx], grid_size=NODE_GRID_M),
                    sum(grids[i].households for i in idx))
            for idx in groups.values()]
