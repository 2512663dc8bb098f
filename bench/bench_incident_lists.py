"""Benchmark: a list of 1,000 incidents in one query, against the old path of one query each.

    .venv/bin/python bench/bench_incident_lists.py [--database gridmap_bench_incidents] [--rounds 5]

Reuses bench_stats.py's database (the sample district and a year of 1,000,000 generated
incidents). `GET /incidents?limit=1000` and Open311's `requests.json` read a page with
geo/db/incidents.py `page`: one query for the page (and one to count it). The old path, before
issue 12, found the ids and then read each incident whole by itself (`get`, one query each),
which is the baseline here, run in the same process over the same pages, alternating. Queries
are counted by a cursor that counts what it executes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.db import incidents  # noqa: E402
from geo.security.identity import as_identity  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from incidentdb import reused  # noqa: E402


class Counting(psycopg.Cursor[Any]):
    executed = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        Counting.executed += 1
        return super().execute(*args, **kwargs)


def one_query(conn: psycopg.Connection, selection: incidents.Filter, offset: int) -> list[dict]:
    _, rows = incidents.page(conn, selection, viewer=VIEWER, limit=1000, offset=offset, with_total=False)
    return rows


def one_each(conn: psycopg.Connection, selection: incidents.Filter, offset: int) -> list[dict]:
    where, params = selection.where()
    ids = [r[0] for r in conn.execute(f"SELECT id FROM incident WHERE {where} ORDER BY reported_at DESC, id DESC "
                                      "LIMIT 1000 OFFSET %s", [*params, offset])]
    return [incidents.get(conn, i, viewer=VIEWER) for i in ids]


VIEWER = as_identity("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="gridmap_bench_incidents")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url, have = reused(args.database)
    with psycopg.connect(url, cursor_factory=Counting) as conn:
        conn.autocommit = True
        lists = [("newest 1,000 of the city", incidents.Filter()),
                 ("open ones", incidents.Filter(states=["reported", "assigned", "in_progress"]))]
        print(f"{have:,} incidents")
        print()
        print("| list | path | queries | time p50 (ms) | rounds |")
        print("|---|---|---:|---:|---:|")
        for name, selection in lists:
            times: dict[str, list[float]] = {"one query": [], "one query each (old)": []}
            queries: dict[str, int] = {}
            for r in range(args.rounds):
                offset = r * 100  # pages that overlap a little: every list has 1,400 incidents
                for path, run in (("one query", one_query), ("one query each (old)", one_each)):
                    Counting.executed = 0
                    t = time.perf_counter()
                    rows = run(conn, selection, offset)
                    times[path].append((time.perf_counter() - t) * 1000)
                    queries[path] = Counting.executed
                    assert len(rows) == 1000, (path, len(rows))
            for path in times:
                print(f"| {name} | {path} | {queries[path]:,} | {statistics.median(times[path]):,.0f} | "
                      f"{args.rounds} |")
        a = one_query(conn, incidents.Filter(), 0)
        b = one_each(conn, incidents.Filter(), 0)
        assert a == b, "the two paths disagree"
        print("\nthe two paths give the same 1,000 incidents, field for field")


if __name__ == "__main__":
    main()
