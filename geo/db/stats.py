"""The counting behind /stats: one parallel scan counts incidents by (unit, state, category);
the medians, which PostgreSQL cannot compute in parallel, run at the same time on a second
connection when one is given. geo/incidents/stats.py shapes the answer."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import psycopg

from geo.db.rows import value
from geo.db.units import latest_names
from geo.incidents import stats
from geo.incidents.lifecycle import OPEN_STATES
from geo.units.levels import PARENT_COLUMNS


def incident_stats(conn: psycopg.Connection, level: str, start: datetime, end: datetime,
                   median_conn: psycopg.Connection | None = None) -> dict[str, Any]:
    """Per unit of `level`: incidents reported in [start, end) (see geo/incidents/stats.py)."""
    stats.check(level, start, end)
    col = PARENT_COLUMNS[level]
    window = "reported_at >= %(start)s AND reported_at < %(end)s"
    params: dict[str, Any] = {"start": start, "end": end, "open": list(OPEN_STATES)}
    median_sql = (
        f"SELECT {col}, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - reported_at)) "
        f"FROM incident WHERE {window} AND {col} IS NOT NULL AND resolved_at IS NOT NULL GROUP BY 1"
    )
    medians: dict[int, float] = {}
    worker = None
    if median_conn is not None:
        def run() -> None:
            medians.update(dict(median_conn.execute(median_sql, params).fetchall()))

        worker = threading.Thread(target=run)
        worker.start()
    rows = conn.execute(
        f"""
        SELECT {col}, state, category, count(*),
               count(*) FILTER (WHERE (state = ANY(%(open)s) AND now() > deadline)
                                   OR coalesce(resolved_at, closed_at) > deadline)
        FROM incident WHERE {window} AND {col} IS NOT NULL GROUP BY 1, 2, 3
        """, params).fetchall()
    if worker is not None:
        worker.join()
    else:
        medians = dict(conn.execute(median_sql, params).fetchall())
    units = stats.per_unit(rows, medians, latest_names(conn, list({r[0] for r in rows})))
    unassigned = value(conn, f"SELECT count(*) FROM incident WHERE {window} AND unassigned", params)
    return {"level": level, "from": start, "to": end, "unassigned": unassigned, "units": units}
