"""Benchmark: /locate of this checkout against another checkout's, paired in one run.

    .venv/bin/python bench/bench_locate_ab.py --other ../gridmap-before [--pairs 8] [--seconds 5]

Both apps serve the same database (bench/bench_locate.py's 65,000-grid city, gridmap_bench_city,
loaded when missing) from their own source trees, side by side, each with 2 workers. wrk then
asks them in turn, A B A B ..., the same points for the same seconds, and the ratio of their
requests per second is taken pair by pair: pairing keeps the ratio meaningful while the
machine's speed drifts, which on a shared 2-core machine it does by ±20 % from minute to minute.
Then POST /locate with a batch of 100,000 points, timed the same way (the best of 3 a side).
Use it when a change touches the /locate path (a refactor, a new check): a median ratio near 1
says the path did not get slower.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_locate import ensure_city, ensure_database, random_points, start_server, warm_up, wrk  # noqa: E402

from geo.db.connection import database_url  # noqa: E402


def post_seconds(port: int, body: bytes, tries: int = 3) -> float:
    """The best of `tries` POST /locate with the batch `body` (seconds, answer read whole)."""
    best = float("inf")
    with httpx.Client(timeout=300) as client:
        for _ in range(tries):
            start = time.perf_counter()
            answer = client.post(f"http://127.0.0.1:{port}/locate", content=body,
                                 headers={"content-type": "application/json"})
            best = min(best, time.perf_counter() - start)
            if answer.status_code != 200:
                raise RuntimeError(f"POST /locate on port {port}: {answer.status_code} {answer.text[:200]}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other", type=Path, required=True, help="the other checkout's root (B, the baseline)")
    parser.add_argument("--file", type=Path, default=Path("/tmp/gridmap-city.gpkg"))
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100_000, help="points in each POST /locate")
    args = parser.parse_args()
    other = args.other.resolve()
    if not (other / "api" / "app.py").is_file():
        raise SystemExit(f"{other} is not a gridmap checkout (no api/app.py)")

    ensure_city(args.file, args.grids, args.seed)
    url = ensure_database(database_url(), "gridmap_bench_city", args.file)
    x, y = random_points(url, 5000, seed=2)
    points = np.column_stack([x, y])
    ports = {"A": 8097, "B": 8098}
    procs = {"A": start_server(url, ports["A"]), "B": start_server(url, ports["B"], tree=other)}
    try:
        for side in ("A", "B"):
            warm_up(f"http://127.0.0.1:{ports[side]}")
            wrk(ports[side], points, 2, args.connections)  # both workers of each built their index
        runs: list[dict[str, dict[str, float]]] = []
        for k in range(args.pairs):
            pair = {}
            for side in ("A", "B") if k % 2 == 0 else ("B", "A"):
                pair[side] = wrk(ports[side], points, args.seconds, args.connections)
            runs.append(pair)
            print(f"GET pair {k + 1}: A {pair['A']['rps']:,.0f} req/s, B {pair['B']['rps']:,.0f} req/s, "
                  f"A/B {pair['A']['rps'] / pair['B']['rps']:.3f}", flush=True)
        body = orjson.dumps(np.column_stack(random_points(url, args.batch, seed=3)).tolist())
        batches: list[dict[str, float]] = []
        for k in range(args.pairs):
            timed = {side: post_seconds(ports[side], body) for side in (("A", "B") if k % 2 == 0 else ("B", "A"))}
            batches.append(timed)
            print(f"POST pair {k + 1}: A {timed['A']:.3f} s, B {timed['B']:.3f} s, "
                  f"A/B {timed['A'] / timed['B']:.3f}", flush=True)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(30)

    errors = sum(r[s]["errors"] for r in runs for s in ("A", "B"))
    rps = [r["A"]["rps"] / r["B"]["rps"] for r in runs]
    p50 = [r["A"]["p50"] / r["B"]["p50"] for r in runs]
    p99 = [r["A"]["p99"] / r["B"]["p99"] for r in runs]
    print(f"\n/locate on the city: GET one random point a request, {args.connections} connections, "
          f"{args.pairs} pairs of {args.seconds} s; POST {args.batch:,} points, {args.pairs} pairs; "
          f"A = {ROOT}, B = {other}")
    print("| figure | A | B | A/B, median of pairs (min–max) |")
    print("|---|---:|---:|---:|")
    for label, key, ratios in (("GET requests/s", "rps", rps), ("GET p50 latency (ms)", "p50", p50),
                               ("GET p99 latency (ms)", "p99", p99)):
        a = statistics.median(r["A"][key] for r in runs)
        b = statistics.median(r["B"][key] for r in runs)
        print(f"| {label} | {a:,.1f} | {b:,.1f} | {statistics.median(ratios):.3f} "
              f"({min(ratios):.3f}–{max(ratios):.3f}) |")
    post = [b["A"] / b["B"] for b in batches]
    print(f"| POST /locate, {args.batch:,} points (s, best of 3) | {statistics.median(b['A'] for b in batches):.3f} | "
          f"{statistics.median(b['B'] for b in batches):.3f} | {statistics.median(post):.3f} "
          f"({min(post):.3f}–{max(post):.3f}) |")
    if errors:
        print(f"WARNING: {errors} answers were not 2xx")


if __name__ == "__main__":
    main()
