"""Mapbox vector tiles of the units, straight from PostGIS.

A map of a whole city (65,000 grids) cannot embed GeoJSON, so the units come as MVT
tiles in the XYZ scheme of web maps (web mercator, EPSG:3857, y counted from the north).
Each tile has one layer named after the level; each feature carries the unit id as its
id and `id`, `code`, `name`, `level`, `households`, `parent_id` (the unit's first direct
parent: street of a community, community of a grid or compound, grid of a small
neighbourhood, compound of a building) and `band` ("below", "in" or "above" the level's
household band, for levels that have one). A property that is NULL is left out.

One query builds a tile: the tile's envelope (with its buffer) is transformed once to
EPSG:4326, where units are stored, so the GiST index finds the candidates; only those
are projected, clipped and quantised by ST_AsMVTGeom and encoded by ST_AsMVT.

Small polygons: a polygon whose bounding box is less than one pixel of a 512-px tile
(8 of the 4096 tile units) both ways is left out. At the zooms a level is meant for
this drops nothing, but it keeps low-zoom tiles from carrying thousands of sub-pixel
units (a grid-level tile over a whole city at z9: 6.5 MB to 0.6 MB).

GCJ-02 (`datum="gcj02"`) tiles line up with Amap/Gaode base tiles. The GCJ-02 offset
changes too fast to move a tile by one offset (translating by the offset at the tile
centre is off by up to 10 m over a z13 tile and 41 m at z11), so every vertex is moved
exactly with geo.datums: the candidate units are read as WKB, shifted in numpy and
handed back to the same encoding query.
"""

from __future__ import annotations

import hashlib
import math
import threading
from datetime import datetime

import numpy as np
import psycopg
import shapely

from geo import datums, levels, store
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


# ---------------------------------------------------------------------------
# Tile maths
# ---------------------------------------------------------------------------

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


def mercator_to_lonlat(mx, my):
    lon = np.degrees(np.asarray(mx, dtype=float) / 6378137.0)
    lat = np.degrees(2 * np.arctan(np.exp(np.asarray(my, dtype=float) / 6378137.0)) - np.pi / 2)
    return lon, lat


def lonlat_to_mercator(lon, lat):
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


def _small_sizes(z: int, x: int, y: int) -> tuple[float, float]:
    """Width (degrees of longitude) and height (degrees of latitude) of SMALL tile units
    near the tile's centre."""
    unit = 360.0 / 2**z / EXTENT
    _, south, _, north = lonlat_bounds(z, x, y)
    return SMALL * unit, SMALL * unit * math.cos(math.radians((south + north) / 2))


# ---------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------

def _properties(level: str) -> str:
    cols = ["v.unit_id AS fid", "v.unit_id AS id", "v.code", "v.name", "v.level", "v.households"]
    if levels.PARENTS[level]:
        cols.append(f"v.{levels.PARENT_COLUMNS[levels.PARENTS[level][0]]} AS parent_id")
    if level in levels.HOUSEHOLD_BANDS:
        low, high = levels.HOUSEHOLD_BANDS[level]
        cols.append(f"CASE WHEN v.households < {int(low)} THEN 'below' WHEN v.households > {int(high)} "
                    "THEN 'above' WHEN v.households IS NOT NULL THEN 'in' END AS band")
    return ", ".join(cols)


_ENCODE = """
    SELECT ST_AsMVT(t, %s, {extent}, 'geom', 'fid') FROM (
        SELECT {properties},
               ST_AsMVTGeom(ST_Transform({geom}, 3857), ST_TileEnvelope(%s, %s, %s), {extent}, {buffer}, true) AS geom
        FROM {source}
    ) t WHERE t.geom IS NOT NULL
"""


def _encode_sql(level: str, geom: str, source: str) -> str:
    return _ENCODE.format(extent=EXTENT, buffer=BUFFER, properties=_properties(level), geom=geom,
                          source=source)


