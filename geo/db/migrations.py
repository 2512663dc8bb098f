"""SQL migrations, applied in order and recorded in schema_migration.

Each file in migrations/ (NNNN_name.sql) runs once, in its own transaction, under an
advisory lock so two processes starting at once do not both apply it. Re-running
is a no-op.
"""

from __future__ import annotations

from importlib import resources

import psycopg

from geo.db import incident_months

MIGRATION_LOCK = 4_771_001  # pg_advisory_xact_lock key for migrations


def available() -> list[tuple[str, str]]:
    folder = resources.files("geo.db") / "migrations"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text(encoding="utf-8")) for p in files]


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply the migrations not yet applied; return their names."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migration ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM schema_migration")}
        for name, sql in available():
            if name in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migration (name) VALUES (%s)", (name,))
            applied_now.append(name)
    try:  # the months incidents are filed under, ahead of time (geo/db/incident_months.py)
        incident_months.keep(conn)
    except psycopg.errors.LockNotAvailable:
        pass  # busy: the next start, or the server's daily round, makes them
    return applied_now


def applied(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM schema_migration ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows]
