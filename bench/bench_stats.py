"""Benchmark: incident statistics for one district over a year of 1,000,000 generated incidents.

    .venv/bin/python bench/bench_stats.py [--incidents 1000000]

The sample district is loaded into a database of its own (kept between runs), a year of
realistic incidents is generated (geo.incidents.sample: categories, daily rhythm, hot spots) and
assigned to their units in bulk, then `GET /stats`'s query (geo/db/stats.py) is timed per
grid, community and street. Baseline in the same run: the same numbers from pandas groupby on
the incidents already in memory (reading them is not counted). Target: < 1 s.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.db import units  # noqa: E402
from geo.db.connection import database_url  # noqa: E402
from geo.db.incidents import insert_generated  # noqa: E402
from geo.db.migrations import migrate  # noqa: E402
from geo.db.stats import incident_stats  # noqa: E402
from geo.incidents import sample as incident_sample  # noqa: E402
from geo.usecases import units as imports  # noqa: E402


def _url(base: str, db: str) -> str:
    params = conninfo_to_dict(base)
    params["dbname"] = db
    return make_conninfo(**params)


def pandas_stats(frame: pd.DataFrame, level: str, now: datetime) -> pd.DataFrame:
    col = f"{level}_id"
    f = frame[frame[col].notna()]
    finished = f["resolved_at"].fillna(f["closed_at"])
    open_ = f["state"].isin(["reported", "assigned", "in_progress"])
    f = f.assign(overdue=(open_ & (now > f["deadline"])) | (finished > f["deadline"]),
                 resolved=f["state"].isin(["resolved", "closed"]),
                 counted=~f["state"].isin(["rejected", "duplicate"]),
                 hours=(f["resolved_at"] - f["reported_at"]).dt.total_seconds() / 3600)
    out = f.groupby(col).agg(total=("state", "size"), overdue=("overdue", "sum"), resolved=("resolved", "sum"),
                             counted=("counted", "sum"), median_hours=("hours", "median"))
    out["by_state"] = f.groupby([col, "state"]).size().unstack(fill_value=0).to_dict("index")
    out["by_category"] = f.groupby([col, "category"]).size().unstack(fill_value=0).to_dict("index")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--database", default="gridmap_bench_incidents")
    args = parser.parse_args()
    base = database_url()
    url = _url(base, args.database)
    with psycopg.connect(_url(base, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [args.database]).fetchone():
            conn.execute(f'CREATE DATABASE "{args.database}"')
    with psycopg.connect(url) as conn, psycopg.connect(url) as median_conn:
        migrate(conn)
        if not conn.execute("SELECT count(*) FROM unit_version").fetchone()[0]:
            conn.commit()
            imports.load_district(imports.SAMPLE_PATH, url=url)
        have = conn.execute("SELECT count(*) FROM incident").fetchone()[0]
        end = datetime.now(UTC)
        start, end = incident_sample.window_for_year(end)
        if have != args.incidents:
            conn.execute("TRUNCATE incident_event, incident_external_id, incident")
            locator = units.locator(conn)
            t = time.perf_counter()
            columns = incident_sample.generate(locator, args.incidents, start, end, seed=1)
            insert_generated(conn, locator, columns)
            conn.commit()
            conn.execute("ANALYZE incident")
            conn.commit()
            print(f"generated and stored {args.incidents:,} incidents in {time.perf_counter() - t:.0f} s")
        else:
            start, end = conn.execute(
                "SELECT min(reported_at), max(reported_at) + interval '1 second' FROM incident").fetchone()
            print(f"reusing {have:,} incidents")
        rows = conn.execute(
            "SELECT grid_id, community_id, street_id, state, category, reported_at, deadline, resolved_at, "
            "closed_at FROM incident WHERE reported_at >= %s AND reported_at < %s", [start, end]).fetchall()
        frame = pd.DataFrame(rows, columns=["grid_id", "community_id", "street_id", "state", "category",
                                            "reported_at", "deadline", "resolved_at", "closed_at"])
        for c in ("reported_at", "deadline", "resolved_at", "closed_at"):
            frame[c] = pd.to_datetime(frame[c], utc=True)
        now = pd.Timestamp(conn.execute("SELECT now()").fetchone()[0])
        print(f"window {start:%Y-%m-%d} .. {end:%Y-%m-%d}: {len(frame):,} incidents")
        print()
        print("| level | units | gridmap stats (s, best of 3) | pandas groupby in memory (s) | gridmap / pandas |")
        print("|---|---:|---:|---:|---:|")
        for level in ("grid", "community", "street"):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                answer = incident_stats(conn, level, start, end, median_conn=median_conn)
                times.append(time.perf_counter() - t)
            t = time.perf_counter()
            expected = pandas_stats(frame, level, now)
            t_pd = time.perf_counter() - t
            got = {u["unit_id"]: u["total"] for u in answer["units"]}
            assert got == {int(k): int(v) for k, v in expected["total"].items()}, "totals disagree with pandas"
            print(f"| {level} | {len(answer['units'])} | {min(times):.3f} | {t_pd:.3f} | {min(times) / t_pd:.2f} |")


if __name__ == "__main__":
    main()
