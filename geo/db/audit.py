"""The audit log: who changed what, when, from which version or state to which.

`record` is called by the use case that makes the change (geo/usecases), on the same
connection and inside the same transaction, so the row commits with the change or not at all. The
table refuses updates and deletes (migration 0005).

Actions recorded:

    units.load           a file or district loaded (subject: the change set)
    unit.edit            one unit edited (versions before and after)
    plan.draw, plan.edit, plan.discard
    plan.commit          a plan applied (units retired and created, change sets)
    incident.report      a report taken in (state and version after)
    incident.transition  a state change (state and version before and after)
    incidents.sample     generated demo incidents stored (count)
    worker.add           a worker attached to a unit
    key.create, key.revoke
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from geo.db.rows import dicts, one
from geo.errors import InvalidInput
from geo.security.identity import Identity, as_identity

COLUMNS = ("id", "at", "actor", "key_id", "role", "action", "subject", "subject_ids", "change_id",
           "before", "after", "detail")
MAX_LIMIT = 1000


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_default)


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value, dumps=_dumps)


def record(conn: psycopg.Connection, actor: str | Identity, action: str, subject: str,
           subject_ids: list[int], *, change_id: int | None = None, before: Any = None, after: Any = None,
           detail: dict[str, Any] | None = None) -> int:
    """Add one row in the caller's transaction; returns its id."""
    who = as_identity(actor)
    row = one(
        conn,
        "INSERT INTO audit_log (actor, key_id, role, action, subject, subject_ids, change_id, before, after, detail) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [who.label, who.key_id, who.role, action, subject, [int(i) for i in subject_ids], change_id,
         _json(before), _json(after), _json(detail or {})],
    )
    assert row is not None  # an INSERT ... RETURNING returns the row it added
    return int(row["id"])


def query(conn: psycopg.Connection, *, action: str | None = None, subject: str | None = None,
          subject_id: int | None = None, key_id: int | None = None, actor: str | None = None,
          since: datetime | None = None, until: datetime | None = None, before_id: int | None = None,
          limit: int = 100) -> list[dict[str, Any]]:
    """Rows newest first. `action` matches exactly or, ending in '.', as a prefix ('plan.');
    `actor` is a substring of the actor's label; `before_id` pages back from a row."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}")
    if since and until and until <= since:
        raise InvalidInput("'until' must come after 'since'")
    prefix = bool(action and action.endswith("."))
    filters = [
        ("action LIKE %s" if prefix else "action = %s", f"{action}%" if prefix else action or None),
        ("subject = %s", subject),
        ("subject_ids @> ARRAY[%s]::bigint[]", subject_id),
        ("key_id = %s", key_id),
        ("strpos(actor, %s) > 0", actor or None),
        ("at >= %s", since),
        ("at < %s", until),
        ("id < %s", before_id),
    ]
    clauses = ["true", *(sql for sql, value in filters if value is not None)]
    params = [value for _, value in filters if value is not None]
    return dicts(
        conn, f"SELECT {', '.join(COLUMNS)} FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT %s",
        [*params, limit])
