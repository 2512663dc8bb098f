"""Soak: the 65,000-grid city under a mixed load for 10 minutes, a planner committing every 30 s.

    .venv/bin/python bench/bench_city.py [--minutes 10] [--clients 50] [--every 30]

Over bench/bench_locate.py's city (gridmap_bench_city; `make bench-city` makes it first if
needed), the app on 2 uvicorn workers. `--clients` clients (asyncio + httpx) mix GET /locate
at random points (70 %), grid tiles at z13-z15 with the level's current state (15 %), incident
intake by POST /incidents with a unique external id (10 %) and GET /stats for a random street's
communities (5 %). Every `--every` seconds a planner edits a random grid (a rename and a nudge of
1e-7 degrees) through PUT /units. Reported: requests and p50/p99/max per route, every answer
other than 2xx, each worker's memory (RSS, and the part private to it) sampled every 10 s, and
lost incidents: every 201 must be stored once, none stored without a 201.

The baseline is the first minute of the same run, before the first commit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_locate import ensure_city, ensure_database, random_points  # noqa: E402
from cityload import memory, workers  # noqa: E402

from geo.db import tiles as tile_queries  # noqa: E402
from geo.db.connection import database_url  # noqa: E402
from geo.tiles import maths  # noqa: E402

ROUTES = (("locate", 0.70), ("tile", 0.15), ("incident", 0.10), ("stats", 0.05))


async def client(base: str, rng: random.Random, paths: dict[str, list[str]], stop: float, log: list,
                 made: set[str], run: str) -> None:
    names = [r for r, _ in ROUTES]
    weights = [w for _, w in ROUTES]
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        while time.monotonic() < stop:
            route = rng.choices(names, weights)[0]
            started = time.monotonic()
            try:
                if route == "incident":
                    x, y = paths["points"][rng.randrange(len(paths["points"]))]
                    ext = f"{run}-{uuid.uuid4().hex[:12]}"
                    r = await http.post("/incidents", json={"category": "garbage", "lon": x, "lat": y,
                                                            "external_id": ext, "channel": "app"})
                    if r.status_code == 201:
                        made.add(ext)
                else:
                    r = await http.get(rng.choice(paths[route]))
                status = r.status_code
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            log.append((started, route, time.monotonic() - started, status))


def planner(url: str, base: str, every: float, stop: float, commits: list) -> None:
    rng = np.random.default_rng(3)
    with psycopg.connect(url, autocommit=True) as conn, httpx.Client(base_url=base, timeout=120) as http:
        while time.monotonic() + every < stop:
            time.sleep(every)
            row = conn.execute("SELECT unit_id FROM unit_version WHERE level = 'grid' AND valid_to IS NULL "
                               "OFFSET %s LIMIT 1", [int(rng.integers(0, 60_000))]).fetchone()
            unit = http.get(f"/units/{row[0]}").json()
            geom = unit["geometry"]
            coords = geom["coordinates"]
            geom["coordinates"] = [[[[c[0] + 1e-7, c[1]] for c in ring] for ring in poly] for poly in coords]
            started = time.monotonic()
            r = http.put(f"/units/{row[0]}", json={"version": unit["version"], "geometry": geom,
                                                   "name": unit["name"] + "·"})
            commits.append((started, time.monotonic() - started, r.status_code))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--every", type=float, default=30)
    parser.add_argument("--warm", type=float, default=60, help="seconds before the first commit (the baseline)")
    parser.add_argument("--file", type=Path, default=Path(tempfile.gettempdir()) / "gridmap-city.gpkg")
    parser.add_argument("--database", default="gridmap_bench_city")
    parser.add_argument("--port", type=int, default=8095)
    args = parser.parse_args()
    ensure_city(args.file, 65_000, 1)
    url = ensure_database(database_url(), args.database, args.file)
    x, y = random_points(url, 6000, 9)
    with psycopg.connect(url) as conn:
        state = tile_queries.level_state(conn, "grid")
    tiles = {(z, *maths.tile_at(float(a), float(b), z)) for z in (13, 14, 15)
             for a, b in zip(x[4000:4400], y[4000:4400], strict=True)}
    paths = {
        "locate": [f"/locate?lon={a:.7f}&lat={b:.7f}" for a, b in zip(x[:4000], y[:4000], strict=True)],
        "tile": [f"/tiles/grid/{z}/{tx}/{ty}.mvt?v={state}" for z, tx, ty in sorted(tiles)],
        "stats": ["/stats?level=street", "/stats?level=community"],
        "points": list(zip(x[4400:].tolist(), y[4400:].tolist(), strict=True)),
    }
    env = {**os.environ, "GRIDMAP_AUTH": "off", "DATABASE_URL": url}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port",
                             str(args.port), "--workers", "2", "--log-level", "warning", "--no-access-log"],
                            cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{args.port}"
    try:
        while True:
            try:
                if httpx.get(base + "/locate", params={"lon": 114.3, "lat": 30.55}, timeout=60).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        run = f"soak-{uuid.uuid4().hex[:6]}"
        start = time.monotonic()
        stop = start + args.minutes * 60
        log: list = []
        made: set[str] = set()
        commits: list = []
        samples: list = []
        pids = workers(proc.pid)

        def sample() -> None:
            while time.monotonic() < stop:
                samples.append((time.monotonic() - start, [memory(p) for p in pids]))
                time.sleep(10)

        threading.Thread(target=sample, daemon=True).start()
        plan = threading.Thread(target=planner, args=(url, base, args.every, stop, commits), daemon=True)
        threading.Timer(max(args.warm - args.every, 0), plan.start).start()

        async def everyone() -> None:
            rng = random.Random(1)
            await asyncio.gather(*(client(base, random.Random(rng.random()), paths, stop, log, made, run)
                                   for _ in range(args.clients)))

        asyncio.run(everyone())
        plan.join(timeout=120)
    finally:
        proc.terminate()
        proc.wait(30)
    first_commit = commits[0][0] if commits else stop
    print(f"soak: {args.minutes:g} min, {args.clients} clients, {len(commits)} commits "
          f"({', '.join(str(c[2]) for c in commits[:3])}…, each {np.median([c[1] for c in commits]) * 1000:.0f} ms "
          f"median), {len(log):,} requests")
    for route, _ in ROUTES:
        for label, rows in (("before the first commit (baseline)", [r for r in log if r[0] < first_commit]),
                            ("with commits", [r for r in log if r[0] >= first_commit])):
            took = np.array([r[2] for r in rows if r[1] == route]) * 1000
            if len(took):
                print(f"  {route:8} {label:35} {len(took):7,} requests, p50 {np.percentile(took, 50):6.1f} ms, "
                      f"p99 {np.percentile(took, 99):7.1f} ms, max {took.max():7.1f} ms")
    bad = defaultdict(int)
    for r in log:
        if not (isinstance(r[3], int) and 200 <= r[3] < 300):
            bad[(r[1], r[3])] += 1
    print(f"  answers other than 2xx: {dict(bad) or 0}")
    with psycopg.connect(url) as conn:
        stored = {r[0] for r in conn.execute("SELECT external_id FROM incident WHERE external_id LIKE %s",
                                             [f"{run}-%"])}
    print(f"  incidents: {len(made):,} answered 201, {len(stored):,} stored; lost {len(made - stored)}, "
          f"stored without a 201 {len(stored - made)}")
    for w, pid in enumerate(pids):
        rss = [m[1][w][0] for m in samples]
        private = [m[1][w][2] for m in samples]
        print(f"  worker {pid}: RSS {rss[0]:,.0f} MB at start, {min(rss):,.0f}-{max(rss):,.0f} MB over the run "
              f"(end {rss[-1]:,.0f}); private {private[0]:,.0f} -> {private[-1]:,.0f} MB")


if __name__ == "__main__":
    main()
