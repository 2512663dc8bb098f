"""bench_stats.py's database of a year of generated incidents, for the benchmarks that reuse it."""

from __future__ import annotations

import sys

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from geo.db.connection import database_url
from geo.db.migrations import migrate


def url_of(database: str) -> str:
    """The URL of `database` on the server gridmap uses."""
    params = conninfo_to_dict(database_url())
    params["dbname"] = database
    return make_conninfo(**params)


def reused(database: str, at_least: int = 100_000) -> tuple[str, int]:
    """`database`'s URL, migrated, and how many incidents it holds; exits saying what to run
    when it holds fewer than `at_least`."""
    url = url_of(database)
    with psycopg.connect(url) as conn:
        migrate(conn)
        conn.commit()
        have: int = conn.execute("SELECT count(*) FROM incident").fetchone()[0]  # type: ignore[index]
    if have < at_least:
        sys.exit(f"{database} holds {have:,} incidents: run bench/bench_stats.py first")
    return url, have
