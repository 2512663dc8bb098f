"""Benchmark: two app instances and a streaming replica behind nginx, against one instance (issue 14).

    .venv/bin/python bench/bench_scaled.py [--seconds 60]

Over bench/bench_locate.py's 65,000-grid city (gridmap_bench_city) in the embedded cluster, in
one run, the same wrk mix (GET /locate at random points, and grid tiles at z13-z15 with their
level's current state, as the maps ask them) against:

  one      one app instance (uvicorn, 2 workers) on the primary: the baseline;
  scaled   two instances (2 workers each) reading what may lag from a streaming replica of the
           embedded cluster (`gridmap db replica start`: pg_basebackup -R, made on the first run),
           behind nginx as `gridmap nginx-config` writes it (tiles cached by nginx).

Every process runs on the same machine, so this measures what the layout costs or saves on
these 2 cores, not what it would give on several machines.
Needs the embedded cluster, wrk and nginx.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_locate import ensure_city, ensure_database, random_points  # noqa: E402
from cityload import wrk_paths  # noqa: E402

from cli.deploy import render  # noqa: E402
from geo.db import tiles as tile_queries  # noqa: E402
from geo.db.connection import database_url  # noqa: E402
from geo.db.embedded import default_cluster, replica_cluster  # noqa: E402
from geo.tiles import maths  # noqa: E402


def serve(url: str, port: int, env: dict | None = None) -> subprocess.Popen:
    full = {**os.environ, "GRIDMAP_AUTH": "off", "DATABASE_URL": url, **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port",
                             str(port), "--workers", "2", "--log-level", "warning", "--no-access-log"],
                            cwd=ROOT, env=full, stderr=subprocess.DEVNULL)
    wait(f"http://127.0.0.1:{port}")
    return proc


def wait(base: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/locate", params={"lon": 114.3, "lat": 30.55}, timeout=60).status_code == 200:
                with httpx.Client(timeout=60) as client:  # every worker answers
                    for _ in range(16):
                        client.get(base + "/locate", params={"lon": 114.3, "lat": 30.55},
                                   headers={"Connection": "close"})
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{base} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--file", type=Path, default=Path(tempfile.gettempdir()) / "gridmap-city.gpkg")
    parser.add_argument("--database", default="gridmap_bench_city")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: apt-get install {tool}")
    ensure_city(args.file, 65_000, 1)
    url = ensure_database(database_url(), args.database, args.file)
    primary, replica = default_cluster(), replica_cluster()
    if not replica.initialised():
        started = time.perf_counter()
        replica.clone_from(primary)
        print(f"replica made (pg_basebackup -R of the embedded cluster): {time.perf_counter() - started:.0f} s")
    replica.start()
    replica_url = make_conninfo(url, port=str(replica.port))
    x, y = random_points(url, 4000, 5)
    with psycopg.connect(url) as conn:
        state = tile_queries.level_state(conn, "grid")
    paths = [f"/locate?lon={a:.7f}&lat={b:.7f}" for a, b in zip(x[:3000], y[:3000], strict=True)]
    for z in (13, 14, 15):
        tiles = sorted({maths.tile_at(float(a), float(b), z) for a, b in zip(x[3000:3300], y[3000:3300], strict=True)})
        paths += [f"/tiles/grid/{z}/{tx}/{ty}.mvt?v={state}" for tx, ty in tiles[:250]]
    print(f"mix: {len(paths):,} paths ({3000:,} lookups, {len(paths) - 3000} tiles with v={state}), "
          f"wrk 2 threads, 32 connections, {args.seconds} s each")

    one = serve(url, 8091)
    try:
        base = wrk_paths("http://127.0.0.1:8091", paths, args.seconds, 32)
    finally:
        one.terminate()
        one.wait(30)
    print(f"one instance (baseline): {base['rps']:,.0f}/s, p50 {base['p50']:.1f} ms, p99 {base['p99']:.1f} ms, "
          f"{base['errors']} errors")

    env = {"GRIDMAP_REPLICA_URL": replica_url}
    apps = [serve(url, port, env) for port in (8092, 8093)]
    prefix = Path(tempfile.mkdtemp(prefix="gridmap-nginx-"))
    os.chmod(prefix, 0o755)
    (prefix / "cache").mkdir()
    os.chmod(prefix / "cache", 0o777)
    conf = prefix / "nginx.conf"
    conf.write_text(render(["127.0.0.1:8092", "127.0.0.1:8093"], "127.0.0.1:8090", prefix, prefix / "cache",
                           foreground=True))
    proxy = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(prefix), "-c", str(conf)])
    try:
        wait("http://127.0.0.1:8090")
        scaled = wrk_paths("http://127.0.0.1:8090", paths, args.seconds, 32)
        health = httpx.get("http://127.0.0.1:8090/health").json()["replica"]
    finally:
        proxy.terminate()
        proxy.wait(10)
        for app in apps:
            app.terminate()
            app.wait(30)
        shutil.rmtree(prefix, ignore_errors=True)
    print(f"two instances + replica behind nginx: {scaled['rps']:,.0f}/s, p50 {scaled['p50']:.1f} ms, "
          f"p99 {scaled['p99']:.1f} ms, {scaled['errors']} errors ({scaled['rps'] / base['rps']:.2f}x the "
          f"baseline's requests/s); replica {health.get('status')}, lag {health.get('replay_lag_s')} s, "
          f"reads on it in the instance that answered /health: {health.get('counts')}")


if __name__ == "__main__":
    main()
