"""The months `incident` is partitioned by (migration 0009): making them ahead of time, and
listing them.

A month is a partition of the reports made in it (Beijing time), made by the database's own
function incident_month(), which also moves into it any reports of that month that waited in
incident_default. gridmap keeps the current month, the one before and KEEP_AHEAD after it:
`gridmap init`, every
server start and, while a server runs, once a day. Making a month takes a short lock on the
table; it never waits long for one (LOCK_TIMEOUT) and is simply tried again later.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg

from geo.db.rows import dicts, value
from geo.errors import InvalidInput

ZONE = "Asia/Shanghai"  # whose months they are: the zone incident_month() (migration 0009) cuts them in
KEEP_AHEAD = 3  # months made beyond the current one
KEEP_BEHIND = 1  # and before it (reports dated yesterday, on the first of a month)
LOCK_TIMEOUT = "2s"
_MONTHS_LOCK = 4_771_009  # pg_advisory_xact_lock key: one process makes months at a time


def make(conn: psycopg.Connection, month: date) -> str | None:
    """Make one month's partition (moving its waiting reports out of incident_default); its
    name, or None when it was there already. In the caller's transaction."""
    if not date(2000, 1, 1) <= month < date(2100, 1, 1):
        raise InvalidInput(f"month {month:%Y-%m} is outside 2000-01 .. 2099-12")
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [_MONTHS_LOCK])
    made: str | None = value(conn, "SELECT incident_month(%s)", [month])
    return made


def make_between(conn: psycopg.Connection, first: datetime, last: datetime) -> list[str]:
    """Make every month from the one holding `first` to the one holding `last` (Beijing time)
    where missing, before reports of those times are stored in bulk; the names made. In the
    caller's transaction."""
    months = [r["m"] for r in dicts(conn, """
        SELECT generate_series(date_trunc('month', %(first)s AT TIME ZONE %(zone)s),
                               date_trunc('month', %(last)s AT TIME ZONE %(zone)s), interval '1 month')::date AS m
        """, {"first": first, "last": last, "zone": ZONE})]
    if len(months) > 240:
        raise InvalidInput(f"{len(months)} months from {first:%Y-%m} to {last:%Y-%m}: at most 240 at once")
    return [name for month in months if (name := make(conn, month))]


def keep(conn: psycopg.Connection, ahead: int = KEEP_AHEAD) -> list[str]:
    """Make the current month (Beijing time, by the database's clock), the one before and the
    `ahead` after it where missing, each in a transaction of its own (`conn` must not be in one); the names made.
    A month whose lock is not had within LOCK_TIMEOUT raises psycopg.errors.LockNotAvailable,
    the months before it made."""
    if not 0 <= ahead <= 120:
        raise InvalidInput(f"ahead must be 0..120 months, not {ahead}")
    made = []
    for n in range(-KEEP_BEHIND, ahead + 1):
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            month: date = value(conn, "SELECT (date_trunc('month', now() AT TIME ZONE %s) "
                                      "+ %s * interval '1 month')::date", [ZONE, n])
            name = make(conn, month)
        if name:
            made.append(name)
    return made


def listing(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every partition of `incident`, oldest first (the default last): its name, its range and
    how many reports it holds (the planner's estimate, exact for incident_default), its month
    (`2026-11`; "other months" for the default) and its size in bytes."""
    rows = dicts(conn, """
        SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound,
               greatest(c.reltuples, 0)::bigint AS estimate, pg_total_relation_size(c.oid) AS bytes
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'incident'::regclass
        ORDER BY c.relname = 'incident_default', c.relname""")
    waiting = value(conn, "SELECT count(*) FROM incident_default")
    for r in rows:
        default = r["name"] == "incident_default"
        r["reports"] = waiting if default else r.pop("estimate")
        r.pop("estimate", None)
        r["month"] = "other months" if default else r["name"].removeprefix("incident_").replace("_", "-")
    return rows
