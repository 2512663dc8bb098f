"""Positions and boxes as clients send them: checked, named when wrong, converted to WGS84.

Every check takes the plausible area (GRIDMAP_BOUNDS, China by default) as an argument.
One rule says when two numbers were sent latitude first (`latitude_first`); the checks of
points, of geometries (geo/units/geometry.py) and of bounding boxes all ask it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from geo.coords import crs as crsmod
from geo.errors import InvalidInput

Area = tuple[float, float, float, float]  # minlon, minlat, maxlon, maxlat
BBox = tuple[float, float, float, float]
CHINA: Area = (73.0, 3.0, 136.0, 54.0)  # the plausible area unless GRIDMAP_BOUNDS says otherwise


def inside(x: npt.ArrayLike, y: npt.ArrayLike, area: Area) -> npt.NDArray[np.bool_]:
    """Where (x, y) lies in the area (NaN and infinities never do: they fail every comparison)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    minx, miny, maxx, maxy = area
    found: npt.NDArray[np.bool_] = (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
    return found


def latitude_first(x: npt.ArrayLike, y: npt.ArrayLike, area: Area) -> npt.NDArray[np.bool_]:
    """Where (x, y) makes sense only read the other way round: outside the area but inside it
    swapped, or a latitude beyond ±90 that would be a fine longitude with a fine latitude."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    return _latitude_first(x, y, area, inside(x, y, area))


def _latitude_first(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], area: Area,
                    here: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    beyond = (np.abs(y) > 90) & (np.abs(y) <= 180) & (np.abs(x) <= 90)
    swapped: npt.NDArray[np.bool_] = (~here & inside(y, x, area)) | beyond
    return swapped


def check_points(x: npt.ArrayLike, y: npt.ArrayLike, area: Area, labels: list[str] | None = None) -> None:
    """Raise InvalidInput for the first point that is not a plausible longitude/latitude.

    A point outside the plausible area is fine (it lies outside every unit) unless its
    coordinates only make sense swapped, or are not longitude/latitude at all.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    here = inside(x, y, area)
    if here.all():  # the common case, and a cheap one: /locate asks this for every point
        return
    in_range = (np.abs(x) <= 180) & (np.abs(y) <= 90)
    swapped = _latitude_first(x, y, area, here)
    bad = ~in_range | swapped
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    label = labels[i] if labels else f"point {i + 1}"
    if not (np.isfinite(x[i]) and np.isfinite(y[i])):
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


def check_converted(x: npt.ArrayLike, y: npt.ArrayLike, source_name: str, area: Area,
                    labels: list[str] | None = None) -> None:
    """After converting from a projected CRS: a point far outside the plausible area means
    the CRS or the axis order is wrong, not that the point lies elsewhere."""
    here = inside(x, y, area)
    if here.all():
        return
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    i = int(np.flatnonzero(~here)[0])
    label = labels[i] if labels else f"point {i + 1}"
    minx, miny, maxx, maxy = area
    raise InvalidInput(
        f"{label}: in {source_name} it lands at ({x[i]:.5f}, {y[i]:.5f}), outside the plausible area "
        f"lon {minx}..{maxx}, lat {miny}..{maxy}: check the CRS and that x (easting) comes first"
    )


def to_wgs84(x: npt.ArrayLike, y: npt.ArrayLike, crs_text: str, area: Area,
             labels: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """Points a client sent in `crs_text`, checked and converted: (lon, lat, CRS name).

    Lon/lat input is checked before converting (swapped axes, NaN, out of range); the
    result is checked after, and projected input must land in the plausible area."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    source = crsmod.parse(crs_text)
    projected = not isinstance(source, crsmod.Obfuscated) and source.is_projected
    if not projected or not (np.isfinite(x).all() and np.isfinite(y).all()):
        check_points(x, y, area, labels)
    lon, lat = crsmod.points_to_wgs84(x, y, source)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    check_points(lon, lat, area, labels)
    if projected:
        check_converted(lon, lat, crsmod.name(source), area, labels)
    return lon, lat, crsmod.name(source)


def point_to_wgs84(lon: float, lat: float, crs_text: str, area: Area) -> tuple[float, float, str]:
    """One position in WGS84 (a report's), or InvalidInput naming what is wrong with it."""
    wx, wy, source = to_wgs84([lon], [lat], crs_text, area, ["position"])
    return float(wx[0]), float(wy[0]), source


def parse_bbox(text: str | None, *, required: bool = False) -> BBox | None:
    """minlon,minlat,maxlon,maxlat in WGS84 (CRS84), or InvalidInput naming what is wrong."""
    if text is None or not text.strip():
        if required:
            raise InvalidInput("give a bbox: minlon,minlat,maxlon,maxlat")
        return None
    try:
        values: Sequence[float] = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidInput(f"bbox {text!r} is not four numbers minlon,minlat,maxlon,maxlat") from None
    if len(values) == 6:
        raise InvalidInput(f"bbox {text!r} has six numbers (a 3D box): the features are 2D, "
                           "give four: minlon,minlat,maxlon,maxlat")
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidInput(f"bbox {text!r} is not four numbers minlon,minlat,maxlon,maxlat")
    minx, miny, maxx, maxy = values
    if latitude_first([minx, maxx], [miny, maxy], (-180.0, -90.0, 180.0, 90.0)).any():
        raise InvalidInput(f"bbox {text!r} has latitudes beyond ±90 and looks like lat,lon: give "
                           "longitude first (lon first: minlon,minlat,maxlon,maxlat)")
    if any(abs(v) > 180 for v in (minx, maxx)) or any(abs(v) > 90 for v in (miny, maxy)):
        raise InvalidInput(f"bbox {text!r} is outside longitude -180..180, latitude -90..90: "
                           "give degrees in CRS84 (WGS84 lon/lat), not projected metres")
    if miny > maxy:
        raise InvalidInput(f"bbox {text!r}: minlat {miny} is north of maxlat {maxy}: give the south edge first")
    if minx > maxx:
        raise InvalidInput(f"bbox {text!r}: minlon {minx} is east of maxlon {maxx}: give the west edge "
                           "first (a box across the antimeridian is not supported)")
    return minx, miny, maxx, maxy
