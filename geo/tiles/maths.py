"""Tile maths for Mapbox vector tiles in the XYZ scheme of web maps (web mercator, EPSG:3857,
y counted from the north), and the GCJ-02 shift that lines tiles up with Amap/Gaode.

GCJ-02 (`datum="gcj02"`) tiles line up with Amap/Gaode base tiles. The GCJ-02 offset
changes too fast to move a tile by one offset (translating by the offset at the tile
centre is off by up to 10 m over a z13 tile and 41 m at z11), so every vertex is moved
exactly with geo.coords.datums; `gcj02_source_box` says which WGS84 units can land in a tile.
The queries that build tiles are geo/db/tiles.py's.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

import numpy as np
import numpy.typing as npt
import shapely

from geo.coords import datums
from geo.errors import InvalidInput

EXTENT = 4096  # tile units across a tile
BUFFER = 64  # tile units kept beyond each edge, so strokes do not stop at tile edges
MAX_ZOOM = 22
SMALL = 8  # tile units: a polygon smaller than this both ways is left out (1 px of a 512-px tile)
DATUMS = ("wgs84", "gcj02")
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"
FORMAT = 1  # bump when the layout of a tile changes, so caches drop old tiles

_HALF_WORLD = math.pi * 6378137.0  # web mercator: x and y run from -this to +this
# Bounds on the GCJ-02 offset inside China's box, measured on a 2000 x 2000 lattice with
# margin to spare: it changes by at most this share of the distance between two points
# (measured 0.008), and is at most this many degrees either way (measured 0.0108).
_GCJ_GRADIENT = 0.02
_GCJ_MAX_OFFSET_DEG = 0.012
_GCJ_SLACK_DEG = 1e-4


def _whole(name: str, text: str | int, low: int, high: int, why: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}{why}, not {str(text)!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name}={value} is outside {low}..{high}{why}")
    return value


def parse_tile(z: str | int, x: str | int, y: str | int) -> tuple[int, int, int]:
    """z, x and y of an XYZ tile, or InvalidInput naming what is out of range."""
    zi = _whole("z", z, 0, MAX_ZOOM, " (the zoom level)")
    last = 2**zi - 1
    why = f" at zoom {zi} (XYZ tiles, x from the west, y from the north)"
    return zi, _whole("x", x, 0, last, why), _whole("y", y, 0, last, why)


def parse_datum(text: str | None) -> str:
    key = (text or "wgs84").strip().lower().replace("-", "")
    if key in DATUMS:
        return key
    hint = " (Baidu maps use their own tiling, not XYZ web mercator)" if key.startswith("bd09") else ""
    raise InvalidInput(f"unknown datum {text!r}: use wgs84 (OpenStreetMap and most base maps) "
                       f"or gcj02 (Amap/Gaode, Tencent){hint}")


def mercator_bounds(z: int, x: int, y: int, margin: float = 0.0) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a tile in EPSG:3857 metres, widened by `margin` tiles as
    ST_TileEnvelope widens it: never beyond the poles' edge of the world, and not at all at z0."""
    size = 2 * _HALF_WORLD / 2**z
    margin = margin if z > 0 else 0.0
    minx = -_HALF_WORLD + (x - margin) * size
    maxy = _HALF_WORLD - (y - margin) * size
    miny = maxy - (1 + 2 * margin) * size
    return minx, max(miny, -_HALF_WORLD), minx + (1 + 2 * margin) * size, min(maxy, _HALF_WORLD)


def mercator_to_lonlat(mx: npt.ArrayLike, my: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    lon = np.degrees(np.asarray(mx, dtype=float) / 6378137.0)
    lat = np.degrees(2 * np.arctan(np.exp(np.asarray(my, dtype=float) / 6378137.0)) - np.pi / 2)
    return lon, lat


def lonlat_to_mercator(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    lat = np.clip(np.asarray(lat, dtype=float), -85.06, 85.06)
    mx = np.radians(np.asarray(lon, dtype=float)) * 6378137.0
    my = 6378137.0 * np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))
    return mx, my


def lonlat_bounds(z: int, x: int, y: int, margin: float = 0.0) -> tuple[float, float, float, float]:
    minx, miny, maxx, maxy = mercator_bounds(z, x, y, margin)
    (west, east), (south, north) = mercator_to_lonlat([minx, maxx], [miny, maxy])
    return float(west), float(south), float(east), float(north)


def tile_at(lon: float, lat: float, z: int) -> tuple[int, int]:
    """x and y of the tile holding a WGS84 point at zoom z."""
    mx, my = lonlat_to_mercator(lon, lat)
    size = 2 * _HALF_WORLD / 2**z
    last = 2**z - 1
    x = int(min(max((float(mx) + _HALF_WORLD) // size, 0), last))
    y = int(min(max((_HALF_WORLD - float(my)) // size, 0), last))
    return x, y


def small_sizes(z: int, x: int, y: int) -> tuple[float, float]:
    """Width (degrees of longitude) and height (degrees of latitude) of SMALL tile units
    near the tile's centre."""
    unit = 360.0 / 2**z / EXTENT
    _, south, _, north = lonlat_bounds(z, x, y)
    return SMALL * unit, SMALL * unit * math.cos(math.radians((south + north) / 2))


def gcj02_source_box(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """A WGS84 box holding every point that GCJ-02 moves into the tile (with its buffer).

    Outside China points do not move. Inside, a point q of the tile comes from p = q - d(p),
    and d(p) differs from the offset d(c) at the tile's centre by at most the offset's
    gradient times the distance from p to c. A tile across the edge of China's box gets the
    whole largest offset as well, since d jumps there."""
    west, south, east, north = lonlat_bounds(z, x, y, BUFFER / EXTENT)
    clon, clat = (west + east) / 2, (south + north) / 2
    glon, glat = datums.wgs84_to_gcj02(clon, clat)
    dlon, dlat = glon - clon, glat - clat
    reach = _GCJ_GRADIENT * (math.hypot(east - west, north - south) / 2 + _GCJ_MAX_OFFSET_DEG) + _GCJ_SLACK_DEG
    corners = datums.in_china([west, west, east, east], [south, north, south, north])
    if corners.any() and not corners.all():
        reach += _GCJ_MAX_OFFSET_DEG
    return (min(west, west - dlon) - reach, min(south, south - dlat) - reach,
            max(east, east - dlon) + reach, max(north, north - dlat) + reach)


def to_gcj02(geoms: np.ndarray) -> np.ndarray:
    """WGS84 geometries with every vertex moved to GCJ-02."""
    def shift(xy: np.ndarray) -> np.ndarray:
        lon, lat = datums.wgs84_to_gcj02(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    moved: np.ndarray = shapely.transform(geoms, shift)
    return moved


def etag(level: str, state: str, *, as_of: datetime | None, datum: str) -> str:
    """A weak ETag for a tile of `level` whose units are in `state` (geo/db/tiles.py level_state):
    weak, since the bytes of equal tiles may differ (ST_AsMVT orders keys as it goes)."""
    key = "|".join((str(FORMAT), level, state, datum, as_of.isoformat() if as_of else ""))
    return 'W/"' + hashlib.sha1(key.encode()).hexdigest()[:20] + '"'
