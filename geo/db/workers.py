"""Grid workers, grid heads, neighbourhood heads and community workers, attached to units,
and each worker's history (worker_event).

The readers take the viewer: a worker's phone is masked for those without `contact`.
`on_retired_units` and `successor_shares` are what a boundary change needs to move workers
with their units (geo/usecases/workers.py follow_change).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from geo.db.rows import dicts, one, value
from geo.errors import NotFound
from geo.incidents.lifecycle import OPEN_STATES
from geo.security.identity import Identity
from geo.security.privacy import worker_for
from geo.units.levels import CHAIN_COLUMNS

_COLUMNS = "id, name, role, unit_id, phone, active, unplaced_since, unplaced_reason"
# A worker with the unit they are attached to, by its latest version (a retired unit too).
_LISTED = f"""
    SELECT w.id, w.name, w.role, w.unit_id, w.phone, w.active, w.unplaced_since, w.unplaced_reason,
           w.created_at, u.level AS unit_level, u.code AS unit_code, u.name AS unit_name,
           u.valid_to IS NULL AS unit_current
    FROM worker w
    LEFT JOIN LATERAL (SELECT v.level, v.code, v.name, v.valid_to, {", ".join(f"v.{c}" for c in CHAIN_COLUMNS)}
                       FROM unit_version v WHERE v.unit_id = w.unit_id ORDER BY v.version DESC LIMIT 1) u ON true
