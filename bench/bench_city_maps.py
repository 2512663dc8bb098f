"""Benchmark: tiles, /health and the overview map on the 65,000-grid city (issue 14).

    .venv/bin/python bench/bench_city_maps.py [--tiles 30]

Over bench/bench_locate.py's city (database gridmap_bench_city), the app on 2 workers, each
figure beside its baseline in the same run:

  1. a grid tile at z10 (now 204: below grids' first zoom) against rendering it (the tile
     query itself, as every z10 request did before);
  2. tiles asked with the level's current state (`?v=`): the first request of each (a render)
     against the same request again (kept in the worker's memory), for grids at z13 and
     communities at z10; the cache headers;
  3. /health against counting the units (what it ran on every call before);
  4. the overview map in headless Chromium: the tile requests it makes until it is ready,
     by zoom, against the zoom of the view it settles on (before, 48 requests were made at
     the default view before the view was fitted).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_locate import ensure_city, ensure_database, random_points, start_server  # noqa: E402

from geo.db import tiles as tile_queries  # noqa: E402
from geo.db.connection import database_url  # noqa: E402
from geo.tiles import maths  # noqa: E402


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"


def low_zoom(url: str, base: str, x: np.ndarray, y: np.ndarray, n: int) -> None:
    picked = {maths.tile_at(float(a), float(b), 10) for a, b in zip(x[:500], y[:500], strict=True)}
    picked_list = sorted(picked)[:n]
    rendered, sizes, served = [], [], []
    with psycopg.connect(url) as conn:
        for tx, ty in picked_list:
            start = time.perf_counter()
            body = tile_queries.render(conn, "grid", 10, tx, ty)
            rendered.append(time.perf_counter() - start)
            sizes.append(len(body))
            conn.commit()
    with httpx.Client(base_url=base, timeout=60) as client:
        for tx, ty in picked_list:
            start = time.perf_counter()
            r = client.get(f"/tiles/grid/10/{tx}/{ty}.mvt")
            served.append(time.perf_counter() - start)
            assert r.status_code == 204, r.status_code
    print(f"grid tiles at z10 ({len(picked_list)}): rendering them (baseline) {_ms(rendered)}, up to "
          f"{max(sizes) / 1e6:.1f} MB; served now (204, below grids' first zoom) {_ms(served)}")


def cached(url: str, base: str, x: np.ndarray, y: np.ndarray, n: int) -> None:
    with httpx.Client(base_url=base, timeout=60) as client, psycopg.connect(url) as conn:
        for level, z in (("grid", 13), ("community", 10)):
            state = tile_queries.level_state(conn, level)  # what the maps put in their tile URLs
            conn.commit()
            picked = sorted({maths.tile_at(float(a), float(b), z) for a, b in zip(x, y, strict=True)})[:n]
            first, again = [], []
            header = ""
            for tx, ty in picked:
                path = f"/tiles/{level}/{z}/{tx}/{ty}.mvt?v={state}"
                start = time.perf_counter()
                r = client.get(path)
                first.append(time.perf_counter() - start)
                header = r.headers.get("cache-control", "")
                for _ in range(2):  # both workers
                    client.get(path, headers={"Connection": "close"})
                start = time.perf_counter()
                client.get(path)
                again.append(time.perf_counter() - start)
            print(f"{level} tiles at z{z} ({len(picked)}, v={state}): first request (render, baseline) "
                  f"{_ms(first)}; asked again (kept) {_ms(again)}; Cache-Control: {header}")


def health(url: str, base: str) -> None:
    counted, served = [], []
    with psycopg.connect(url) as conn:
        for _ in range(10):
            start = time.perf_counter()
            conn.execute("SELECT level, count(*) FROM unit_version WHERE valid_to IS NULL GROUP BY level").fetchall()
            counted.append(time.perf_counter() - start)
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(12):
            start = time.perf_counter()
            assert client.get("/health").status_code == 200
            served.append(time.perf_counter() - start)
    print(f"/health: counting the units each call (baseline) {_ms(counted)}; /health now {_ms(served[2:])}")


def overview(base: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "/tiles/" in r.url else None)
        start = time.perf_counter()
        page.goto(base + "/maps/overview")
        page.wait_for_function("window.gridmap && window.gridmap.ready === true", timeout=120_000)
        page.wait_for_load_state("networkidle")
        took = time.perf_counter() - start
        zoom = page.evaluate("window.gridmap.map.getZoom()")
        browser.close()
    by_zoom: dict[str, int] = {}
    for u in asked:
        z = u.split("/tiles/")[1].split("/")[1]
        level = u.split("/tiles/")[1].split("/")[0]
        by_zoom[f"{level}@z{z}"] = by_zoom.get(f"{level}@z{z}", 0) + 1
    view = {f"z{int(zoom)}", f"z{round(zoom)}"}
    other = sum(n for key, n in by_zoom.items() if key.split("@")[1] not in view)
    print(f"overview map: ready in {took:.1f} s at zoom {zoom}; tile requests {len(asked)} "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(by_zoom.items())) or 'none'}); "
          f"at another zoom than the view's: {other} (before: 48 at the default view)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, default=30)
    parser.add_argument("--file", type=Path, default=Path(tempfile.gettempdir()) / "gridmap-city.gpkg")
    parser.add_argument("--database", default="gridmap_bench_city")
    parser.add_argument("--port", type=int, default=8096)
    args = parser.parse_args()
    ensure_city(args.file, 65_000, 1)
    url = ensure_database(database_url(), args.database, args.file)
    x, y = random_points(url, 5000, 11)
    proc = start_server(url, args.port)
    base = f"http://127.0.0.1:{args.port}"
    try:
        low_zoom(url, base, x, y, min(args.tiles, 12))
        cached(url, base, x, y, args.tiles)
        health(url, base)
        overview(base)
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
