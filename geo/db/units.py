"""Reading the versioned units: now or as of any time, one unit, its history and lineage.

Nothing is overwritten in unit_version: a change closes a version (valid_to) and opens the
next, so every read takes an `as_of` (None: the current versions). Writing is
geo/db/unit_writes.py's; what a write must check and what follows it, geo/usecases/boundaries.py's.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from geo.db import generation
from geo.db.rows import dicts, ewkb, one, valid_at, with_geoms
from geo.errors import NotFound
from geo.locate.locator import Locator
from geo.units import levels
from geo.units.levels import CHAIN_COLUMNS

BBox = tuple[float, float, float, float]

# The columns of a version a reader gets, and each of its parents' codes.
ROW_COLUMNS = (
    "unit_id", "version", "level", "code", "name", *CHAIN_COLUMNS,
    "households", "population", "attributes", "valid_from", "valid_to",
)
_CHAIN_CODES_SQL = ", ".join(
    f"(SELECT p.code FROM unit_version p WHERE p.unit_id = v.{col} AND {{pf}} LIMIT 1) AS {col[:-3]}_code"
    for col in CHAIN_COLUMNS
)


def units_geojson(
    conn: psycopg.Connection,
    level: str,
    *,
    as_of: datetime | None = None,
    bbox: BBox | None = None,
    code: str | None = None,
    parent_id: int | None = None,
    limit: int = 10_000,
    offset: int = 0,
) -> tuple[str, int]:
    """A GeoJSON FeatureCollection (text) of the units at `level`, and how many matched."""
    where, params = valid_at(as_of, "v")
    clauses = [where, "v.level = %s"]
    params.append(level)
    if bbox is not None:
        clauses.append("v.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)")
        params.extend(bbox)
    if code is not None:
        clauses.append("v.code = %s")
        params.append(code)
    if parent_id is not None:
        clauses.append("%s IN (" + ", ".join(f"v.{c}" for c in CHAIN_COLUMNS) + ")")
        params.append(parent_id)
    sql_where = " AND ".join(clauses)
    total = one(conn, f"SELECT count(*) AS n FROM unit_version v WHERE {sql_where}", params)
    sql = f"""
        SELECT json_build_object(
            'type', 'FeatureCollection',
            'features', coalesce(json_agg(f.feature ORDER BY f.code), '[]'::json)
        )::text AS text
        FROM (
            SELECT v.code, json_build_object(
                'type', 'Feature',
                'id', v.unit_id,
                'geometry', ST_AsGeoJSON(v.geom, 9)::json,
                'properties', json_build_object(
                    'id', v.unit_id, 'level', v.level, 'code', v.code, 'name', v.name,
                    'version', v.version, 'households', v.households, 'population', v.population,
                    'street_id', v.street_id, 'community_id', v.community_id, 'grid_id', v.grid_id,
                    'compound_id', v.compound_id, 'neighbourhood_id', v.neighbourhood_id,
                    'valid_from', v.valid_from, 'valid_to', v.valid_to,
                    'attributes', v.attributes
                )
            ) AS feature
            FROM unit_version v
            WHERE {sql_where}
            ORDER BY v.code
            LIMIT %s OFFSET %s
        ) f
    """
    page = one(conn, sql, [*params, limit, offset])
    assert total is not None and page is not None
    return page["text"], total["n"]


def units_rows(conn: psycopg.Connection, level: str, *, as_of: datetime | None = None) -> list[dict[str, Any]]:
    """Rows (dicts with a shapely `geom` and parent codes) of the units at `level`."""
    where, params = valid_at(as_of, "v")
    pf, pparams = valid_at(as_of, "p")
    chain_codes = _CHAIN_CODES_SQL.format(pf=pf)
    cols = ", ".join(f"v.{c}" for c in ROW_COLUMNS)
    rows = dicts(
        conn,
        f"SELECT {cols}, ST_AsBinary(v.geom) AS wkb, {chain_codes} FROM unit_version v "
        f"WHERE {where} AND v.level = %s ORDER BY v.code",
        [*(pparams * len(CHAIN_COLUMNS)), *params, level],
    )
    return with_geoms(rows)


def rows_where(conn: psycopg.Connection, level: str, where: str, params: list[Any],
               parent_column: str = "compound_id") -> list[dict[str, Any]]:
    """The current units of `level` matching a condition: id, code, name, counts, attributes,
    geom, and the parent id in `parent_column` (as itself and as `parent_id`)."""
    return with_geoms(dicts(
        conn,
        f"SELECT unit_id, code, name, households, population, attributes, compound_id, "
        f"{parent_column} AS parent_id, ST_AsBinary(geom) AS wkb "
        f"FROM unit_version WHERE valid_to IS NULL AND level = %s AND {where}",
        [level, *params],
    ))


def under(conn: psycopg.Connection, level: str, column: str, parent_ids: list[int]) -> list[dict[str, Any]]:
    """The current units of `level` whose parent at `column` is one of `parent_ids`."""
    return rows_where(conn, level, f"{column} = ANY(%s)", [parent_ids], parent_column=column)


def code_chains(conn: psycopg.Connection, level: str, parent_level: str,
                as_of: datetime | None = None) -> list[dict[str, Any]]:
    """Each unit of `level` (now or as of a time) with the code of its parent at `parent_level`
    (None when it has none) and a point on it (lon, lat): what checking codes against the
    chain reads."""
    where_c, params_c = valid_at(as_of, "c")
    where_p, params_p = valid_at(as_of, "p")
    column = levels.PARENT_COLUMNS[parent_level]
    return dicts(conn, f"""
        SELECT c.unit_id, c.code, p.code AS parent_code, ST_X(l.pt) AS lon, ST_Y(l.pt) AS lat
        FROM unit_version c
        LEFT JOIN unit_version p ON p.unit_id = c.{column} AND {where_p}
        CROSS JOIN LATERAL (SELECT ST_PointOnSurface(c.geom) AS pt) l
        WHERE c.level = %s AND {where_c} ORDER BY c.code
        """, [*params_p, level, *params_c])


def children_of(conn: psycopg.Connection, level: str, column: str, unit_id: int) -> list[dict[str, Any]]:
    """The current units of `level` whose parent at `column` is `unit_id`."""
    return rows_where(conn, level, f"{column} = %s", [unit_id])


def get_unit(conn: psycopg.Connection, unit_id: int, as_of: datetime | None = None) -> dict[str, Any]:
    """One unit's version (now or as of a time) with its geometry as GeoJSON."""
    where, params = valid_at(as_of)
    rec = one(conn, f"SELECT {', '.join(ROW_COLUMNS)}, ST_AsGeoJSON(geom, 9) AS geometry FROM unit_version "
                    f"WHERE unit_id = %s AND {where}", [unit_id, *params])
    if rec is None:
        when = f" as of {as_of.isoformat()}" if as_of else ""
        raise NotFound(f"no unit with id {unit_id}{when}")
    rec["geometry"] = json.loads(rec["geometry"])
    return rec


