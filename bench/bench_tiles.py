"""Benchmark: vector tiles of a generated city of ~65,000 grids and ~500,000 small neighbourhoods.

    .venv/bin/python bench/bench_tiles.py [--tiles 40] [--seconds 10]

Tiles are random tiles across the city (the tiles holding random points of its extent):
grid level at z11-z15, small neighbourhood level at z14-z15. Every figure is printed
beside a baseline run in the same process, with the ratio gridmap / baseline:
  naive    the same MVT from a query that projects every unit of the level to web mercator
           and intersects it with the tile (no index can serve it);
  GeoJSON  the same units with the same properties as one FeatureCollection from
           ST_AsGeoJSON (6 decimals, ~0.1 m; unclipped, as a bbox query returns them);
           over HTTP, GET /units?level=..&bbox=<the tile> (the API a map would call today);
  wgs84    for ?datum=gcj02, the same tile without the shift.
Also measured: what leaving out sub-pixel units and ST_Simplify buy, what JIT and parallel
workers (both off in tile queries) would change, and the error of the cheaper GCJ-02
approximations (translate or affine per tile) that were not taken.
Reuses the database bench/bench_locate.py loads (gridmap_bench_city), or loads it.
"""

from __future__ import annotations

import argparse
import gzip
import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psycopg
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_locate import _url, ensure_city, ensure_database, random_points, start_server  # noqa: E402

from geo.coords import datums  # noqa: E402
from geo.db import tiles as tile_queries  # noqa: E402
from geo.db.connection import database_url  # noqa: E402
from geo.tiles import maths as tiles  # noqa: E402

PLAN = [("grid", z) for z in range(11, 16)] + [("neighbourhood", 14), ("neighbourhood", 15)]


def city(base: str, name: str, path: Path, grids: int) -> str:
    url = _url(base, name)
    try:
        with psycopg.connect(url) as conn:
            if conn.execute("SELECT EXISTS (SELECT 1 FROM unit_version WHERE valid_to IS NULL)").fetchone()[0]:
                print(f"database {name}: reused")
                return url
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
        pass
    ensure_city(path, grids, seed=1)
    return ensure_database(base, name, path)


def pick_tiles(x: np.ndarray, y: np.ndarray, z: int, n: int) -> list[tuple[int, int, int]]:
    seen: dict[tuple[int, int, int], None] = {}
    for lon, lat in zip(x, y, strict=True):
        seen.setdefault((z, *tiles.tile_at(float(lon), float(lat), z)), None)
        if len(seen) == n:
            break
    return list(seen)


def stats(values) -> dict:
    a = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


# ---------------------------------------------------------------------------
# The baselines, as SQL over the same units
# ---------------------------------------------------------------------------

def naive_tile(conn, level: str, z: int, x: int, y: int) -> bytes:
    """The same tile, finding units by projecting every one of the level (no index)."""
    sql = tile_queries._encode_sql(
        level, "v.geom",
        "unit_version v WHERE v.valid_to IS NULL AND v.level = %s "
        "AND ST_Intersects(ST_Transform(v.geom, 3857), ST_TileEnvelope(%s, %s, %s, margin => %s))",
    )
    tile_queries.settle(conn)
    row = conn.execute(sql, [level, z, x, y, level, z, x, y, tiles.BUFFER / tiles.EXTENT]).fetchone()
    return bytes(row[0] or b"")


def geojson_tile(conn, level: str, z: int, x: int, y: int) -> bytes:
    """The units of the tile (same index path, same properties) as GeoJSON."""
    where, params = tile_queries.tile_selection(level, z, x, y)
    props = tile_queries._properties(level).replace("v.unit_id AS fid, ", "")
    query = (
        "SELECT json_build_object('type', 'FeatureCollection', 'features', "
        "coalesce(json_agg(ST_AsGeoJSON(t.*, 'geom', 6)::json), '[]'::json))::text "
        f"FROM (SELECT {props}, v.geom FROM unit_version v WHERE {where}) t"
    )
    tile_queries.settle(conn)
    return conn.execute(query, params).fetchone()[0].encode()


def variant_tile(conn, level: str, z: int, x: int, y: int, *, small: bool, simplify: bool) -> bytes:
    """The shipped query with the sub-pixel filter off and/or ST_Simplify (1 tile unit) on."""
    sql, params = tile_queries.tile_query(level, z, x, y)
    if simplify:
        unit = 2 * math.pi * 6378137.0 / 2**z / tiles.EXTENT
        sql = sql.replace("ST_Transform(v.geom, 3857)", f"ST_Simplify(ST_Transform(v.geom, 3857), {unit!r}, true)")
    if not small:
        params = [*params[:-2], 0.0, 0.0]
    tile_queries.settle(conn)
    return bytes(conn.execute(sql, params).fetchone()[0] or b"")


