"""Plans in the database (migration 0004): the plan, the unit versions it replaces, and its
proposed units, one set per revision; and what drawing and checking a plan reads.

Nothing is overwritten: an edit adds a revision; a committed or discarded plan stays.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg
import shapely

from geo.db.rows import dicts, hex_ewkb, one, value, with_geoms
from geo.errors import InvalidInput, NotFound
from geo.units.levels import PARENT_COLUMNS

STATUSES = ("draft", "committed", "discarded")
_COLUMNS = ("id", "kind", "status", "level", "parent_id", "revision", "params", "metrics", "notes",
            "actor", "created_at", "updated_at", "closed_at", "change_id", "record")


def jsonable(v: Any) -> Any:
    """numpy numbers and arrays as JSON takes them (for metrics)."""
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=jsonable)


# ---- writing --------------------------------------------------------------------------------

def insert(conn: psycopg.Connection, kind: str, level: str, parent_id: int | None, params: dict[str, Any],
           metrics: dict[str, Any], notes: list[str], actor: object) -> int:
    return int(value(conn, "INSERT INTO plan (kind, level, parent_id, params, metrics, notes, actor) "
                           "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                     [kind, level, parent_id, json.dumps(params), _json(metrics), _json(notes), str(actor)]))


def insert_replaces(conn: psycopg.Connection, plan_id: int, replaces: list[dict[str, Any]]) -> None:
    for r in replaces:
        conn.execute("INSERT INTO plan_replaces (plan_id, grp, unit_id, version, code) VALUES (%s, %s, %s, %s, %s)",
                     [plan_id, r.get("grp", 1), r["unit_id"], r["version"], r["code"]])


def write_units(conn: psycopg.Connection, plan_id: int, revision: int, proposed: list[dict[str, Any]],
                geoms: list[Any]) -> None:
    """One revision's proposed units (WGS84 geometries)."""
    with conn.cursor().copy(
        "COPY plan_unit (plan_id, revision, grp, seq, code, name, households, population, geom, attributes) "
        "FROM STDIN"
    ) as copy:
        for p, g in zip(proposed, geoms, strict=True):
            copy.write_row((plan_id, revision, p.get("grp", 1), p["seq"], p["code"], p["name"], p["households"],
                            p.get("population"), hex_ewkb(g),
                            json.dumps(p.get("attributes") or {}, ensure_ascii=False)))


def lock(conn: psycopg.Connection, plan_id: int) -> dict[str, Any]:
    """A plan's status and revision, locked; NotFound when there is none."""
    row = one(conn, "SELECT status, revision FROM plan WHERE id = %s FOR UPDATE", [plan_id])
    if row is None:
        raise NotFound(f"no plan with id {plan_id}")
    return row


def set_revision(conn: psycopg.Connection, plan_id: int, revision: int, metrics: dict[str, Any],
                 actor: object) -> None:
    conn.execute("UPDATE plan SET revision = %s, metrics = %s, updated_at = now(), actor = %s WHERE id = %s",
                 [revision, _json(metrics), str(actor), plan_id])


def close(conn: psycopg.Connection, plan_id: int, status: str, actor: object, change_id: int | None = None,
          record: dict[str, Any] | None = None) -> None:
    """Mark a plan committed (with the last change set it made and the record of what it did)
    or discarded."""
    conn.execute("UPDATE plan SET status = %s, closed_at = now(), change_id = coalesce(%s, change_id), actor = %s, "
                 "record = coalesce(%s, record) WHERE id = %s",
                 [status, change_id, str(actor), None if record is None else _json(record), plan_id])


# ---- reading --------------------------------------------------------------------------------

