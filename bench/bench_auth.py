"""Benchmark: what checking API keys costs GET /locate, in process.

    .venv/bin/python bench/bench_auth.py [--requests 1000] [--rounds 25]

The app is driven as an ASGI callable (no sockets, no HTTP parsing), so what differs
between the runs is gridmap's own work:

  off     auth off (GRIDMAP_AUTH=off, the loopback default)
  on      auth on, a service key in `Authorization: Bearer`, verified once and then taken
          from the worker's cache (the normal case)
  miss    auth on with a cache TTL of 0: every request verifies its key in the database
          (the worst case: a cold worker, or a TTL set to 0)

The modes compared take turns every 50 requests, so drift on a shared machine hits both
alike; each figure is the median over the rounds. Also timed: the check alone
(`api.security.authorize`, hit and miss, less building the request object, which the route
does anyway). Needs the embedded cluster or DATABASE_URL; the sample district is loaded
into a throwaway database that is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_locate import _url, random_points  # noqa: E402

from geo import settings  # noqa: E402
from geo.db import pool  # noqa: E402
from geo.db.connection import database_url  # noqa: E402
from geo.db.migrations import migrate  # noqa: E402
from geo.usecases import keys  # noqa: E402
from geo.usecases import units as imports  # noqa: E402

CHUNK = 50  # requests of one mode before switching to the other


def scope_for(lon: float, lat: float, headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/locate", "raw_path": b"/locate", "root_path": "",
            "query_string": f"lon={lon:.7f}&lat={lat:.7f}".encode(), "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


async def run(app, points, headers) -> float:
    """Seconds per request, one request after another."""
    status = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    start = time.perf_counter()
    for lon, lat in points:
        await app(scope_for(lon, lat, headers), receive, send)
    took = time.perf_counter() - start
    assert set(status) == {200}, set(status)
    return took / len(points)


async def check_alone(n: int, headers) -> float:
    """Seconds per `authorize` call on a fresh request (nothing cached on it), less the time
    to build the request object, which the route builds anyway."""
    from starlette.requests import Request

    from api import security as auth

    start = time.perf_counter()
    for _ in range(n):
        await auth.authorize(Request(scope_for(114.3, 30.55, headers)), "read")
    checked = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        Request(scope_for(114.3, 30.55, headers))
    return (checked - (time.perf_counter() - start)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()

    base = database_url()
    name = f"gridmap_bench_auth_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _url(base, name)
    try:
        with psycopg.connect(url) as conn:
            migrate(conn)
        imports.load_district(imports.SAMPLE_PATH, url=url)
        with psycopg.connect(url) as conn:
            _, key = keys.create_key(conn, "service", "bench", "bench")
        os.environ["DATABASE_URL"] = url
        settings.reset()  # database_url() above cached the settings; the app reads this database
        points = list(zip(*random_points(url, args.requests, seed=1), strict=True))
        with_key = [(b"authorization", f"Bearer {key}".encode())]

        from api import security as auth
        from api.app import app

        def use(mode: str) -> list:
            """Set the app up for a mode; the headers its requests carry."""
            auth.configure(settings.load(auth_cache_seconds=0 if mode == "miss" else 30), on=mode != "off")
            if mode == "miss":
                auth.forget_all()
            return [] if mode == "off" else with_key

        async def compare(modes: tuple[str, str], chunks: list) -> list[float]:
            """Per round, seconds per request of each mode, chunk by chunk in turn."""
            rounds = []
            for _ in range(args.rounds):
                spent = dict.fromkeys(modes, 0.0)
                for i, chunk in enumerate(chunks):
                    for mode in (modes if i % 2 == 0 else modes[::-1]):
                        headers = use(mode)
                        spent[mode] += await run(app, chunk, headers) * len(chunk)
                rounds.append({mode: t / sum(map(len, chunks)) for mode, t in spent.items()})
            return rounds

        async def bench() -> dict:
            pool.open_pool(url, 3.0)
            await run(app, points[:200], use("on"))  # index built, key cached, pool warm
            chunks = [points[i:i + CHUNK] for i in range(0, len(points), CHUNK)]
            cached = await compare(("off", "on"), chunks)
            missed = await compare(("off", "miss"), chunks[: max(1, len(chunks) // 5)])
            use("on")
            await check_alone(100, with_key)
            hit = statistics.median([await check_alone(5000, with_key) for _ in range(3)])
            use("miss")
            miss = statistics.median([await check_alone(300, with_key) for _ in range(3)])
            pool.close_pool()
            return {"cached": cached, "missed": missed, "hit": hit, "miss": miss}

        result = asyncio.run(bench())
    finally:
        with psycopg.connect(_url(base, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(f"\nGET /locate in process, {args.requests} random points of the sample district; {args.rounds} rounds, "
          f"each alternating the two modes every {CHUNK} requests; medians over the rounds")
    print("| mode | µs per request | auth off in the same rounds (µs) | ratio (median of rounds) |")
    print("|---|---:|---:|---:|")
    for rounds, mode, label in ((result["cached"], "on", "auth on, key cached"),
                                (result["missed"], "miss", "auth on, key verified in the database each time")):
        this = statistics.median(r[mode] for r in rounds)
        off = statistics.median(r["off"] for r in rounds)
        ratio = statistics.median(r[mode] / r["off"] for r in rounds)
        print(f"| {label} | {this * 1e6:,.0f} | {off * 1e6:,.0f} | {ratio:.3f}× |")
    ratios = sorted(r["on"] / r["off"] for r in result["cached"])
    print(f"\nkey cached / auth off, every round: {', '.join(f'{x:.3f}' for x in ratios)}")
    print(f"the check alone (api.security.authorize, less building the request): cached {result['hit'] * 1e6:.1f} µs, "
          f"verified in the database {result['miss'] * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