def _selection(level: str, as_of: datetime | None, box_sql: str, z: int, x: int,
               y: int) -> tuple[str, list, list]:
    """A WHERE clause picking the units of `level` valid at `as_of` whose bounding box meets
    `box_sql` (a 4326 geometry) and that are not too small to see at this zoom; the
    parameters before the box's, and those after it."""
    when, params = store._time_filter(as_of, "v")
    small_w, small_h = _small_sizes(z, x, y)
    sql = (f"{when} AND v.level = %s AND v.geom && {box_sql} AND (GeometryType(v.geom) <> 'MULTIPOLYGON' "
           "OR ST_XMax(v.geom) - ST_XMin(v.geom) >= %s OR ST_YMax(v.geom) - ST_YMin(v.geom) >= %s)")
    return sql, [*params, level], [small_w, small_h]


def render(conn: psycopg.Connection, level: str, z: int, x: int, y: int, *,
           as_of: datetime | None = None, datum: str = "wgs84") -> bytes:
    """The MVT tile (bytes; empty when no unit reaches the tile)."""
    conn.execute("SET LOCAL jit = off")  # compiling costs more than it saves on one tile
    if datum == "gcj02":
        return _render_gcj02(conn, level, z, x, y, as_of)
    row = conn.execute(*tile_query(level, z, x, y, as_of)).fetchone()
    return bytes(row[0] or b"")


def tile_query(level: str, z: int, x: int, y: int, as_of: datetime | None = None) -> tuple[str, list]:
    """The one query (and its parameters) that builds a WGS84 tile. The tile's envelope, with
    its buffer, is transformed to EPSG:4326 once, so `&&` on the stored geometry uses the GiST
    index; only the units found are projected to web mercator."""
    box = "ST_Transform(ST_TileEnvelope(%s, %s, %s, margin => %s), 4326)"
    where, params, small = _selection(level, as_of, box, z, x, y)
    sql = _encode_sql(level, "v.geom", f"unit_version v WHERE {where}")
    return sql, [level, z, x, y, *params, z, x, y, BUFFER / EXTENT, *small]


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

    return shapely.transform(geoms, shift)


def _render_gcj02(conn, level: str, z: int, x: int, y: int, as_of: datetime | None) -> bytes:
    where, params, small = _selection(level, as_of, "ST_MakeEnvelope(%s, %s, %s, %s, 4326)", z, x, y)
    rows = conn.execute(
        f"SELECT v.id, ST_AsBinary(v.geom) FROM unit_version v WHERE {where}",
        [*params, *gcj02_source_box(z, x, y), *small],
    ).fetchall()
    if not rows:
        return b""
    moved = to_gcj02(shapely.from_wkb([bytes(r[1]) for r in rows]))
    source = "unnest(%s::bigint[], %s::bytea[]) AS s(vid, wkb) JOIN unit_version v ON v.id = s.vid"
    sql = _encode_sql(level, "ST_GeomFromWKB(s.wkb, 4326)", source)
    row = conn.execute(sql, [level, z, x, y, [r[0] for r in rows], list(shapely.to_wkb(moved))]).fetchone()
    return bytes(row[0] or b"")


# ---------------------------------------------------------------------------
# Cache validators
# ---------------------------------------------------------------------------

_states: dict[str, tuple[int, str]] = {}
_states_lock = threading.Lock()


def level_state(conn: psycopg.Connection, level: str) -> str:
    """A token that changes with every committed change to units of `level`.

    Versions are never deleted or rewritten: a change adds versions or closes them, so the
    count of versions and of closed versions of a level both grow with every change to it.
    Counting is cached per boundary generation (a counter every commit to units bumps):
    it runs again only after a commit, and always before the tile it labels is read, so
    a tile is never labelled with a state older than its own."""
    generation = conn.execute("SELECT generation FROM boundary_generation").fetchone()[0]
    with _states_lock:
        cached = _states.get(level)
    if cached is not None and cached[0] == generation:
        return cached[1]
    versions, closed = conn.execute(
        "SELECT count(*), count(valid_to) FROM unit_version WHERE level = %s", [level]
    ).fetchone()
    state = f"{versions}.{closed}"
    with _states_lock:
        _states[level] = (generation, state)
    return state


def etag(conn: psycopg.Connection, level: str, *, as_of: datetime | None, datum: str) -> str:
    """A weak ETag (the bytes of equal tiles may differ: ST_AsMVT orders keys as it goes)."""
    key = "|".join((str(FORMAT), level, level_state(conn, level), datum, as_of.isoformat() if as_of else ""))
    return 'W/"' + hashlib.sha1(key.encode()).hexdigest()[:20] + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    bare = tag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False