def current(conn: psycopg.Connection, unit_id: int) -> dict[str, Any]:
    """The current version of one unit, its geometry as shapely, for planning."""
    rec = one(conn, "SELECT unit_id, version, level, code, name, households, street_id, community_id, grid_id, "
                    "ST_AsBinary(geom) AS wkb FROM unit_version WHERE unit_id = %s AND valid_to IS NULL", [unit_id])
    if rec is None:
        raise NotFound(f"no current unit with id {unit_id}")
    return with_geoms([rec])[0]


def resolve(conn: psycopg.Connection, ref: str | int) -> int:
    """A unit id from an id or a code."""
    text = str(ref).strip()
    if text.isdigit() and len(text) < 12:
        return int(text)
    rec = one(conn, "SELECT unit_id FROM unit_version WHERE code = %s AND valid_to IS NULL ORDER BY level LIMIT 1",
              [text])
    if rec is None:
        raise NotFound(f"no current unit with id or code {text!r}")
    return int(rec["unit_id"])


def history(conn: psycopg.Connection, unit_id: int) -> list[dict[str, Any]]:
    """Every version of one unit, oldest first."""
    rows = dicts(conn, f"SELECT {', '.join(ROW_COLUMNS)}, change_id, closed_by, ST_AsGeoJSON(geom, 9) AS geometry "
                       "FROM unit_version WHERE unit_id = %s ORDER BY version", [unit_id])
    if not rows:
        raise NotFound(f"no unit with id {unit_id}")
    for rec in rows:
        rec["geometry"] = json.loads(rec["geometry"])
    return rows


