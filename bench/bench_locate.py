"""Benchmark: point-in-grid on a generated city of ~65,000 grids and ~500,000 small neighbourhoods.

    .venv/bin/python bench/bench_locate.py [--grids 65000] [--points 1000000] [--seconds 15]

Every figure is printed beside the same work done in the same run by
  PostGIS  a plain ST_Intersects join of the points with the current units, and
  sjoin    geopandas.sjoin of the points with each level's units,
with the ratio gridmap / baseline. Steps:
  1. generate the city (cached as a GeoPackage) and load it into a database of its own
     (cached: a second run reuses both);
  2. batch in process: random points across the city assigned to every level;
  3. POST /locate with 100,000 points to the running server (uvicorn, 2 workers);
  4. GET /locate one point at a time with wrk (random points, 16 connections).
Needs the embedded cluster (`gridmap db start`) or DATABASE_URL, and wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pyogrio
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo.db import units  # noqa: E402
from geo.db.connection import database_url  # noqa: E402
from geo.db.migrations import migrate  # noqa: E402
from geo.sample import district as sample  # noqa: E402
from geo.units import levels  # noqa: E402
from geo.usecases import units as imports  # noqa: E402


def _url(base: str, db: str) -> str:
    params = conninfo_to_dict(base)
    params["dbname"] = db
    return make_conninfo(**params)


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ensure_city(path: Path, grids: int, seed: int) -> None:
    if path.exists():
        print(f"city file: {path} (reused)")
        return
    start = time.perf_counter()
    sample.generate(seed=seed, scale=grids / sample.GRIDS_PER_SCALE).write(path)
    print(f"city file: generated and written in {time.perf_counter() - start:.0f} s")


def ensure_database(base: str, name: str, path: Path) -> str:
    url = _url(base, name)
    with psycopg.connect(_url(base, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url) as conn:
        migrate(conn)
        loaded = conn.execute("SELECT count(*) FROM unit_version WHERE valid_to IS NULL").fetchone()[0]
    if loaded:
        print(f"database {name}: {loaded:,} units (reused)")
        return url
    start = time.perf_counter()
    counts = imports.load_district(path, url=url)
    took = time.perf_counter() - start
    total = sum(v for k, v in counts.items() if k != "road")
    print(f"database {name}: loaded {total:,} units in {took:.0f} s ({total / took:,.0f} units/s)")
    return url


def random_points(url: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    with psycopg.connect(url) as conn:
        minx, miny, maxx, maxy = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) e FROM unit_version WHERE level = 'street' AND valid_to IS NULL) s"
        ).fetchone()
    rng = np.random.default_rng(seed)
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


def postgis_batch(url: str, x: np.ndarray, y: np.ndarray) -> int:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM unnest(%s::float8[], %s::float8[]) p(x, y) "
            "JOIN unit_version v ON v.valid_to IS NULL AND ST_Intersects(v.geom, ST_SetSRID(ST_Point(p.x, p.y), 4326))",
            [x.tolist(), y.tolist()],
        ).fetchone()[0]
    return rows


def sjoin_frames(path: Path) -> dict[str, gpd.GeoDataFrame]:
    """Each level's units, with their spatial index built before any timing."""
    frames = {lv: gpd.read_file(path, layer=lv, engine="pyogrio")[["geometry"]] for lv in levels.LEVELS}
    for frame in frames.values():
        frame.sindex  # noqa: B018 - builds and caches the STRtree
    return frames


def sjoin_batch(frames: dict[str, gpd.GeoDataFrame], x: np.ndarray, y: np.ndarray) -> int:
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=4326)
    hits = 0
    for frame in frames.values():
        hits += len(gpd.sjoin(points, frame, predicate="intersects", how="inner"))
    return hits


def ours_batch(url: str, x: np.ndarray, y: np.ndarray) -> float:
    """Seconds (best of 3) to assign every point to every level in process, with the index built
    first. The index lives only in this call, so its memory is free again before the baselines."""
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        index = units.locator(conn)
        print(f"index built in {time.perf_counter() - start:.1f} s")
    took = best(lambda: index.locate(x, y))
    found = index.locate(x, y)
    print(f"batch: {len(x):,} points, {int((found['grid'] >= 0).sum()):,} inside a grid")
    return took


def pgbench_single(url: str, x: np.ndarray, y: np.ndarray, seconds: int, connections: int) -> float:
    """Single-point ST_Intersects lookups/s from pgbench (C, 16 connections): PostGIS's own ceiling."""
    import glob

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench")) or [shutil.which("pgbench")]
    if not found or not found[-1]:
        return float("nan")
    minx, maxx, miny, maxy = float(x.min()), float(x.max()), float(y.min()), float(y.max())
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "locate.sql"
        script.write_text(
            "\\set xi random(0, 1000000)\n\\set yi random(0, 1000000)\n"
            "SELECT level, unit_id FROM unit_version WHERE valid_to IS NULL AND ST_Intersects(geom, "
            f"ST_SetSRID(ST_Point({minx} + :xi * {(maxx - minx) / 1e6!r}, "
            f"{miny} + :yi * {(maxy - miny) / 1e6!r}), 4326));\n"
        )
        params = conninfo_to_dict(url)
        out = subprocess.run(
            [found[-1], "-n", f"-c{connections}", "-j2", f"-T{seconds}", "-f", str(script),
             "-h", params.get("host", "127.0.0.1"), "-p", str(params.get("port", 5432)),
             "-U", params.get("user", "gridmap"), params["dbname"]],
            capture_output=True, text=True, check=True,
        ).stdout
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def start_server(url: str, port: int, tree: Path = ROOT) -> subprocess.Popen:
    """The app of the source tree `tree` (this one by default) over `url`, 2 workers, once
    /health answers."""
    # auth off, as on a developer's loopback (the figures so far were measured so); what keys
    # cost /locate is bench/bench_auth.py's subject
    env = {"GRIDMAP_AUTH": "off", **os.environ, "DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2", "--log-level", "warning", "--no-access-log"],
        cwd=tree, env=env,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the app of {tree} did not start")


