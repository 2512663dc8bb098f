"""Benchmark: the point index itself (geo/locate), this checkout against another, paired in one run.

    .venv/bin/python bench/bench_locate_core.py --other ../gridmap-before [--pairs 8]

No HTTP: each checkout's `Locator` is built in a process of its own from bench/bench_locate.py's
65,000-grid city (gridmap_bench_city, loaded when missing), and both are then timed in turn,
A B A B ..., on the same random points:
  one    `locate_one` (the GET /locate and intake path) on 20,000 points, µs a point;
  batch  `locate` (the POST /locate path) on 1,000,000 points, seconds.
Each figure is CPU time (process_time: time spent waiting for a core on a busy shared machine does
not count), the best of 3 inside a pair; the ratio is taken pair by pair, so the machine's drift
cancels. bench_locate_ab.py measures the
whole request; this measures the part a change to geo/locate can move.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(tree: Path, url: str, points: int, batch: int) -> None:
    """Build the index of `tree`'s code, then answer 'one' and 'batch' on stdin with seconds."""
    sys.path.insert(0, str(tree))
    import numpy as np
    import psycopg

    from geo.db import units

    with psycopg.connect(url) as conn:
        index = units.locator(conn)
        minx, miny, maxx, maxy = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) e FROM unit_version WHERE level = 'street' AND valid_to IS NULL) s").fetchone()
    rng = np.random.default_rng(4)
    xs, ys = rng.uniform(minx, maxx, batch), rng.uniform(miny, maxy, batch)
    one = list(zip(xs[:points].tolist(), ys[:points].tolist(), strict=True))
    index.locate(xs[:1000], ys[:1000])
    print("ready", flush=True)
    for line in sys.stdin:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            if line.strip() == "one":
                for x, y in one:
                    index.locate_one(x, y)
            else:
                index.locate(xs, ys)
            best = min(best, time.process_time() - start)
        print(best / points * 1e6 if line.strip() == "one" else best, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other", type=Path, help="the other checkout's root (B, the baseline)")
    parser.add_argument("--file", type=Path, default=Path("/tmp/gridmap-city.gpkg"))
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000_000)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.url, args.points, args.batch)
        return
    if args.other is None or not (args.other / "geo" / "locate").is_dir():
        raise SystemExit("--other must name a gridmap checkout (B, the baseline)")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_locate import ensure_city, ensure_database

    from geo.db.connection import database_url

    ensure_city(args.file, args.grids, seed=1)
    url = ensure_database(database_url(), "gridmap_bench_city", args.file)
    trees = {"A": ROOT, "B": args.other.resolve()}
    procs = {}
    for side, tree in trees.items():
        procs[side] = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), "--url", url,
             "--points", str(args.points), "--batch", str(args.batch)],
            cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert procs[side].stdout is not None and procs[side].stdout.readline().strip() == "ready"

    def ask(side: str, what: str) -> float:
        proc = procs[side]
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(what + "\n")
        proc.stdin.flush()
        return float(proc.stdout.readline())

    try:
        pairs: dict[str, list[dict[str, float]]] = {"one": [], "batch": []}
        for k in range(args.pairs):
            for what in ("one", "batch"):
                order = ("A", "B") if k % 2 == 0 else ("B", "A")
                timed = {side: ask(side, what) for side in order}
                pairs[what].append(timed)
                print(f"{what} pair {k + 1}: A {timed['A']:.3f}, B {timed['B']:.3f}, "
                      f"A/B {timed['A'] / timed['B']:.3f}", flush=True)
    finally:
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(60)
    print(f"\nthe point index on the city, {args.pairs} pairs; A = {ROOT}, B = {trees['B']}")
    print("| figure | A | B | A/B, median of pairs (min–max) |")
    print("|---|---:|---:|---:|")
    for what, label in (("one", f"locate_one, CPU µs a point ({args.points:,} points, best of 3)"),
                        ("batch", f"locate, {args.batch:,} points (CPU s, best of 3)")):
        ratios = [p["A"] / p["B"] for p in pairs[what]]
        print(f"| {label} | {statistics.median(p['A'] for p in pairs[what]):.3f} | "
              f"{statistics.median(p['B'] for p in pairs[what]):.3f} | {statistics.median(ratios):.3f} "
              f"({min(ratios):.3f}–{max(ratios):.3f}) |")


if __name__ == "__main__":
    main()
