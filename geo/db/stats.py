"""The counting behind /stats: one parallel scan counts incidents by (unit, state, category);
the medians, which PostgreSQL cannot compute in parallel, run at the same time on a second
connection when one is given. geo/incidents/stats.py shapes the answer.

Rolling retired units up (the default) keeps that scan as it is: it counts by the unit each
incident was assigned to, and a retired unit that became one current unit is mapped to it
afterwards, by id. The incidents of a retired unit that became several are read again
(few, and by index at street, community and grid) and matched to the part of its successors
their point lies in now, the parts sent as parameters. The parts are made disjoint first
(each successor less those before it by code), so an incident counts once even where
successors overlap; a point in none of them (on a shared boundary, or outside after later
edits) counts in the first successor by code. The medians take the same mapping.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from geo.db.rows import dicts, value
from geo.db.units import level_names, successors
from geo.incidents import stats
from geo.incidents.lifecycle import OPEN_STATES
from geo.units.levels import PARENT_COLUMNS

# each successor of a retired unit that became several, less the successors before it by code
_PARTS_SQL = """
    WITH s AS (
        SELECT m.root, m.to_id, v.code, v.geom
        FROM unnest(%s::bigint[], %s::bigint[]) AS m (root, to_id)
        JOIN unit_version v ON v.unit_id = m.to_id AND v.valid_to IS NULL
    )
    SELECT s.root, s.to_id, ST_AsEWKB(coalesce(
        ST_Difference(s.geom, (SELECT ST_Union(o.geom) FROM s o WHERE o.root = s.root AND o.code < s.code)),
        s.geom)) AS part
    FROM s