def warm_up(base_url: str) -> None:
    """Make every worker build its index: many requests at once, each on a new connection,
    until a round answers quickly."""
    from concurrent.futures import ThreadPoolExecutor

    def ask(_):
        start = time.perf_counter()
        httpx.get(base_url + "/locate", params={"lon": 114.3, "lat": 30.55}, timeout=300)
        return time.perf_counter() - start

    with ThreadPoolExecutor(16) as pool:
        for _ in range(20):
            if max(pool.map(ask, range(32))) < 0.5:
                return


def wrk(port: int, points: np.ndarray, seconds: int, connections: int) -> dict:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "points.lua"
        lines = ",\n".join(f'"lon={lon:.7f}&lat={lat:.7f}"' for lon, lat in points)
        script.write_text(
            "local q = {\n" + lines + "\n}\nlocal i = 0\n"
            "request = function()\n  i = i % #q + 1\n"
            "  return wrk.format('GET', '/locate?' .. q[i])\nend\n"
        )
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
             f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True,
        ).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": ms("50%"), "p99": ms("99%"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--file", type=Path, default=Path(tempfile.gettempdir()) / "gridmap-city.gpkg")
    parser.add_argument("--database", default="gridmap_bench_city")
    args = parser.parse_args()

    base = database_url()
    ensure_city(args.file, args.grids, args.seed)
    url = ensure_database(base, args.database, args.file)
    counts = {lv: pyogrio.read_info(args.file, layer=lv)["features"] for lv in levels.LEVELS}
    print("city: " + ", ".join(f"{n:,} {lv}" for lv, n in counts.items()))

    x, y = random_points(url, args.points, seed=2)
    single = np.column_stack([x[:5000], y[:5000]])
    rows = []

    # ---- the running server first, while this process holds nothing big --------------------
    proc = start_server(url, args.port)
    try:
        base_url = f"http://127.0.0.1:{args.port}"
        body = np.column_stack([x[:100_000], y[:100_000]]).tolist()
        start = time.perf_counter()
        warm_up(base_url)
        print(f"server ready (both workers built their index) in {time.perf_counter() - start:.0f} s")
        with httpx.Client(base_url=base_url, timeout=300) as client:
            posts = []
            for _ in range(5):
                start = time.perf_counter()
                answer = client.post("/locate", json=body)
                posts.append(time.perf_counter() - start)
                assert answer.status_code == 200 and answer.json()["count"] == 100_000
        t_post = float(np.median(posts))
        load = wrk(args.port, single, args.seconds, args.connections)
    finally:
        proc.terminate()
        proc.wait(30)
    del body

    # ---- in process ----------------------------------------------------------------------------
    t_ours = ours_batch(url, x, y)
    n_pg = 20_000
    t_pg = best(lambda: postgis_batch(url, x[:n_pg], y[:n_pg]), repeat=1)
    frames = sjoin_frames(args.file)
    n_sj = 200_000
    t_sj = best(lambda: sjoin_batch(frames, x[:n_sj], y[:n_sj]), repeat=1)
    ours_rate = args.points / t_ours
    rows.append(("batch, all levels, in process (points/s)", f"{ours_rate:,.0f}",
                 f"{n_pg / t_pg:,.0f}", f"{n_sj / t_sj:,.0f}",
                 f"{ours_rate / (n_pg / t_pg):,.0f}×", f"{ours_rate / (n_sj / t_sj):,.0f}×"))
    t_pg100k = best(lambda: postgis_batch(url, x[:100_000], y[:100_000]), repeat=1)
    t_sj100k = best(lambda: sjoin_batch(frames, x[:100_000], y[:100_000]), repeat=1)
    rows.append(("POST /locate, 100,000 points (s, median of 5; baselines in process)", f"{t_post:.2f}",
                 f"{t_pg100k:.2f}", f"{t_sj100k:.2f}", f"{t_pg100k / t_post:.1f}× faster",
                 f"{t_sj100k / t_post:.1f}× faster"))
    # the same single-point question asked of PostGIS (pgbench, same connections) and of sjoin
    pg_qps = pgbench_single(url, x, y, args.seconds, args.connections)
    start = time.perf_counter()
    for lon, lat in single[:200]:
        sjoin_batch(frames, np.array([lon]), np.array([lat]))
    sj_qps = 200 / (time.perf_counter() - start)
    rows.append((f"GET /locate, one point, {args.connections} connections (requests/s)",
                 f"{load['rps']:,.0f}", f"{pg_qps:,.0f}", f"{sj_qps:,.1f}",
                 f"{load['rps'] / pg_qps:.1f}×", f"{load['rps'] / sj_qps:,.0f}×"))
    rows.append(("GET /locate latency p50 / p99 (ms)", f"{load['p50']:.1f} / {load['p99']:.1f}", "", "", "", ""))
    if load["errors"]:
        print(f"WARNING: {load['errors']} non-2xx answers under load")

    print()
    print("| figure | gridmap | PostGIS ST_Intersects | geopandas sjoin | vs PostGIS | vs sjoin |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\n(PostGIS batch on {n_pg:,} points; sjoin batch on {n_sj:,} with its STRtrees prebuilt; PostGIS "
          f"single from pgbench with {args.connections} connections; sjoin single over 200 calls, one point each)")


if __name__ == "__main__":
    main()
