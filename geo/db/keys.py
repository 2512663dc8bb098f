"""The api_key table (prefix and digest, never the key) and the app_secret table."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

import psycopg

from geo.db.rows import dicts, one, value
from geo.security.identity import Identity, key_identity
from geo.security.keys import digest, prefix_of

COLUMNS = ("id", "prefix", "name", "role", "created_at", "created_by", "revoked_at", "revoked_by", "last_used_at")
_SELECT = ", ".join(COLUMNS)


def _record(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"active": row["revoked_at"] is None}


def insert(conn: psycopg.Connection, prefix: str, key: str, name: str, role: str, by: str) -> dict[str, Any] | None:
    """Store a key's digest; None when its prefix is taken already."""
    row = one(conn, f"INSERT INTO api_key (prefix, hash, name, role, created_by) VALUES (%s, %s, %s, %s, %s) "
                    f"ON CONFLICT (prefix) DO NOTHING RETURNING {_SELECT}",
              [prefix, digest(key), name, role, by])
    return None if row is None else _record(row)


def all_keys(conn: psycopg.Connection, *, include_revoked: bool = True) -> list[dict[str, Any]]:
    return [_record(r) for r in dicts(conn, f"SELECT {_SELECT} FROM api_key WHERE %s OR revoked_at IS NULL "
                                            "ORDER BY id", [include_revoked])]


def lock(conn: psycopg.Connection, key_id: int) -> dict[str, Any] | None:
    row = one(conn, f"SELECT {_SELECT} FROM api_key WHERE id = %s FOR UPDATE", [key_id])
    return None if row is None else _record(row)


def revoke(conn: psycopg.Connection, key_id: int, by: str) -> dict[str, Any]:
    row = one(conn, f"UPDATE api_key SET revoked_at = now(), revoked_by = %s WHERE id = %s RETURNING {_SELECT}",
              [by, key_id])
    assert row is not None
    return _record(row)


def verify(conn: psycopg.Connection, presented: str) -> Identity | None:
    """The identity of an active key, or None for anything else (malformed, unknown, revoked).
    Commits: the check holds no transaction open."""
    prefix = prefix_of(presented)
    if prefix is None:
        return None
    row = one(conn, "SELECT id, name, role, hash FROM api_key WHERE prefix = %s AND revoked_at IS NULL", [prefix])
    # compare_digest: the time taken does not tell how many leading bytes matched
    if row is None or not hmac.compare_digest(bytes(row["hash"]), digest(presented)):
        conn.commit()
        return None
    # last_used_at is for people reading `gridmap keys list`: to the minute, and not worth
    # waiting for a disk flush (each worker verifies a key again once per cache TTL)
    conn.execute("SET LOCAL synchronous_commit TO OFF")
    conn.execute("UPDATE api_key SET last_used_at = now() WHERE id = %s "
                 "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", [row["id"]])
    conn.commit()
    return key_identity(row["id"], row["name"], row["role"])


def identity_by_id(conn: psycopg.Connection, key_id: int) -> Identity | None:
    """The identity of an active key by its id (a signed session names its key by id)."""
    row = one(conn, "SELECT id, name, role FROM api_key WHERE id = %s AND revoked_at IS NULL", [key_id])
    conn.commit()
    return key_identity(row["id"], row["name"], row["role"]) if row else None


def active_count(conn: psycopg.Connection) -> int:
    count = int(value(conn, "SELECT count(*) FROM api_key WHERE revoked_at IS NULL"))
    conn.commit()
    return count


def stored_secret(conn: psycopg.Connection, name: str = "session") -> bytes:
    """A secret generated once and kept in the database: every worker and restart reads the same."""
    with conn.transaction():
        conn.execute("INSERT INTO app_secret (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                     [name, secrets.token_bytes(32)])
        return bytes(value(conn, "SELECT value FROM app_secret WHERE name = %s", [name]))