def get(conn: psycopg.Connection, plan_id: int) -> dict[str, Any]:
    """A plan with what it replaces and its units' codes, names and households (no geometry)."""
    plan = one(conn, f"SELECT {', '.join(_COLUMNS)} FROM plan WHERE id = %s", [plan_id])
    if plan is None:
        raise NotFound(f"no plan with id {plan_id}")
    plan["replaces"] = dicts(conn, "SELECT grp, unit_id, version, code FROM plan_replaces WHERE plan_id = %s "
                                   "ORDER BY grp, code", [plan_id])
    plan["units"] = dicts(conn, "SELECT grp, seq, code, name, households FROM plan_unit "
                                "WHERE plan_id = %s AND revision = %s ORDER BY seq", [plan_id, plan["revision"]])
    return plan


def all_plans(conn: psycopg.Connection, status: str | None = None) -> list[dict[str, Any]]:
    """Plans newest first (at most 500), with their part count and targets missed."""
    if status and status not in STATUSES:
        raise InvalidInput(f"unknown plan status {status!r}: use draft, committed or discarded")
    return dicts(conn,
                 "SELECT id, kind, status, level, parent_id, revision, created_at, (metrics->>'parts')::int AS parts, "
                 "jsonb_array_length(coalesce(metrics->'targets_missed', '[]'::jsonb)) AS targets_missed "
                 "FROM plan WHERE %s::text IS NULL OR status = %s ORDER BY id DESC LIMIT 500", [status, status])


def units_geojson(conn: psycopg.Connection, plan_id: int, revision: int, level: str) -> str:
    """A revision's proposed units as a GeoJSON FeatureCollection (text)."""
    text: str = value(conn, """
        SELECT json_build_object('type', 'FeatureCollection', 'plan', %s::int, 'revision', %s::int,
          'features', coalesce(json_agg(json_build_object(
            'type', 'Feature', 'id', u.seq,
            'geometry', ST_AsGeoJSON(u.geom, 9)::json,
            'properties', json_build_object('seq', u.seq, 'group', u.grp, 'code', u.code, 'name', u.name,
                'households', u.households, 'level', %s::text,
                'area_m2', round(ST_Area(u.geom::geography)::numeric, 1))) ORDER BY u.seq), '[]'::json))::text
        FROM plan_unit u WHERE u.plan_id = %s AND u.revision = %s
        """, [plan_id, revision, level, plan_id, revision])
    return text


def units(conn: psycopg.Connection, plan_id: int, revision: int) -> list[dict[str, Any]]:
    """A revision's proposed units with their geometries (shapely, WGS84)."""
    return with_geoms(dicts(conn, "SELECT grp, seq, code, name, households, population, attributes, "
                                  "ST_AsBinary(geom) AS wkb, ST_Area(geom::geography) AS area_m2 FROM plan_unit "
                                  "WHERE plan_id = %s AND revision = %s ORDER BY seq", [plan_id, revision]))


def replaced_versions(conn: psycopg.Connection, plan_id: int) -> list[dict[str, Any]]:
    """The units a plan replaces, at the versions it was drawn from (geometry included)."""
    return with_geoms(dicts(conn,
                            "SELECT v.unit_id AS id, v.version, v.level, v.code, v.name, v.households, "
                            "ST_AsBinary(v.geom) AS wkb, v.valid_to IS NULL AS current, r.grp "
                            "FROM plan_replaces r JOIN unit_version v ON v.unit_id = r.unit_id "
                            "AND v.version = r.version WHERE r.plan_id = %s ORDER BY r.grp, r.code", [plan_id]))


# ---- what drawing, checking and comparing a plan reads ---------------------------------------

def children_of(conn: psycopg.Connection, level: str, unit: dict[str, Any]) -> list[dict[str, Any]]:
    """The current units of `level` whose parent is `unit` (id, version, code), by code."""
    col = PARENT_COLUMNS[unit["level"]]
    return dicts(conn, f"SELECT unit_id, version, code FROM unit_version WHERE valid_to IS NULL AND level = %s "
                       f"AND {col} = %s ORDER BY code", [level, unit["unit_id"]])


