"""Grid workers, grid heads, neighbourhood heads and community workers, attached to units.

The reader takes the viewer: a worker's phone is masked for those without `contact`.
"""

from __future__ import annotations

from typing import Any

import psycopg

from geo.db.rows import dicts, one, value
from geo.security.identity import Identity
from geo.security.privacy import worker_for

_COLUMNS = "id, name, role, unit_id, phone, active"


def first_active(conn: psycopg.Connection, role: str, unit_id: int | None) -> int | None:
    """The first active worker of `role` attached to a unit (None when there is none)."""
    if not unit_id:
        return None
    found: int | None = value(
        conn, "SELECT id FROM worker WHERE active AND role = %s AND unit_id = %s ORDER BY id LIMIT 1", [role, unit_id])
    return found


def get(conn: psycopg.Connection, worker_id: int) -> dict[str, Any] | None:
    return one(conn, f"SELECT {_COLUMNS} FROM worker WHERE id = %s", [worker_id])


def of_unit(conn: psycopg.Connection, unit_id: int, *, viewer: Identity) -> list[dict[str, Any]]:
    """The workers attached to a unit, as `viewer` may see them."""
    rows = dicts(conn, f"SELECT {_COLUMNS} FROM worker WHERE unit_id = %s ORDER BY id", [unit_id])
    return [worker_for(w, viewer) for w in rows]


def unit_level(conn: psycopg.Connection, unit_id: int) -> str | None:
    """The level of a current unit (None when there is no such current unit)."""
    level: str | None = value(conn, "SELECT level FROM unit_version WHERE unit_id = %s AND valid_to IS NULL",
                              [unit_id])
    return level


def insert(conn: psycopg.Connection, name: str, role: str, unit_id: int, phone: str | None) -> dict[str, Any]:
    row = one(conn, "INSERT INTO worker (name, role, unit_id, phone) VALUES (%s, %s, %s, %s) "
                    "RETURNING id, created_at", [name, role, unit_id, phone])
    assert row is not None
    return {"id": row["id"], "name": name, "role": role, "unit_id": unit_id, "phone": phone,
            "active": True, "created_at": row["created_at"]}