def ours(conn, level: str, z: int, x: int, y: int, datum: str = "wgs84") -> bytes:
    return tile_queries.render(conn, level, z, x, y, datum=datum)


def compare(conn, tile_list, ways: dict, repeat: int) -> dict[str, tuple[list[float], list[int]]]:
    """Each way on each tile, interleaved (and in a rotated order each round) so that a busy
    moment on the shared machine hurts all alike, each run in a transaction of its own; per
    tile the best of `repeat` runs. `ways` maps a name to (fn, level, kwargs); the answer,
    per name, times and sizes."""
    out = {name: ([], []) for name in ways}
    names = list(ways)
    for z, x, y in tile_list:
        for name in names:
            out[name][0].append(math.inf)
            out[name][1].append(0)
        for r in range(repeat):
            for name in names[r % len(names):] + names[:r % len(names)]:
                fn, level, kw = ways[name]
                with conn.transaction():
                    start = time.perf_counter()
                    body = fn(conn, level, z, x, y, **kw)
                    took = time.perf_counter() - start
                out[name][0][-1] = min(out[name][0][-1], took)
                out[name][1][-1] = len(body)
    return out


# ---------------------------------------------------------------------------
# GCJ-02: the error of the approximations not taken
# ---------------------------------------------------------------------------

def gcj02_errors(tile_list) -> tuple[float, float]:
    """Worst error (m on the ground) over the tiles of moving each tile by the offset at its
    centre, and of the best affine map per tile (least squares), against moving every point."""
    worst_t = worst_a = 0.0
    for z, x, y in tile_list:
        minx, miny, maxx, maxy = tiles.mercator_bounds(z, x, y)
        gx, gy = np.meshgrid(np.linspace(minx, maxx, 65), np.linspace(miny, maxy, 65))
        lon, lat = tiles.mercator_to_lonlat(gx.ravel(), gy.ravel())
        ex, ey = tiles.lonlat_to_mercator(*datums.wgs84_to_gcj02(lon, lat))
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        sx, sy = tiles.lonlat_to_mercator(*datums.wgs84_to_gcj02(*tiles.mercator_to_lonlat(cx, cy)))
        ground = math.cos(math.radians(float(lat.mean())))
        worst_t = max(worst_t, float(np.hypot(gx.ravel() + sx - cx - ex, gy.ravel() + sy - cy - ey).max()) * ground)
        a = np.column_stack([gx.ravel() - cx, gy.ravel() - cy, np.ones(gx.size)])
        fx = a @ np.linalg.lstsq(a, ex - cx, rcond=None)[0]
        fy = a @ np.linalg.lstsq(a, ey - cy, rcond=None)[0]
        worst_a = max(worst_a, float(np.hypot(fx - (ex - cx), fy - (ey - cy)).max()) * ground)
    return worst_t, worst_a


def straight_edge_error(conn, n: int = 5000) -> float:
    """Moving the vertices keeps edges straight, while the true GCJ-02 image of an edge bends a
    little: the worst gap (m) over n grids, against the same grids cut into 2 m pieces first."""
    rows = conn.execute(
        "SELECT ST_AsBinary(geom) FROM unit_version WHERE level = 'grid' AND valid_to IS NULL "
        "ORDER BY unit_id LIMIT %s", [n]).fetchall()
    geoms = shapely.from_wkb([bytes(r[0]) for r in rows])
    moved = tiles.to_gcj02(geoms)
    fine = tiles.to_gcj02(shapely.segmentize(geoms, 2e-5))
    return float(np.max(shapely.hausdorff_distance(moved, fine))) * 111_000


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

def hammer(base_url: str, paths: list[str], seconds: float, connections: int) -> dict:
    """Requests/s and latency with `connections` clients cycling through `paths` (gzip accepted)."""
    deadline = time.monotonic() + seconds

    def client(k: int):
        times, wire, bad = [], 0, 0
        with httpx.Client(base_url=base_url, timeout=120) as c:
            i = k
            while time.monotonic() < deadline:
                start = time.perf_counter()
                r = c.get(paths[i % len(paths)])
                times.append(time.perf_counter() - start)
                wire += r.num_bytes_downloaded
                bad += r.status_code not in (200, 204)
                i += connections
        return times, wire, bad

    start = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        results = list(pool.map(client, range(connections)))
    took = time.perf_counter() - start
    times = [t for r in results for t in r[0]]
    return {"rps": len(times) / took, **stats(times), "wire": sum(r[1] for r in results) / max(len(times), 1),
            "errors": sum(r[2] for r in results)}


