"""Benchmark: what partitioning incidents by month costs and saves, on 1,000,000 incidents.

    .venv/bin/python bench/bench_incident_months.py [--database gridmap_bench_incidents]

Reuses bench_stats.py's database (the sample district and a year of generated incidents:
run `bench/bench_stats.py` first). Baseline in the same run: the same rows in one ordinary
table with the same indexes (`bench_incident_flat`, made once), each query alternating
between the two so both see the same machine. Timed, each over the same random inputs:

- by id: one incident by its id alone (what GET /incidents/{id} and every lifecycle change do;
  the partitioned table probes one index per month),
- grid page: the newest 50 of one grid (the dispatch list),
- month by grid: counts per grid for one month (statistics; the partitioned table reads one month),
- intake: one incident stored per transaction with its first event (as a report is).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from incidentdb import reused  # noqa: E402

FLAT = "bench_incident_flat"


def _flat(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT to_regclass(%s)", [FLAT]).fetchone()[0]:
        return
    t = time.perf_counter()
    conn.execute(f"CREATE TABLE {FLAT} (LIKE incident INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)")
    conn.execute(f"INSERT INTO {FLAT} SELECT * FROM incident")
    conn.execute(f"CREATE TABLE {FLAT}_event (LIKE incident_event INCLUDING DEFAULTS INCLUDING INDEXES)")
    conn.commit()
    conn.execute(f"ANALYZE {FLAT}")
    conn.commit()
    print(f"made the unpartitioned baseline table in {time.perf_counter() - t:.0f} s")


def _times(conn: psycopg.Connection, run: Callable[[psycopg.Connection, str, object], None], table: str,
           inputs: list) -> list[float]:
    out = []
    for x in inputs:
        t = time.perf_counter()
        run(conn, table, x)
        out.append((time.perf_counter() - t) * 1000)
    return out


def by_id(conn: psycopg.Connection, table: str, incident_id: object) -> None:
    conn.execute(f"SELECT * FROM {table} WHERE id = %s", [incident_id], prepare=True).fetchall()


def grid_page(conn: psycopg.Connection, table: str, grid: object) -> None:
    conn.execute(f"SELECT id FROM {table} WHERE grid_id = %s ORDER BY reported_at DESC, id DESC LIMIT 50", [grid],
                 prepare=True).fetchall()


def month_by_grid(conn: psycopg.Connection, table: str, window: object) -> None:
    lo, hi = window  # type: ignore[misc]
    conn.execute(f"SELECT grid_id, count(*) FROM {table} WHERE reported_at >= %s AND reported_at < %s "
                 "GROUP BY 1", [lo, hi]).fetchall()


def intake(conn: psycopg.Connection, table: str, row: object) -> None:
    events = "incident_event" if table == "incident" else f"{FLAT}_event"
    with conn.transaction():
        made = conn.execute(
            f"INSERT INTO {table} (district, category, reported_at, channel, input_lon, input_lat, input_crs, geom, "
            "state, grid_id, unassigned, deadline) VALUES ('420199', 'garbage', now(), 'app', %s, %s, 'EPSG:4326', "
            "ST_SetSRID(ST_Point(%s, %s), 4326), 'reported', %s, false, now() + interval '1 day') "
            "RETURNING id, district, reported_at", [*row[:2], *row[:2], row[2]], prepare=True).fetchone()  # type: ignore
        conn.execute(f"INSERT INTO {events} (incident_id, district, incident_reported_at, actor, to_state) "
                     "VALUES (%s, %s, %s, 'bench', 'reported')", made, prepare=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="gridmap_bench_incidents")
    parser.add_argument("--n", type=int, default=2000, help="inputs per query")
    args = parser.parse_args()
    url, have = reused(args.database)
    rng = random.Random(1)
    with psycopg.connect(url) as conn:
        _flat(conn)
        months = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'incident'::regclass").fetchone()[0]
        lo_id, hi_id = conn.execute("SELECT min(id), max(id) FROM incident").fetchone()
        grids = [r[0] for r in conn.execute("SELECT DISTINCT grid_id FROM incident WHERE grid_id IS NOT NULL")]
        first, last = conn.execute("SELECT min(reported_at), max(reported_at) FROM incident").fetchone()
        windows = conn.execute(
            "SELECT m AT TIME ZONE 'Asia/Shanghai', (m + interval '1 month') AT TIME ZONE 'Asia/Shanghai' FROM "
            "generate_series(date_trunc('month', %s AT TIME ZONE 'Asia/Shanghai') + interval '1 month', "
            "%s AT TIME ZONE 'Asia/Shanghai' - interval '1 month', interval '1 month') AS m", [first, last]).fetchall()
        spot = conn.execute("SELECT ST_X(geom), ST_Y(geom), grid_id FROM incident WHERE grid_id IS NOT NULL "
                            "LIMIT 1").fetchone()
        conn.commit()
        conn.autocommit = True  # each intake its own transaction, committed
        print(f"{have:,} incidents in {months} partitions (months and the default)")
        cases = [
            ("by id", by_id, [rng.randint(lo_id, hi_id) for _ in range(args.n)]),
            ("grid page (newest 50)", grid_page, [rng.choice(grids) for _ in range(args.n)]),
            ("month by grid", month_by_grid, [rng.choice(windows) for _ in range(max(10, args.n // 100))]),
            ("intake (incident + event)", intake, [spot] * (args.n // 2)),
        ]
        print()
        print("| query | runs | partitioned p50 / p99 (ms) | one table p50 / p99 (ms) | partitioned / one table "
              "(p50) |")
        print("|---|---:|---:|---:|---:|")
        for name, run, inputs in cases:
            part: list[float] = []
            flat: list[float] = []
            for chunk in range(0, len(inputs), max(1, len(inputs) // 10)):  # alternate, ten rounds
                piece = inputs[chunk:chunk + max(1, len(inputs) // 10)]
                part += _times(conn, run, "incident", piece)
                flat += _times(conn, run, FLAT, piece)
            p = statistics.median(part), statistics.quantiles(part, n=100)[98]
            f = statistics.median(flat), statistics.quantiles(flat, n=100)[98]
            print(f"| {name} | {len(part)} | {p[0]:.2f} / {p[1]:.2f} | {f[0]:.2f} / {f[1]:.2f} | {p[0] / f[0]:.2f} |")
        # the bench's own reports out again (the database stays as bench_stats.py left it)
        with conn.transaction():
            conn.execute("DELETE FROM incident_event WHERE actor = 'bench'")
            conn.execute(f"DELETE FROM {FLAT}_event")
            conn.execute("DELETE FROM incident WHERE id > %s", [hi_id])
            conn.execute(f"DELETE FROM {FLAT} WHERE id > %s", [hi_id])


if __name__ == "__main__":
    main()
