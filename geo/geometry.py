"""Checks and repairs applied to every geometry before it is stored.

- coordinates must be longitude/latitude in a plausible area (China by default,
  GRIDMAP_BOUNDS="minlon,minlat,maxlon,maxlat" to change it); swapped lat/lon and
  projected metres are recognised and named;
- an invalid polygon is repaired (make_valid) only when the repair changes its area
  by less than 0.1 %; otherwise it is rejected, naming the unit;
- units are stored as MultiPolygons (a building may also be a Point).
"""

from __future__ import annotations

import os

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon

from geo.errors import InvalidInput

CHINA = (73.0, 3.0, 136.0, 54.0)
MAX_REPAIR_AREA_CHANGE = 0.001  # 0.1 %
# a street's outline traced from imagery has a few thousand vertices; far more is an error (or
# an attack: repairing a self-crossing polygon of a million vertices would take minutes)
MAX_VERTICES = 100_000


def plausible_bounds() -> tuple[float, float, float, float]:
    text = os.environ.get("GRIDMAP_BOUNDS")
    if not text:
        return CHINA
    try:
        minx, miny, maxx, maxy = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInput(f"GRIDMAP_BOUNDS={text!r} is not minlon,minlat,maxlon,maxlat") from None
    return minx, miny, maxx, maxy


def check_coordinates(geoms: np.ndarray, labels: list[str]) -> None:
    """Raise InvalidInput for the first geometry whose coordinates are not plausible lon/lat."""
    minx, miny, maxx, maxy = plausible_bounds()
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
    swapped = (miny <= x0 and x1 <= maxy and minx <= y0 and y1 <= maxx)
    if swapped:
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


def _polygons_of(geom) -> MultiPolygon:
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    polys: list[Polygon] = []
    for part in parts:
        polys.extend(part.geoms if isinstance(part, MultiPolygon) else [part])
    return MultiPolygon(polys)


def normalise(geom, level: str, label: str):
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
        return _polygons_of(geom)
    reason = shapely.is_valid_reason(geom)
    repaired = _polygons_of(shapely.make_valid(geom))
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


def check_points(x: np.ndarray, y: np.ndarray, labels: list[str] | None = None) -> None:
    """Raise InvalidInput for the first point that is not a plausible longitude/latitude.

    A point outside the plausible area is fine (it lies outside every unit) unless its
    coordinates only make sense swapped, or are not longitude/latitude at all.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    minx, miny, maxx, maxy = plausible_bounds()
    finite = np.isfinite(x) & np.isfinite(y)
    in_range = finite & (np.abs(x) <= 180) & (np.abs(y) <= 90)
    here = (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
    swapped = (y >= minx) & (y <= maxx) & (x >= miny) & (x <= maxy)
    bad = ~in_range | (~here & swapped)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    label = labels[i] if labels else f"point {i + 1}"
    if not finite[i]:
        raise InvalidInput(f"{label}: coordinates must be finite numbers, not ({x[i]}, {y[i]})")
    if swapped[i]:
        raise InvalidInput(
            f"{label}: ({x[i]}, {y[i]}) looks like latitude, longitude; give longitude first "
            f"(lon={y[i]}, lat={x[i]})"
        )
    raise InvalidInput(
        f"{label}: ({x[i]}, {y[i]}) is not a longitude/latitude (lon -180..180, lat -90..90); "
        "for projected coordinates name the CRS (crs=EPSG:nnnn)"
    )


def check_converted(x: np.ndarray, y: np.ndarray, source_name: str, labels: list[str] | None = None) -> None:
    """After converting from a projected CRS: a point far outside the plausible area means
    the CRS or the axis order is wrong, not that the point lies elsewhere."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    minx, miny, maxx, maxy = plausible_bounds()
    here = np.isfinite(x) & np.isfinite(y) & (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
    if here.all():
        return
    i = int(np.flatnonzero(~here)[0])
    label = labels[i] if labels else f"point {i + 1}"
    raise InvalidInput(
        f"{label}: in {source_name} it lands at ({x[i]:.5f}, {y[i]:.5f}), outside the plausible area "
        f"lon {minx}..{maxx}, lat {miny}..{maxy}: check the CRS and that x (easting) comes first"
    )


def points_to_wgs84(x, y, crs_text: str, labels: list[str] | None = None):
    """Points a client sent in `crs_text`, checked and converted: (lon, lat, CRS name).

    Lon/lat input is checked before converting (swapped axes, NaN, out of range); the
    result is checked after, and projected input must land in the plausible area."""
    from geo import crs as crsmod

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    source = crsmod.parse(crs_text)
    projected = not isinstance(source, crsmod.Obfuscated) and source.is_projected
    if not projected or not (np.isfinite(x).all() and np.isfinite(y).all()):
        check_points(x, y, labels)
    lon, lat = crsmod.points_to_wgs84(x, y, source)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    check_points(lon, lat, labels)
    if projected:
        check_converted(lon, lat, crsmod.name(source), labels)
    return lon, lat, crsmod.name(source)