# ---------------------------------------------------------------------------


def ms(s: float) -> str:
    return f"{s * 1000:,.1f}"


def kb(b: float) -> str:
    return f"{b / 1024:,.1f}"


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, default=40, help="random tiles per zoom")
    parser.add_argument("--naive", type=int, default=8, help="of which this many for the naive baseline (one run)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tile in process; the best counts")
    parser.add_argument("--seconds", type=float, default=10.0, help="HTTP load per level and zoom")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--grids", type=int, default=65_000)
    parser.add_argument("--file", type=Path, default=Path(tempfile.gettempdir()) / "gridmap-city.gpkg")
    parser.add_argument("--database", default="gridmap_bench_city")
    args = parser.parse_args()

    url = city(database_url(), args.database, args.file, args.grids)
    with psycopg.connect(url) as conn:
        counts = dict(conn.execute("SELECT level, count(*) FROM unit_version WHERE valid_to IS NULL "
                                   "GROUP BY level").fetchall())
    print("city: " + ", ".join(f"{counts.get(lv, 0):,} {lv}" for lv in ("grid", "neighbourhood")))
    x, y = random_points(url, 20_000, seed=3)
    chosen = {(lv, z): pick_tiles(x, y, z, args.tiles) for lv, z in PLAN}

    speed, sizes, gcj, simp = [], [], [], []
    with psycopg.connect(url) as conn:
        for (lv, z), tl in chosen.items():
            compare(conn, tl[:3], {"warm": (ours, lv, {})}, 1)
            got = compare(conn, tl, {"ours": (ours, lv, {}), "geojson": (geojson_tile, lv, {}),
                                     "gcj02": (ours, lv, {"datum": "gcj02"})}, args.repeat)
            naive = compare(conn, tl[: args.naive], {"ours": (ours, lv, {}), "naive": (naive_tile, lv, {})}, 1)
            s, sg, sj = (stats(got[k][0]) for k in ("ours", "geojson", "gcj02"))
            n_ours, n_naive = (float(np.median(naive[k][0])) for k in ("ours", "naive"))
            speed.append([f"{lv} z{z}", str(len(tl)), ms(s["p50"]), ms(s["p95"]), ms(s["max"]),
                          f"{ms(n_naive)} (×{n_naive / n_ours:,.0f})",
                          f"{ms(sg['p50'])} ({s['p50'] / sg['p50']:.2f})",
                          f"{ms(sj['p50'])} ({sj['p50'] / s['p50']:.2f})"])
            gz = [len(gzip.compress(b, 1)) for b in (tiles_bytes(conn, lv, t) for t in tl[:10]) if b]
            bs, bg = stats(got["ours"][1]), stats(got["geojson"][1])
            sizes.append([f"{lv} z{z}", kb(bs["p50"]), kb(bs["max"]), kb(float(np.median(gz))),
                          kb(bg["p50"]), f"{bs['p50'] / bg['p50']:.2f}"])
            print(f"  {lv} z{z}: {len(tl)} tiles, p50 {ms(s['p50'])} ms, {kb(bs['p50'])} KB", flush=True)
        for lv, z, n in [("grid", 9, 3), ("grid", 10, 4), ("grid", 11, 6), ("grid", 13, 6),
                         ("neighbourhood", 11, 3), ("neighbourhood", 12, 4), ("building", 11, 2)]:
            tl = pick_tiles(x, y, z, n)
            got = compare(conn, tl, {"neither": (variant_tile, lv, {"small": False, "simplify": False}),
                                     "shipped": (variant_tile, lv, {"small": True, "simplify": False}),
                                     "simplify": (variant_tile, lv, {"small": False, "simplify": True})},
                          max(args.repeat, 5))
            b0, t0 = sum(got["neither"][1]), float(np.median(got["neither"][0]))
            simp.append([f"{lv} z{z}", str(len(tl)), f"{kb(b0 / len(tl))} / {ms(t0)}", *[
                f"{kb(sum(got[k][1]) / len(tl))} / {ms(float(np.median(got[k][0])))} "
                f"({sum(got[k][1]) / b0:.2f} / {float(np.median(got[k][0])) / t0:.2f})"
                for k in ("shipped", "simplify")]])
            print(f"  variants {lv} z{z}", flush=True)
        heavy = chosen[("grid", 11)][:5] + chosen[("grid", 12)][:5] + chosen[("grid", 13)][:5]
        settings = {what: setting_effect(conn, heavy, setting, value, args.repeat) for what, setting, value in
                    [("JIT", "jit", "on"), ("2 parallel workers", "max_parallel_workers_per_gather", "2")]}
        for z in (11, 13, 15):
            gcj.append([f"z{z}", *[f"{e:.2f}" for e in gcj02_errors(pick_tiles(x, y, z, 40))]])
        edge = straight_edge_error(conn)

    http = []
    proc = start_server(url, args.port)
    try:
        base_url = f"http://127.0.0.1:{args.port}"
        for (lv, z), tl in chosen.items():
            mvt = [f"/tiles/{lv}/{z}/{tx}/{ty}.mvt" for _, tx, ty in tl]
            bbox = [",".join(f"{v:.7f}" for v in tiles.lonlat_bounds(z, tx, ty)) for _, tx, ty in tl]
            geo = [f"/units?level={lv}&bbox={b}" for b in bbox]
            hammer(base_url, mvt[:4], 1.0, args.connections)  # warm both workers
            a = hammer(base_url, mvt, args.seconds, args.connections)
            b = hammer(base_url, geo, args.seconds, args.connections)
            if a["errors"] or b["errors"]:
                print(f"WARNING: {a['errors']} + {b['errors']} failed answers at {lv} z{z}")
            http.append([f"{lv} z{z}", f"{a['rps']:,.1f}", ms(a["p50"]), ms(a["p95"]), kb(a["wire"]),
                         f"{b['rps']:,.1f}", kb(b["wire"]), f"{a['rps'] / b['rps']:.1f}×"])
    finally:
        proc.terminate()
        proc.wait(30)

    print()
    print(f"In process (ms per tile, best of {args.repeat}; naive: one run, median over {args.naive} tiles, "
          "×slower than ours on the same tiles; GeoJSON: ours / it; gcj02: it / ours):")
    table(["tiles", "n", "p50", "p95", "max", "naive p50", "GeoJSON p50 (ours/it)", "gcj02 p50 (/wgs84)"], speed)
    print("Bytes per tile (KB):")
    table(["tiles", "MVT p50", "MVT max", "MVT gzip p50", "GeoJSON p50", "MVT / GeoJSON"], sizes)
    print(f"HTTP, uvicorn 2 workers, {args.connections} connections, {args.seconds:.0f} s each, gzip accepted:")
    table(["tiles", "MVT tiles/s", "p50 ms", "p95 ms", "KB on the wire", "GET /units?bbox req/s",
           "its KB", "MVT / GeoJSON"], http)
    print("Leaving out sub-pixel units, and ST_Simplify (KB per tile / ms p50; ratios to neither):")
    table(["tiles", "n", "neither", "sub-pixel units left out (shipped)", "ST_Simplify 1 tile unit instead"], simp)
    for what, (turned, shipped) in settings.items():
        print(f"{what}, grid z11-z13 tiles (median of best of {args.repeat}): {ms(turned)} ms with, "
              f"{ms(shipped)} ms without (shipped); with / without {turned / shipped:.2f}")
    print()
    print("GCJ-02: worst error over 40 random tiles (m on the ground) of the approximations not taken; "
          "the shipped tiles move every vertex exactly:")
    table(["zoom", "translate by the centre offset", "best affine per tile"], gcj)
    print(f"Straight edges between moved vertices vs the bent true image (5,000 grids): worst {edge * 100:.1f} cm")


def tiles_bytes(conn, level: str, tile: tuple[int, int, int]) -> bytes:
    with conn.transaction():
        return tile_queries.render(conn, level, *tile)


def setting_effect(conn, tile_list, setting: str, value: str, repeat: int) -> tuple[float, float]:
    """The tile query with one of settle()'s settings turned back (`setting` = `value`) and as
    shipped: the median over the tiles of the best of `repeat` runs, both ways."""
    best: dict[bool, list[float]] = {True: [], False: []}
    for tile in tile_list:
        sql, params = tile_queries.tile_query("grid", *tile)
        runs = {True: math.inf, False: math.inf}
        for _ in range(repeat):
            for turned in runs:
                with conn.transaction():
                    tile_queries.settle(conn)
                    if turned:
                        conn.execute(f"SET LOCAL {setting} = {value}")
                    start = time.perf_counter()
                    conn.execute(sql, params).fetchone()
                    runs[turned] = min(runs[turned], time.perf_counter() - start)
        for turned in runs:
            best[turned].append(runs[turned])
    return float(np.median(best[True])), float(np.median(best[False]))


if __name__ == "__main__":
    main()