"""


@dataclass
class _Rollup:
    """Where the incidents of retired units count: nothing moves for `retired=separate`."""

    default: dict[int, int] = field(default_factory=dict)  # retired unit: its successor (the first by code)
    params: dict[str, Any] = field(default_factory=dict)  # the parts of those that became several


def _rollup(conn: psycopg.Connection, level: str) -> _Rollup:
    became = successors(conn, level=level)
    roll = _Rollup({root: to[0]["unit_id"] for root, to in became.items()})
    pairs = [(root, to["unit_id"]) for root, tos in became.items() if len(tos) > 1 for to in tos]
    if pairs:
        parts = dicts(conn, _PARTS_SQL, [[p[0] for p in pairs], [p[1] for p in pairs]])
        roll.params = {"p_roots": sorted({p[0] for p in pairs}), "p_from": [r["root"] for r in parts],
                       "p_to": [r["to_id"] for r in parts], "p_geom": [bytes(r["part"]).hex() for r in parts]}
    return roll


def _counts_sql(col: str, window: str, split: bool = False) -> str:
    """Counts by (assigned unit, the part of its successors, state, category). The one scan
    counts every incident by its assigned unit. The incidents of units that became several are
    counted again (`split`, by index) by the part each point lies in: in one statement the
    planner, which cannot tell how many parts there are, would sort every incident instead of
    hashing them in parallel."""
    part, join, only = ("p.t", _parts_join(col), f"AND i.{col} = ANY(%(p_roots)s::bigint[])") if split \
        else ("NULL::bigint", "", "")
    return f"""
        SELECT i.{col}, {part}, i.state, i.category, count(*),
               count(*) FILTER (WHERE (i.state = ANY(%(open)s) AND now() > i.deadline)
                                   OR coalesce(i.resolved_at, i.closed_at) > i.deadline),
               count(*) FILTER (WHERE i.evaluation IN ('satisfied', 'basically_satisfied')),
               count(*) FILTER (WHERE i.evaluation IN ('satisfied', 'basically_satisfied', 'unsatisfied'))
        FROM incident i {join} WHERE {window} AND i.{col} IS NOT NULL {only} GROUP BY 1, 2, 3, 4"""


def _parts_join(col: str) -> str:
    return (f"LEFT JOIN unnest(%(p_from)s::bigint[], %(p_to)s::bigint[], %(p_geom)s::text[]::geometry[]) "
            f"AS p (f, t, g) ON p.f = i.{col} AND ST_Contains(p.g, i.geom)")


def _medians_sql(col: str, window: str, split: bool) -> str:
    """Median seconds to resolve per unit incidents count in (one successor, or the part)."""
    part, join = ("p.t", _parts_join(col)) if split else ("NULL::bigint", "")
    return (f"SELECT coalesce({part}, d.t, i.{col}), percentile_cont(0.5) WITHIN GROUP "
            f"(ORDER BY extract(epoch FROM i.resolved_at - i.reported_at)) FROM incident i "
            f"LEFT JOIN unnest(%(d_from)s::bigint[], %(d_to)s::bigint[]) AS d (f, t) ON d.f = i.{col} {join} "
            f"WHERE {window} AND i.{col} IS NOT NULL AND i.resolved_at IS NOT NULL GROUP BY 1")


def incident_stats(conn: psycopg.Connection, level: str, start: datetime, end: datetime,
                   median_conn: psycopg.Connection | None = None, retired: str = "rollup") -> dict[str, Any]:
    """Per unit of `level`: incidents reported in [start, end), retired units rolled up into
    their successors or listed apart (`retired`, see geo/incidents/stats.py)."""
    stats.check(level, start, end, retired)
    col = PARENT_COLUMNS[level]
    window = "i.reported_at >= %(start)s AND i.reported_at < %(end)s"
    roll = _rollup(conn, level) if retired == "rollup" else _Rollup()
    params: dict[str, Any] = {"start": start, "end": end, "open": list(OPEN_STATES),
                              "d_from": list(roll.default), "d_to": list(roll.default.values()), **roll.params}
    split = bool(roll.params)
    median_sql = _medians_sql(col, window, split)
    medians: dict[int, float] = {}
    worker = None
    if median_conn is not None:
        def run() -> None:
            with median_conn.transaction():
                _no_jit(median_conn)
                medians.update(dict(median_conn.execute(median_sql, params).fetchall()))

        worker = threading.Thread(target=run)
        worker.start()
    with conn.transaction():
        _no_jit(conn)
        counted = conn.execute(_counts_sql(col, window), params).fetchall()
        if split:
            apart = set(roll.params["p_roots"])
            counted = [r for r in counted if r[0] not in apart]
            counted += conn.execute(_counts_sql(col, window, split=True), params).fetchall()
        if worker is not None:
            worker.join()
        else:
            medians = dict(conn.execute(median_sql, params).fetchall())
    # (unit, state, category, count, overdue, the unit the incidents were assigned to, rated
    # satisfied or basically satisfied, rated at all)
    rows = [(_unit_of(roll, unit_id, part), state, category, n, overdue, unit_id, pleased, rated)
            for unit_id, part, state, category, n, overdue, pleased, rated in counted]
    names = level_names(conn, level, list({r[0] for r in rows} | {r[5] for r in rows}))
    units = stats.per_unit(rows, medians, names, every_current=True)
    unassigned = value(conn, f"SELECT count(*) FROM incident i WHERE {window} AND i.unassigned",
                       {"start": start, "end": end})
    return {"level": level, "from": start, "to": end, "retired": retired, "unassigned": unassigned, "units": units}


def _unit_of(roll: _Rollup, assigned: int, part: int | None) -> int:
    """The unit incidents count in: the part of a successor holding them, the one successor."""
    return part if part is not None else roll.default.get(assigned, assigned)


def _no_jit(conn: psycopg.Connection) -> None:
    """No JIT for the rest of the transaction: PostGIS prices ST_Contains so high that the
    planner would compile the scan, which costs seconds and saves nothing (measured: 5-7 s
    of compiling for a 0.3 s scan of 300,000 incidents)."""
    conn.execute("SELECT set_config('jit', 'off', true)")