def lineage(conn: psycopg.Connection, unit_id: int) -> dict[str, list[dict[str, Any]]]:
    """Which units this one came from, and which it became."""
    came_from = dicts(conn, "SELECT from_unit_id AS unit_id, kind, change_id FROM unit_lineage "
                            "WHERE to_unit_id = %s ORDER BY 1", [unit_id])
    became = dicts(conn, "SELECT to_unit_id AS unit_id, kind, change_id FROM unit_lineage "
                         "WHERE from_unit_id = %s ORDER BY 1", [unit_id])
    return {"from": came_from, "to": became}


# Lineage followed from retired units (`roots`) through retired ones to the current units
# they became: a unit split, then one part merged, leads to the part kept and the merged unit.
_SUCCESSORS_SQL = """
    WITH RECURSIVE walk (root, unit_id) AS (
        SELECT l.from_unit_id, l.to_unit_id FROM unit_lineage l JOIN unit u ON u.id = l.from_unit_id
        WHERE {roots}
          AND NOT EXISTS (SELECT 1 FROM unit_version c WHERE c.unit_id = l.from_unit_id AND c.valid_to IS NULL)
        UNION
        SELECT w.root, l.to_unit_id FROM walk w JOIN unit_lineage l ON l.from_unit_id = w.unit_id
        WHERE NOT EXISTS (SELECT 1 FROM unit_version c WHERE c.unit_id = w.unit_id AND c.valid_to IS NULL)
    )
    SELECT DISTINCT w.root, v.unit_id, v.level, v.code, v.name
    FROM walk w JOIN unit_version v ON v.unit_id = w.unit_id AND v.valid_to IS NULL
    ORDER BY w.root, v.code, v.unit_id
"""


def successors(conn: psycopg.Connection, *, level: str | None = None,
               unit_ids: list[int] | None = None) -> dict[int, list[dict[str, Any]]]:
    """The current units each retired unit became by lineage (of `level`, or those in
    `unit_ids`), by code: {retired id: [{unit_id, level, code, name}]}. A retired unit that
    became nothing current (retired outright) is not a key."""
    roots = "u.level = %s" if unit_ids is None else "u.id = ANY(%s)"
    rows = dicts(conn, _SUCCESSORS_SQL.format(roots=roots), [level if unit_ids is None else unit_ids])
    found: dict[int, list[dict[str, Any]]] = {}
    for rec in rows:
        found.setdefault(rec.pop("root"), []).append(rec)
    return found


def retired(conn: psycopg.Connection, unit_id: int, as_of: datetime | None = None) -> dict[str, Any] | None:
    """A unit that no longer stands (now, or at `as_of`): its last version as `get_unit` reads
    it, `retired_at`, and the current units it became (`successors`). None for a unit that
    never existed, still stands, or (at `as_of`) stood or did not exist yet."""
    last = one(conn, f"SELECT {', '.join(ROW_COLUMNS)}, ST_AsGeoJSON(geom, 9) AS geometry FROM unit_version "
                     "WHERE unit_id = %s ORDER BY version DESC LIMIT 1", [unit_id])
    if last is None or last["valid_to"] is None or (as_of is not None and as_of < last["valid_to"]):
        return None
    last["geometry"] = json.loads(last["geometry"])
    last["retired_at"] = last["valid_to"]
    last["successors"] = successors(conn, unit_ids=[unit_id]).get(unit_id, [])
    return last