"""


def first_active(conn: psycopg.Connection, role: str, unit_id: int | None) -> int | None:
    """The first active worker of `role` attached to a unit and not flagged as waiting for a unit
    of their own (None when there is none)."""
    if not unit_id:
        return None
    found: int | None = value(
        conn, "SELECT id FROM worker WHERE active AND unplaced_since IS NULL AND role = %s AND unit_id = %s "
              "ORDER BY id LIMIT 1", [role, unit_id])
    return found


def first_active_all(conn: psycopg.Connection) -> dict[tuple[str, int], int]:
    """`first_active` for every (role, unit) at once."""
    rows = conn.execute("SELECT DISTINCT ON (role, unit_id) role, unit_id, id FROM worker "
                        "WHERE active AND unplaced_since IS NULL ORDER BY role, unit_id, id").fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


def units_without(conn: psycopg.Connection, role: str, level: str) -> list[int]:
    """The current units of `level` with no active worker of `role`, by code."""
    return [r[0] for r in conn.execute(
        "SELECT v.unit_id FROM unit_version v WHERE v.valid_to IS NULL AND v.level = %s AND NOT EXISTS ("
        "SELECT 1 FROM worker w WHERE w.active AND w.role = %s AND w.unit_id = v.unit_id) ORDER BY v.code",
        [level, role])]


def get(conn: psycopg.Connection, worker_id: int) -> dict[str, Any] | None:
    return one(conn, f"SELECT {_COLUMNS} FROM worker WHERE id = %s", [worker_id])


def lock(conn: psycopg.Connection, worker_id: int) -> dict[str, Any]:
    """One worker, locked for a change; NotFound when there is none."""
    row = one(conn, f"SELECT {_COLUMNS} FROM worker WHERE id = %s FOR UPDATE", [worker_id])
    if row is None:
        raise NotFound(f"no worker with id {worker_id}")
    return row


def _shown(row: dict[str, Any], viewer: Identity) -> dict[str, Any]:
    keys = ("level", "code", "name", "current")
    unit = {"id": row["unit_id"], **{k: row.pop(f"unit_{k}") for k in keys}}
    return worker_for(row | {"unit": unit}, viewer)


def read(conn: psycopg.Connection, worker_id: int, *, viewer: Identity) -> dict[str, Any]:
    """One worker with their unit and history (oldest event first), as `viewer` may see them."""
    row = one(conn, _LISTED + " WHERE w.id = %s", [worker_id])
    if row is None:
        raise NotFound(f"no worker with id {worker_id}")
    events = dicts(conn, "SELECT at, actor, kind, from_unit_id, to_unit_id, change_id, note, data "
                         "FROM worker_event WHERE worker_id = %s ORDER BY id", [worker_id])
    return _shown(row, viewer) | {"events": events}


def page(conn: psycopg.Connection, *, viewer: Identity, unit_id: int | None = None, unplaced: bool | None = None,
         active: bool | None = None, limit: int = 100, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """Workers by id (and how many match), as `viewer` may see them: of `unit_id` and every unit
    under it (by the chain of the unit's latest version, so a retired unit's workers are found
    from its parents), flagged as needing a unit or not, active or not."""
    chain = ", ".join(f"u.{c}" for c in CHAIN_COLUMNS)
    filters = [
        (f"(w.unit_id = %s OR %s IN ({chain}))", None if unit_id is None else [unit_id, unit_id]),
        ("w.unplaced_since IS NOT NULL" if unplaced else "w.unplaced_since IS NULL",
         None if unplaced is None else []),
        ("w.active = %s", None if active is None else [active]),
    ]
    given = [(sql, params) for sql, params in filters if params is not None]
    where = " AND ".join(["true", *(sql for sql, _ in given)])
    params = [p for _, ps in given for p in ps]
    total = int(value(conn, f"SELECT count(*) FROM ({_LISTED} WHERE {where}) t", params))
    rows = dicts(conn, f"{_LISTED} WHERE {where} ORDER BY w.id LIMIT %s OFFSET %s", [*params, limit, offset])
    return total, [_shown(r, viewer) for r in rows]


def unit_level(conn: psycopg.Connection, unit_id: int) -> str | None:
    """The level of a current unit (None when there is no such current unit)."""
    level: str | None = value(conn, "SELECT level FROM unit_version WHERE unit_id = %s AND valid_to IS NULL",
                              [unit_id])
    return level


def unit_known(conn: psycopg.Connection, unit_id: int) -> bool:
    """Whether a unit with this id ever existed (current or retired)."""
    return bool(value(conn, "SELECT EXISTS (SELECT 1 FROM unit WHERE id = %s)", [unit_id]))


def insert(conn: psycopg.Connection, name: str, role: str, unit_id: int, phone: str | None) -> dict[str, Any]:
    row = one(conn, "INSERT INTO worker (name, role, unit_id, phone) VALUES (%s, %s, %s, %s) "
                    "RETURNING id, created_at", [name, role, unit_id, phone])
    assert row is not None
    return {"id": row["id"], "name": name, "role": role, "unit_id": unit_id, "phone": phone,
            "active": True, "created_at": row["created_at"]}


_SETTABLE = ("name", "role", "unit_id", "phone", "active", "unplaced_since", "unplaced_reason")


def update(conn: psycopg.Connection, worker_id: int, sets: dict[str, Any]) -> None:
    """Set columns of one worker (names from a fixed list: never from the caller's keys)."""
    columns = [c for c in _SETTABLE if c in sets]
    if not columns:
        return
    conn.execute(f"UPDATE worker SET {', '.join(f'{c} = %s' for c in columns)} WHERE id = %s",
                 [*(sets[c] for c in columns), worker_id])


def add_event(conn: psycopg.Connection, worker_id: int, actor: str, kind: str, *, from_unit: int | None = None,
              to_unit: int | None = None, change_id: int | None = None, note: str | None = None,
              data: dict[str, Any] | None = None) -> None:
    conn.execute(
        "INSERT INTO worker_event (worker_id, actor, kind, from_unit_id, to_unit_id, change_id, note, data) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [worker_id, actor, kind, from_unit, to_unit, change_id, note, Jsonb(data or {})])


def open_incidents(conn: psycopg.Connection, worker_id: int) -> list[dict[str, Any]]:
    """The open incidents handed to a worker (assigned or in progress), locked, oldest first."""
    handed = [s for s in OPEN_STATES if s != "reported"]
    return dicts(conn, "SELECT id, state, grid_id, community_id FROM incident "
                       "WHERE worker_id = %s AND state = ANY(%s) ORDER BY id FOR UPDATE", [worker_id, handed])


# ---- following a boundary change -------------------------------------------------------------

def on_retired_units(conn: psycopg.Connection, change_id: int) -> list[dict[str, Any]]:
    """Active workers (flagged ones too) on a unit the change retired (a version closed by it and
    no current version left), locked, by id."""
    return dicts(conn, f"""
        SELECT {", ".join(f"w.{c}" for c in _COLUMNS.split(", "))} FROM worker w
        WHERE w.active
          AND EXISTS (SELECT 1 FROM unit_version v WHERE v.unit_id = w.unit_id AND v.closed_by = %s)
          AND NOT EXISTS (SELECT 1 FROM unit_version v WHERE v.unit_id = w.unit_id AND v.valid_to IS NULL)
        ORDER BY w.id FOR UPDATE OF w
        """, [change_id])


def successor_shares(conn: psycopg.Connection, change_id: int, unit_ids: list[int]) -> list[dict[str, Any]]:
    """For each retired unit and each current unit its lineage (of this change) leads to: the
    households of the current buildings whose point (ST_PointOnSurface) lies in both the retired
    unit's last version and the successor, and the area (m², on the spheroid) they share."""
    return dicts(conn, """
        SELECT l.from_unit_id, n.unit_id AS to_unit_id, n.level AS to_level, n.code AS to_code,
               COALESCE((SELECT sum(b.households) FROM unit_version b
                         WHERE b.valid_to IS NULL AND b.level = 'building'
                           AND ST_Intersects(b.geom, n.geom) AND ST_Intersects(b.geom, o.geom)
                           AND ST_Covers(n.geom, ST_PointOnSurface(b.geom))
                           AND ST_Covers(o.geom, ST_PointOnSurface(b.geom))), 0)::bigint AS households,
               ST_Area(ST_Intersection(o.geom, n.geom)::geography) AS area_m2
        FROM unit_lineage l
        JOIN unit_version o ON o.unit_id = l.from_unit_id AND o.closed_by = l.change_id
        JOIN unit_version n ON n.unit_id = l.to_unit_id AND n.valid_to IS NULL
        WHERE l.change_id = %s AND l.from_unit_id = ANY(%s)
        ORDER BY l.from_unit_id, n.unit_id
        """, [change_id, unit_ids])


def role_holders(conn: psycopg.Connection, unit_ids: list[int]) -> dict[tuple[int, str], dict[str, Any]]:
    """The first active worker of each role on each of these units: {(unit id, role): worker}."""
    rows = dicts(conn, "SELECT DISTINCT ON (unit_id, role) unit_id, role, id, name FROM worker "
                       "WHERE active AND unit_id = ANY(%s) ORDER BY unit_id, role, id", [unit_ids])
    return {(r["unit_id"], r["role"]): r for r in rows}
