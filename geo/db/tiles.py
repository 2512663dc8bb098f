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
(8 of the 4096 tile units) both ways is left out, as nobody can see it. It costs one
bounding-box test per unit. On the generated city it drops about 1 % of the bytes of
neighbourhood tiles at z11 and nothing from grid tiles at z9 and above (a grid is 1-2
pixels there already); it matters for buildings below z12 (bench/RESULTS.md).
ST_Simplify on the projected geometry was measured and left out: ST_AsMVTGeom's own
snapping to the tile grid already drops what it would, and simplifying each unit on its
own would open hairline gaps between neighbours that now share their edges exactly.

GCJ-02 tiles (geo/tiles/maths.py): the candidate units are read as WKB, shifted in numpy
and handed back to the same encoding query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
import shapely

from geo.db.generation import Cache
from geo.db.rows import band_sql, one, valid_at, value
from geo.tiles.maths import BUFFER, EXTENT, gcj02_source_box, small_sizes, to_gcj02
from geo.units import levels


def _properties(level: str) -> str:
    cols = ["v.unit_id AS fid", "v.unit_id AS id", "v.code", "v.name", "v.level", "v.households"]
    if levels.PARENTS[level]:
        cols.append(f"v.{levels.PARENT_COLUMNS[levels.PARENTS[level][0]]} AS parent_id")
    if level in levels.HOUSEHOLD_BANDS:
        cols.append(f"{band_sql(level)} AS band")
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
               y: int) -> tuple[str, list[Any], list[Any]]:
    """A WHERE clause picking the units of `level` valid at `as_of` whose bounding box meets
    `box_sql` (a 4326 geometry) and that are not too small to see at this zoom; the
    parameters before the box's, and those after it."""
    when, params = valid_at(as_of, "v")
    small_w, small_h = small_sizes(z, x, y)
    sql = (f"{when} AND v.level = %s AND v.geom && {box_sql} AND (GeometryType(v.geom) <> 'MULTIPOLYGON' "
           "OR ST_XMax(v.geom) - ST_XMin(v.geom) >= %s OR ST_YMax(v.geom) - ST_YMin(v.geom) >= %s)")
    return sql, [*params, level], [small_w, small_h]


def settle(conn: psycopg.Connection) -> None:
    """Settings for tile queries, for the rest of the transaction. No JIT: compiling cost up
    to 35 ms on a z11-z12 tile and saved less. No parallel workers: ST_AsMVT's partial layers
    merge into a tile ~2 % bigger whose bytes change from run to run, and on a server already
    answering several tiles at once the workers only compete for the same cores (measured
    on 2 cores: from 20 % faster to twice as slow)."""
    conn.execute("SELECT set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true)")


def render(conn: psycopg.Connection, level: str, z: int, x: int, y: int, *,
           as_of: datetime | None = None, datum: str = "wgs84") -> bytes:
    """The MVT tile (bytes; empty when no unit reaches the tile)."""
    settle(conn)
    if datum == "gcj02":
        return _render_gcj02(conn, level, z, x, y, as_of)
    return bytes(value(conn, *tile_query(level, z, x, y, as_of)) or b"")


def tile_selection(level: str, z: int, x: int, y: int, as_of: datetime | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause (on unit_version v) and its parameters: the units a WGS84 tile draws.
    The tile's envelope, with its buffer, is transformed to EPSG:4326 once, so `&&` on the
    stored geometry uses the GiST index; only the units found are projected."""
    box = "ST_Transform(ST_TileEnvelope(%s, %s, %s, margin => %s), 4326)"
    where, before, after = _selection(level, as_of, box, z, x, y)
    return where, [*before, z, x, y, BUFFER / EXTENT, *after]


def tile_query(level: str, z: int, x: int, y: int, as_of: datetime | None = None) -> tuple[str, list[Any]]:
    """The one query (and its parameters) that builds a WGS84 tile."""
    where, params = tile_selection(level, z, x, y, as_of)
    return _encode_sql(level, "v.geom", f"unit_version v WHERE {where}"), [level, z, x, y, *params]


def _render_gcj02(conn: psycopg.Connection, level: str, z: int, x: int, y: int, as_of: datetime | None) -> bytes:
    where, params, small = _selection(level, as_of, "ST_MakeEnvelope(%s, %s, %s, %s, 4326)", z, x, y)
    rows = conn.cursor(binary=True).execute(  # binary: no hex text for the WKB, either way
        f"SELECT v.id, ST_AsBinary(v.geom) FROM unit_version v WHERE {where}",
        [*params, *gcj02_source_box(z, x, y), *small],
    ).fetchall()
    if not rows:
        return b""
    moved = to_gcj02(shapely.from_wkb([r[1] for r in rows]))
    source = "unnest(%b::bigint[], %b::bytea[]) AS s(vid, wkb) JOIN unit_version v ON v.id = s.vid"
    sql = _encode_sql(level, "ST_GeomFromWKB(s.wkb, 4326)", source)
    return bytes(value(conn, sql, [level, z, x, y, [r[0] for r in rows], list(shapely.to_wkb(moved))]) or b"")



_states: Cache[str] = Cache()


def level_state(conn: psycopg.Connection, level: str) -> str:
    """A token that changes with every committed change to units of `level` (`level_state_at`)."""
    return level_state_at(conn, level)[1]


def level_state_at(conn: psycopg.Connection, level: str) -> tuple[int, str]:
    """The boundary generation now, and a token that changes with every committed change to units of `level`.

    Versions are never deleted or rewritten: a change adds versions or closes them, so the
    count of versions and of closed versions of a level both grow with every change to it.
    Counting is cached per boundary generation (geo/db/generation.py): it runs again only
    after a commit, and always before the tile it labels is read, so a tile is never
    labelled with a state older than its own."""
    def count() -> str:
        row = one(conn, "SELECT count(*) AS versions, count(valid_to) AS closed FROM unit_version WHERE level = %s",
                  [level])
        assert row is not None  # an aggregate without GROUP BY returns one row
        return f"{row['versions']}.{row['closed']}"

    return _states.entry(conn, level, count)
