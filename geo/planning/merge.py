"""Merging undersized units into a neighbour.

For each unit below the floor (smallest first) the candidates are its siblings (same
parent) that share a boundary with it and would stay within the ceiling once merged.
The one sharing the longest boundary wins; on a tie, the smaller. The merged unit keeps
the neighbour's code and name, so only the small unit's households change unit: the
fewest a merge can move. Each unit takes part in at most one merge per plan.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo.coords import crs
from geo.errors import InvalidInput
from geo.units import geometry, levels

MERGEABLE = tuple(lv.name for lv in levels.TABLE if lv.merge_within)
MIN_SHARED_M = 1.0


def limits(level: str, floor: int | None, ceiling: int | None) -> tuple[int, int]:
    """The floor and ceiling a merge of `level` uses (the level's defaults where not given)."""
    if level not in MERGEABLE:
        raise InvalidInput(f"merging works on {', '.join(MERGEABLE)}, not {level}")
    spec = levels.BY_NAME[level]
    floor = spec.merge_floor if floor is None else floor
    ceiling = (spec.band or (0, 10**9))[1] if ceiling is None else ceiling
    assert floor is not None
    if floor <= 0 or ceiling < floor:
        raise InvalidInput(f"floor {floor} and ceiling {ceiling}: the floor must be above 0 and below the ceiling")
    return floor, ceiling


def propose(rows: list[dict[str, Any]], level: str, floor: int, ceiling: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Merge groups [{small, into, shared_m, households}] and notes on units left alone, from
    the current units of `level` (rows with geom, households, code and chain ids)."""
    if not rows:
        return [], []
    metric_geoms, _ = crs.to_metric(np.array([r["geom"] for r in rows], dtype=object))
    tree = shapely.STRtree(metric_geoms)
    bounds = shapely.boundary(metric_geoms)
    sib = levels.PARENT_COLUMNS[levels.BY_NAME[level].merge_within or ""]
    used: set[int] = set()
    groups, notes = [], []
    small = sorted((i for i, r in enumerate(rows) if (r["households"] or 0) < floor),
                   key=lambda i: (rows[i]["households"] or 0, rows[i]["code"]))
    for i in small:
        if i in used:
            continue
        r = rows[i]
        best = None
        for j in tree.query(metric_geoms[i], predicate="intersects").tolist():
            if j == i or j in used or rows[j][sib] != r[sib]:
                continue
            shared = float(shapely.intersection(bounds[i], bounds[j]).length)
            total = (r["households"] or 0) + (rows[j]["households"] or 0)
            if shared < MIN_SHARED_M or total > ceiling:
                continue
            key = (-shared, rows[j]["households"] or 0)
            if best is None or key < best[0]:
                best = (key, j, shared, total)
        if best is None:
            notes.append(f"{level} {r['code']} ({r['households']} households) has no neighbour in the same "
                         f"{sib[:-3]} that keeps a merge within {ceiling} households")
            continue
        _, j, shared, total = best
        used.update((i, j))
        groups.append({"small": rows[i], "into": rows[j], "shared_m": round(shared, 1), "households": total})
    return groups, notes


def merged_geometry(a: shapely.Geometry, b: shapely.Geometry, level: str, label: str) -> shapely.Geometry:
    """The union of two neighbours. Where they share edges vertex for vertex, the coverage
    union keeps every outer vertex, so the merged unit still matches its other neighbours
    edge for edge; otherwise an ordinary union."""
    union = shapely.coverage_union_all([a, b])
    if not union.is_valid or union.is_empty or abs(union.area - a.area - b.area) > 1e-6 * (a.area + b.area):
        union = shapely.union_all([a, b])
    return geometry.normalise(union, level, label)
