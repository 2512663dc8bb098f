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


def count_units(conn: psycopg.Connection) -> dict[str, int]:
    """How many current units each level holds."""
    rows = dicts(conn, "SELECT level, count(*) AS n FROM unit_version WHERE valid_to IS NULL GROUP BY level")
    return {r["level"]: r["n"] for r in rows}


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
    return Locator(by_level, generation=stamp if as_of is None else None)
