"""Creating and revoking API keys, each recorded in the audit log in its transaction."""

from __future__ import annotations

from typing import Any

import psycopg

from geo.db import audit, keys
from geo.errors import Conflict, NotFound
from geo.security.identity import Identity, as_identity
from geo.security.keys import check_name, check_role, new_key


def create_key(conn: psycopg.Connection, role: str, name: str, actor: str | Identity) -> tuple[dict[str, Any], str]:
    """Store a new key; returns its record and the key itself, which is shown only now."""
    role, name = check_role(role), check_name(name)
    who = as_identity(actor)
    with conn.transaction():
        for _ in range(5):  # a prefix already taken (1 in 4 billion a key): draw another
            prefix, key = new_key()
            record = keys.insert(conn, prefix, key, name, role, who.label)
            if record is not None:
                break
        else:  # pragma: no cover
            raise Conflict("could not draw an unused key prefix: try again")
        audit.record(conn, who, "key.create", "key", [record["id"]],
                     after={"role": role, "name": name, "prefix": prefix})
    return record, key


def revoke_key(conn: psycopg.Connection, key_id: int, actor: str | Identity) -> dict[str, Any]:
    """Revoke a key (its row stays, so the audit log can still name it)."""
    who = as_identity(actor)
    with conn.transaction():
        record = keys.lock(conn, key_id)
        if record is None:
            raise NotFound(f"no API key with id {key_id}")
        if not record["active"]:
            raise Conflict(f"key {key_id} ({record['name']}) was already revoked at "
                           f"{record['revoked_at'].isoformat()} by {record['revoked_by']}")
        record = keys.revoke(conn, key_id, who.label)
        audit.record(conn, who, "key.revoke", "key", [key_id], before={"active": True},
                     after={"active": False, "revoked_at": record["revoked_at"]},
                     detail={"name": record["name"], "role": record["role"], "prefix": record["prefix"]})
    return record