def level_names(conn: psycopg.Connection, level: str, also: list[int]) -> dict[int, dict[str, Any]]:
    """Code and name of every current unit of `level`, and of the units in `also` by their
    latest version; `retired_at` is None for a current unit, when it was retired otherwise."""
    rows = dicts(conn, "SELECT unit_id, code, name, NULL::timestamptz AS retired_at FROM unit_version "
                       "WHERE valid_to IS NULL AND level = %s", [level])
    found = {rec["unit_id"]: rec for rec in rows}
    if missing := sorted(set(also) - found.keys()):
        found.update((rec["unit_id"], rec) for rec in dicts(
            conn, "SELECT DISTINCT ON (unit_id) unit_id, code, name, valid_to AS retired_at FROM unit_version "
                  "WHERE unit_id = ANY(%s) ORDER BY unit_id, version DESC", [missing]))
    return found


_counts: generation.Cache[dict[str, int]] = generation.Cache()


def count_units(conn: psycopg.Connection) -> dict[str, int]:
    """How many current units each level holds. Counted again only after a commit changed
    units (a million units take 150-220 ms to count; /health and the overview map ask often)."""
    def count() -> dict[str, int]:
        rows = dicts(conn, "SELECT level, count(*) AS n FROM unit_version WHERE valid_to IS NULL GROUP BY level")
        return {r["level"]: r["n"] for r in rows}

    return dict(_counts.get(conn, ("units", conn.info.host, conn.info.port, conn.info.dbname), count))


def latest_names(conn: psycopg.Connection, unit_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Level, code and name of each unit by its latest version (current or retired)."""
    if not unit_ids:
        return {}
    rows = dicts(conn, "SELECT DISTINCT ON (unit_id) unit_id, level, code, name FROM unit_version "
                       "WHERE unit_id = ANY(%s) ORDER BY unit_id, version DESC", [sorted(unit_ids)])
    return {r["unit_id"]: r for r in rows}


def intersecting(conn: psycopg.Connection, level: str, community_id: int, geom: Any) -> list[dict[str, Any]]:
    """The current units of `level` in a community that meet a geometry (for planning)."""
    return rows_where(conn, level, "community_id = %s AND ST_Intersects(geom, ST_GeomFromEWKB(%s))",
                      [community_id, ewkb(geom)])


def state_at(conn: psycopg.Connection, when: datetime) -> tuple[int, int]:
    """The boundaries as they stood at `when`, as the newest change set made by then and how many
    were (0, 0 before the first): equal pairs, equal boundaries."""
    row = one(conn, "SELECT coalesce(max(id), 0) AS last, count(*) AS n FROM change_set WHERE created_at <= %s",
              [when])
    assert row is not None  # an aggregate without GROUP BY returns one row
    return int(row["last"]), int(row["n"])


def locator(conn: psycopg.Connection, as_of: datetime | None = None) -> Locator:
    """A Locator over the boundaries stored now (or valid at `as_of`), read in one snapshot."""
    time_filter = "valid_to IS NULL" if as_of is None else \
        "valid_from <= %(t)s AND (valid_to IS NULL OR valid_to > %(t)s)"
    idle = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if idle:  # one snapshot for the generation and the rows
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        stamp = generation.current(conn)
        rows = dicts(
            conn,
            f"SELECT level, unit_id, code, name, version, {', '.join(CHAIN_COLUMNS)}, ST_AsBinary(geom) AS wkb "
            f"FROM unit_version WHERE {time_filter}",
            {"t": as_of},
        )
    by_level: dict[str, list[dict[str, Any]]] = {level: [] for level in levels.LEVELS}
    for rec in with_geoms(rows):
        by_level[rec.pop("level")].append(rec)
    return Locator.build(by_level, generation=stamp if as_of is None else None)
