"""Merging undersized units into a neighbour.

For each unit below the floor (smallest first) the candidates are its siblings (the same
unit of every parent level: a small neighbourhood's in its grid and its compound) that share a
boundary with it and would stay within the ceiling once merged.
The one sharing the longest boundary wins; on a tie, the smaller. The merged unit keeps
the neighbour's code and name, so only the small unit's households change unit: the
fewest a merge can move. Each unit takes part in at most one merge per plan.

Neighbours rarely share their edges vertex for vertex (two surveys, two roundings), so the
shared boundary is the length of the small unit's boundary lying within SHARE_TOLERANCE_M of
the neighbour's, and the merged unit is the union after the small unit is snapped onto the
neighbour within that tolerance: no sliver of the old seam is left, and the neighbour's outer
vertices are kept exactly, so the merged unit still matches its other neighbours.
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
SHARE_TOLERANCE_M = 0.5  # boundaries this close count as shared
METRES_PER_DEGREE = 111_320.0  # of latitude; a degree of longitude is never longer


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
    near: dict[int, shapely.Geometry] = {}  # a unit's boundary grown by the tolerance

    def shared_m(i: int, j: int) -> float:
        if j not in near:
            near[j] = shapely.buffer(bounds[j], SHARE_TOLERANCE_M)
        return float(shapely.intersection(bounds[i], near[j]).length)

    # a merged unit must lie in one unit of each parent level (a small neighbourhood in one grid
    # and one compound): siblings share every direct parent
    same = [levels.PARENT_COLUMNS[p] for p in levels.PARENTS[level]]
    used: set[int] = set()
    groups, notes = [], []
    small = sorted((i for i, r in enumerate(rows) if (r["households"] or 0) < floor),
                   key=lambda i: (rows[i]["households"] or 0, rows[i]["code"]))
    for i in small:
        if i in used:
            continue
        r = rows[i]
        best = None
        for j in tree.query(metric_geoms[i], predicate="dwithin", distance=SHARE_TOLERANCE_M).tolist():
            if j == i or j in used or any(rows[j][c] != r[c] for c in same):
                continue
            shared = shared_m(i, j)
            total = (r["households"] or 0) + (rows[j]["households"] or 0)
            if shared < MIN_SHARED_M or total > ceiling:
                continue
            key = (-shared, rows[j]["households"] or 0)
            if best is None or key < best[0]:
                best = (key, j, shared, total)
        if best is None:
            notes.append(f"{level} {r['code']} ({r['households']} households) has no neighbour in the same "
                         f"{' and '.join(c[:-3] for c in same)} that keeps a merge within {ceiling} households")
            continue
        _, j, shared, total = best
        used.update((i, j))
        groups.append({"small": rows[i], "into": rows[j], "shared_m": round(shared, 1), "households": total})
    return groups, notes


def degrees(metres: float) -> float:
    """A distance in metres as degrees, for lon/lat coordinates (never longer than `metres`)."""
    return metres / METRES_PER_DEGREE


def merged_geometry(small: shapely.Geometry, into: shapely.Geometry, level: str, label: str,
                    tolerance: float) -> shapely.Geometry:
    """The union of a small unit and the neighbour it goes into, in their own coordinates
    (`tolerance` in the same units: `degrees(SHARE_TOLERANCE_M)` for lon/lat).

    The small unit is first snapped onto the neighbour (its vertices within the tolerance move
    onto the neighbour's nearest vertex), so the seam closes where vertices nearly line up. The
    neighbour is not moved: its outer vertices are kept exactly. Whatever is left of the seam,
    thin holes and notches along both old boundaries, is filled."""
    snapped = _snap_vertices(small, _vertices_near(into, small, tolerance), tolerance)
    if not snapped.is_valid or abs(snapped.area - small.area) > 0.01 * small.area:
        snapped = small
    union = None
    if shapely.coverage_is_valid([into, snapped]):  # edges match: the coverage union keeps every vertex
        union = shapely.coverage_union_all([into, snapped])
    if union is None or not union.is_valid or union.is_empty or \
            abs(union.area - into.area - snapped.area) > 1e-6 * (into.area + snapped.area):
        union = shapely.union_all([into, snapped])
    seam = shapely.intersection(shapely.buffer(shapely.boundary(into), tolerance),
                                shapely.buffer(shapely.boundary(small), tolerance))
    merged = _close_seam(union, seam, tolerance)
    # the overlay drops vertices where two edges run straight on: put every old vertex that
    # lies on the outline back, so the other neighbours still meet the merged unit vertex for vertex
    lost = _vertices_near(shapely.geometrycollections([into, small]), merged, tolerance * 1e-6, skip=merged)
    if not lost.is_empty:
        merged = shapely.snap(merged, lost, tolerance * 1e-6)
    return geometry.normalise(_drop_holes(merged, seam), level, label)


def _snap_vertices(geom: shapely.Geometry, targets: shapely.Geometry, tolerance: float) -> shapely.Geometry:
    """`geom` with each vertex within `tolerance` of a target point moved onto the nearest one
    (indexed: quick however many vertices both have)."""
    if targets.is_empty:
        return geom
    points = shapely.get_parts(targets)
    tree = shapely.STRtree(points)

    def move(xy: np.ndarray) -> np.ndarray:
        src, dst = tree.query_nearest(shapely.points(xy), max_distance=tolerance, all_matches=False)
        out = xy.copy()
        out[src] = shapely.get_coordinates(points[dst])
        return out

    return shapely.transform(geom, move)


def _vertices_near(source: shapely.Geometry, other: shapely.Geometry, distance: float,
                   skip: shapely.Geometry | None = None) -> shapely.Geometry:
    """The vertices of `source` within `distance` of `other`'s boundary (not those of `skip`),
    as one MultiPoint: snapping to these alone is as good as to all, and far quicker."""
    coords = np.unique(shapely.get_coordinates(source), axis=0)
    if skip is not None:
        have = {tuple(c) for c in shapely.get_coordinates(skip).tolist()}
        coords = np.array([c for c in coords.tolist() if tuple(c) not in have]).reshape(-1, 2)
    edge = shapely.boundary(other)
    shapely.prepare(edge)
    return shapely.multipoints(coords[shapely.dwithin(edge, shapely.points(coords), distance)])


def _close_seam(geom: shapely.Geometry, seam: shapely.Geometry, width: float) -> shapely.Geometry:
    """`geom` with the slivers along the old seam filled: holes lying wholly in `seam`, and
    notches in it narrower than twice `width` (what a mitred closing fills). Elsewhere the
    outline is left as it is, vertex for vertex."""
    geom = _drop_holes(geom, seam)
    closed = shapely.buffer(shapely.buffer(geom, width, join_style="mitre"), -width, join_style="mitre")
    fill = [p for p in shapely.get_parts(shapely.intersection(shapely.difference(closed, geom), seam))
            if p.geom_type == "Polygon" and p.area > 1e-4 * width * width]
    return _drop_holes(shapely.union_all([geom, *fill]), seam) if fill else geom


def _drop_holes(geom: shapely.Geometry, seam: shapely.Geometry) -> shapely.Geometry:
    """`geom` without the holes lying wholly in `seam`."""
    polygons = []
    for poly in shapely.get_parts(geom):
        if poly.geom_type == "Polygon":
            holes = [ring for ring in poly.interiors if not shapely.covered_by(ring, seam)]
            polygons.append(shapely.Polygon(poly.exterior, holes))
    if not polygons:
        return geom
    return shapely.union_all(polygons) if len(polygons) > 1 else polygons[0]
