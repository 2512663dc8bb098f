"""Benchmark: the point index following commits at city scale (issue 14).

    .venv/bin/python bench/bench_index.py [--commits 50] [--seconds 120] [--every 30]

Over bench/bench_locate.py's generated city (65,000 grids, about a million units; database
gridmap_bench_city, made on the first run), each figure beside its baseline in the same run:

  1. in process: a full build of the index (what every worker did after each commit before)
     against bringing the index up to one commit (a rename; a grid nudged by 1e-7 degrees;
     a split of a community's grid), and mapping the snapshot from disk (a cold start)
     against the full build;
  2. HTTP, 2 uvicorn workers: GET /locate with wrk (16 connections), `--seconds` without
     commits, then `--seconds` with a commit every `--every` seconds: p50, p99, max; and how
     long after a commit returns the change is visible to /locate;
  3. memory: each worker's RSS and PSS (its share of pages mapped by both) after each of
     `--commits` commits (lookups between them make both workers follow).
Needs the embedded cluster (`gridmap db start`) or DATABASE_URL, and wrk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psycopg
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_locate import ensure_city, ensure_database, random_points  # noqa: E402
from cityload import memory, workers, wrk_paths  # noqa: E402

from geo.db import units  # noqa: E402
from geo.db.connection import database_url  # noqa: E402
from geo.usecases import locators  # noqa: E402
from geo.usecases import units as edits  # noqa: E402


def _grid(conn: psycopg.Connection, rng: np.random.Generator) -> dict:
    row = conn.execute("SELECT unit_id, version, name, ST_AsBinary(geom), ST_X(ST_PointOnSurface(geom)), "
                       "ST_Y(ST_PointOnSurface(geom)) FROM unit_version WHERE level = 'grid' AND valid_to IS NULL "
                       "OFFSET %s LIMIT 1", [int(rng.integers(0, 60_000))]).fetchone()
    conn.commit()
    return {"id": row[0], "version": row[1], "name": row[2], "geom": shapely.from_wkb(row[3]), "x": row[4], "y": row[5]}


def commit(conn: psycopg.Connection, rng: np.random.Generator, kind: str) -> dict:
    """One edit of a random grid: a rename, or a rename and a nudge of 1e-7 degrees (the
    issue's case). Returns the grid with its new name."""
    grid = _grid(conn, rng)
    name = f"{grid['name'].split('·')[0]}·{int(rng.integers(1_000_000))}"
    geom = shapely.affinity.translate(grid["geom"], 1e-7, 0) if kind == "nudge" else None
    with conn.transaction():
        edits.edit_unit(conn, grid["id"], expected_version=grid["version"], name=name, geom=geom, actor="bench")
    return {**grid, "name": name}


def in_process(url: str, rng: np.random.Generator) -> None:
    os.environ["DATABASE_URL"] = url
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        units.locator(conn)
        full = time.perf_counter() - start
        print(f"full build of the index (baseline): {full:.1f} s")
        start = time.perf_counter()
        where = locators.build_snapshot(conn)
        print(f"snapshot build and write: {time.perf_counter() - start:.1f} s ({where})")
        start = time.perf_counter()
        locators.reset()
        locators.current(conn)
        cold = time.perf_counter() - start
        print(f"cold start from the snapshot: {cold:.2f} s  ({cold / full:.3f} of a full build)")
        for kind in ("rename", "nudge", "rename", "nudge"):
            commit(conn, rng, kind)
            start = time.perf_counter()
            state = locators.current(conn)
            took = time.perf_counter() - start
            print(f"follow one commit ({kind:6}): {took * 1000:7.1f} ms  ({took / full:.4f} of a full build; "
                  f"{state.layers} layers, {state.patched_units():,} units in them)")


def over_http(url: str, rng: np.random.Generator, args: argparse.Namespace) -> None:
    env = {**os.environ, "GRIDMAP_AUTH": "off", "DATABASE_URL": url}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port",
                             str(args.port), "--workers", "2", "--log-level", "warning", "--no-access-log"],
                            cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{args.port}"
    try:
        while True:
            try:
                if httpx.get(base + "/locate", params={"lon": 114.3, "lat": 30.55}, timeout=120).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with httpx.Client(timeout=120) as client:  # both workers answer
            for _ in range(20):
                client.get(base + "/locate", params={"lon": 114.3, "lat": 30.55}, headers={"Connection": "close"})
        print(f"server up and both workers answering /locate: {time.perf_counter() - started:.1f} s")
        x, y = random_points(url, 20_000, 3)
        paths = [f"/locate?lon={a:.7f}&lat={b:.7f}" for a, b in zip(x, y, strict=True)]
        quiet = wrk_paths(base, paths, args.seconds)
        print(f"GET /locate, no commits (baseline): {quiet['rps']:,.0f}/s, p50 {quiet['p50']:.2f} ms, "
              f"p99 {quiet['p99']:.2f} ms, max {quiet['max']:.1f} ms, {quiet['errors']} errors")
        visible: list[float] = []
        stop = threading.Event()

        def planner() -> None:
            with psycopg.connect(url, autocommit=True) as conn, httpx.Client(timeout=30) as client:
                while not stop.wait(args.every):
                    grid = commit(conn, rng, "nudge")
                    done = time.perf_counter()
                    while time.perf_counter() - done < 30:
                        body = client.get(base + "/locate", params={"lon": grid["x"], "lat": grid["y"]}).json()
                        if (body.get("grid") or {}).get("name") == grid["name"]:
                            visible.append(time.perf_counter() - done)
                            break

        thread = threading.Thread(target=planner, daemon=True)
        thread.start()
        busy = wrk_paths(base, paths, args.seconds)
        stop.set()
        thread.join()
        print(f"GET /locate, a commit every {args.every} s: {busy['rps']:,.0f}/s, p50 {busy['p50']:.2f} ms, "
              f"p99 {busy['p99']:.2f} ms, max {busy['max']:.1f} ms, {busy['errors']} errors "
              f"(p99 {busy['p99'] / quiet['p99']:.2f}x, max {busy['max'] / quiet['max']:.2f}x the baseline)")
        print(f"a commit visible to /locate after: {', '.join(f'{v * 1000:.0f} ms' for v in visible)}")

        pids = workers(proc.pid)
        with psycopg.connect(url, autocommit=True) as conn, httpx.Client(timeout=60) as client:
            first = [memory(p) for p in pids]
            series = []
            for k in range(args.commits):
                commit(conn, rng, "nudge" if k % 2 else "rename")
                for _ in range(16):
                    client.get(base + "/locate", params={"lon": 114.3, "lat": 30.55}, headers={"Connection": "close"})
                series.append([memory(p) for p in pids])
        for w, pid in enumerate(pids):
            rss = [s[w][0] for s in series]
            private = [s[w][2] for s in series]
            print(f"worker {pid}: RSS {first[w][0]:,.0f} MB before, {min(rss):,.0f}-{max(rss):,.0f} MB over "
                  f"{args.commits} commits (last {rss[-1]:,.0f}); "
                  f"PSS {first[w][1]:,.0f} -> {series[-1][w][1]:,.0f} MB; "
                  f"private {first[w][2]:,.0f} -> {min(private):,.0f}-{max(private):,.0f} MB "
                  f"(after commit 10: {private[min(9, len(private) - 1)]:,.0f})")
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--file", type=Path, default=Path(tempfile.gettempdir()) / "gridmap-city.gpkg")
    parser.add_argument("--database", default="gridmap_bench_city")
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    ensure_city(args.file, args.grids, args.seed)
    url = ensure_database(database_url(), args.database, args.file)
    rng = np.random.default_rng(args.seed)
    if not args.skip_in_process:
        in_process(url, rng)
    over_http(url, rng, args)


if __name__ == "__main__":
    main()
