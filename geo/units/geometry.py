"""Checks and repairs applied to every geometry before it is stored.

- coordinates must be longitude/latitude in the plausible area (an argument: China unless
  GRIDMAP_BOUNDS says otherwise); swapped lat/lon and projected metres are recognised and named;
- an invalid polygon is repaired (make_valid) only when the repair changes its area
  by less than 0.1 %; otherwise it is rejected, naming the unit;
- units are stored as MultiPolygons (a building may also be a Point).
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon

from geo.coords.points import Area, latitude_first
from geo.errors import InvalidInput

MAX_REPAIR_AREA_CHANGE = 0.001  # 0.1 %
# a street's outline traced from imagery has a few thousand vertices; far more is an error (or
# an attack: repairing a self-crossing polygon of a million vertices would take minutes)
MAX_VERTICES = 100_000


def check_coordinates(geoms: np.ndarray, labels: list[str], area: Area) -> None:
    """Raise InvalidInput for the first geometry whose coordinates are not plausible lon/lat."""
    minx, miny, maxx, maxy = area
    bounds = shapely.bounds(np.asarray(geoms, dtype=object))
    finite = np.isfinite(bounds).all(axis=1)
    inside = (
        finite & (bounds[:, 0] >= minx) & (bounds[:, 2] <= maxx)
        & (bounds[:, 1] >= miny) & (bounds[:, 3] <= maxy)
    )
    if inside.all():
        return
    i = int(np.flatnonzero(~inside)[0])
    label = labels[i]
    if not finite[i]:
        raise InvalidInput(f"{label}: geometry has NaN or infinite coordinates, or is empty")
    x0, y0, x1, y1 = bounds[i]
    if latitude_first([x0, x1], [y0, y1], area).all():
        raise InvalidInput(
            f"{label}: coordinates look like latitude, longitude (first value {x0:.5f}, second {y0:.5f}); "
            "gridmap expects longitude first: swap the axes in the file"
        )
    if abs(x0) > 180 or abs(x1) > 180 or abs(y0) > 90 or abs(y1) > 90:
        raise InvalidInput(
            f"{label}: coordinates ({x0:.1f}, {y0:.1f}) are not longitude/latitude; they look "
            "projected (metres): pass the file's CRS with --crs, e.g. --crs EPSG:4547"
        )
    raise InvalidInput(
        f"{label}: coordinates ({x0:.5f}, {y0:.5f}) lie outside the plausible area "
        f"lon {minx}..{maxx}, lat {miny}..{maxy}: check the CRS (--crs) "
        "or set GRIDMAP_BOUNDS for data elsewhere"
    )


def polygons_of(geom: shapely.Geometry) -> MultiPolygon:
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    polys: list[Polygon] = []
    for part in parts:
        polys.extend(part.geoms if isinstance(part, MultiPolygon) else [part])
    return MultiPolygon(polys)


def normalise(geom: shapely.Geometry | None, level: str, label: str) -> shapely.Geometry:
    """A valid MultiPolygon (or a Point for a building), repaired within 0.1 % or refused."""
    if geom is None or geom.is_empty:
        raise InvalidInput(f"{label}: geometry is missing or empty")
    vertices = shapely.get_num_coordinates(geom)
    if vertices > MAX_VERTICES:
        raise InvalidInput(f"{label}: geometry has {vertices:,} vertices, more than the {MAX_VERTICES:,} "
                           "gridmap takes for one unit: simplify it (e.g. to 0.1 m) first")
    geom = shapely.force_2d(geom)
    if isinstance(geom, Point):
        if level != "building":
            raise InvalidInput(f"{label}: a {level} must be a polygon, not a point")
        return geom
    if not isinstance(geom, (Polygon, MultiPolygon)):
        raise InvalidInput(f"{label}: a {level} must be a Polygon or MultiPolygon, not a {geom.geom_type}")
    if geom.is_valid:
        return polygons_of(geom)
    reason = shapely.is_valid_reason(geom)
    repaired = polygons_of(shapely.make_valid(geom))
    before = abs(geom.area)
    after = repaired.area
    change = abs(after - before) / before if before > 0 else float("inf")
    if repaired.is_empty or change >= MAX_REPAIR_AREA_CHANGE:
        raise InvalidInput(
            f"{label}: invalid geometry ({reason}); repairing it would change its area by "
            f"{'more than 100' if change == float('inf') else f'{change * 100:.2f}'} %, "
            "which is more than the 0.1 % gridmap repairs by itself: fix the polygon in the source"
        )
    return repaired