def building_attributes(conn: psycopg.Connection, grid_id: int) -> dict[str, dict[str, Any]]:
    """The attributes (entrances, floors) of the current buildings of a grid, by code."""
    return {r["code"]: r["attributes"] for r in dicts(
        conn, "SELECT code, attributes FROM unit_version WHERE valid_to IS NULL AND level = 'building' "
              "AND grid_id = %s", [grid_id])}


def codes_in_use(conn: psycopg.Connection, level: str, prefix: str) -> set[str]:
    """Every code of `level` starting with `prefix`, of current and retired units and of the
    units other draft plans propose (so two drafts do not both give one new code away)."""
    return {r["code"] for r in dicts(
        conn,
        "SELECT code FROM unit_version WHERE level = %(level)s AND code LIKE %(like)s "
        "UNION SELECT u.code FROM plan_unit u JOIN plan p ON p.id = u.plan_id AND u.revision = p.revision "
        "WHERE p.status = 'draft' AND p.level = %(level)s AND u.code LIKE %(like)s",
        {"level": level, "like": prefix + "%"})}


def lock_versions(conn: psycopg.Connection, unit_ids: list[int]) -> dict[int, int]:
    """The current version of each of these units, locked (retired ones are absent)."""
    return {r["unit_id"]: r["version"] for r in dicts(
        conn, "SELECT unit_id, version FROM unit_version WHERE unit_id = ANY(%s) AND valid_to IS NULL FOR UPDATE",
        [unit_ids])}


def current_geoms(conn: psycopg.Connection, unit_ids: list[int]) -> list[Any]:
    rows = conn.execute("SELECT ST_AsBinary(geom) FROM unit_version WHERE unit_id = ANY(%s) AND valid_to IS NULL",
                        [unit_ids]).fetchall()
    return [shapely.from_wkb(bytes(r[0])) for r in rows]


def household_points(conn: psycopg.Connection, column: str | None, old_ids: list[int]) -> list[tuple[int, int, Any]]:
    """(old unit id, households, point) of the current buildings under the replaced units, or,
    for levels with no buildings beneath by column, of the replaced units themselves."""
    rows: list[dict[str, Any]] = []
    if old_ids and column:
        rows = dicts(conn, f"SELECT {column} AS old_id, households, ST_AsBinary(ST_PointOnSurface(geom)) AS wkb "
                           f"FROM unit_version WHERE valid_to IS NULL AND level = 'building' AND {column} = ANY(%s)",
                     [old_ids])
    if not rows and old_ids:
        rows = dicts(conn, "SELECT unit_id AS old_id, households, ST_AsBinary(ST_PointOnSurface(geom)) AS wkb "
                           "FROM unit_version WHERE valid_to IS NULL AND unit_id = ANY(%s)", [old_ids])
    return [(r["old_id"], r["households"], shapely.from_wkb(bytes(r["wkb"]))) for r in rows]


def label_points(conn: psycopg.Connection, geoms: list[Any]) -> list[tuple[float, float]]:
    """The centre of each geometry's largest inscribed circle, computed in PostGIS."""
    if not geoms:
        return []
    rows = dicts(
        conn,
        "SELECT ST_X(c) AS x, ST_Y(c) AS y FROM unnest(%s::bytea[]) WITH ORDINALITY AS g(wkb, k), "
        "LATERAL (SELECT (ST_MaximumInscribedCircle(ST_GeomFromWKB(g.wkb, 4326))).center AS c) l ORDER BY k",
        [[shapely.to_wkb(g) for g in geoms]],
    )
    return [(float(r["x"]), float(r["y"])) for r in rows]


def populations(conn: psycopg.Connection, level: str, column: str, parent_id: int) -> dict[str, int | None]:
    """The population of each current unit of `level` under a parent (at `column`), by code."""
    return {r["code"]: r["population"] for r in dicts(
        conn, f"SELECT code, population FROM unit_version WHERE valid_to IS NULL AND level = %s AND {column} = %s",
        [level, parent_id])}
