"""Benchmark: loading a generated district into the store, against plain baselines.

    .venv/bin/python bench/bench_load.py [--scale 5] [--seed 1]

Runs in one process, on one freshly created database each:
  gridmap    geo.usecases.units.load_district: codes checked, geometry checked and repaired,
             parents found (by code or geometry), containment within 0.5 m, versions
             opened, all in one transaction
  plain COPY the same features COPYed into a bare table with a GiST index: no checks,
             no parents (the floor any loader pays)
  PostGIS join the plain COPY plus parents found in SQL (ST_Intersects of each child's
             ST_PointOnSurface with the parent level), still without containment checks
Prints features/s for each and the ratio of gridmap's time to each baseline's.
Needs the embedded cluster running (`gridmap db start`) or DATABASE_URL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pyogrio
import shapely
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.db.connection import database_url  # noqa: E402
from geo.db.migrations import migrate  # noqa: E402
from geo.sample import district as sample  # noqa: E402
from geo.units import levels  # noqa: E402
from geo.usecases import units as imports  # noqa: E402


def _url(base: str, db: str) -> str:
    params = conninfo_to_dict(base)
    params["dbname"] = db
    return make_conninfo(**params)


def fresh_database(base: str) -> tuple[str, str]:
    name = f"gridmap_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _url(base, name)
    with psycopg.connect(url) as conn:
        migrate(conn)
    return name, url


def drop(base: str, name: str) -> None:
    with psycopg.connect(_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def plain_copy(url: str, path: Path, with_parents: bool) -> None:
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("CREATE TABLE plain (level text, code text, name text, parent text, "
                     "geom geometry(Geometry, 4326))")
        conn.execute("CREATE INDEX ON plain USING gist (geom)")
        for level in levels.LEVELS:
            frame = pyogrio.read_dataframe(path, layer=level)
            hexes = shapely.to_wkb(shapely.set_srid(frame.geometry.values, 4326), hex=True, include_srid=True)
            with conn.cursor().copy("COPY plain (level, code, name, geom) FROM STDIN") as copy:
                for code, name, geom in zip(frame["code"], frame["name"], hexes, strict=True):
                    copy.write_row((level, code, name, geom))
            if with_parents and levels.PARENTS[level]:
                parent = levels.PARENTS[level][0]
                conn.execute(
                    "UPDATE plain c SET parent = p.code FROM plain p "
                    "WHERE c.level = %s AND p.level = %s AND ST_Intersects(p.geom, ST_PointOnSurface(c.geom))",
                    [level, parent],
                )


def timed(fn, *args, **kwargs) -> float:
    """Seconds `fn(*args, **kwargs)` takes."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    base = database_url()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "district.gpkg"
        t_gen = timed(lambda: sample.generate(seed=args.seed, scale=args.scale).write(path))
        counts = {name: pyogrio.read_info(path, layer=name)["features"] for name in levels.LEVELS}
        features = sum(counts.values())
        print(f"district: scale {args.scale}, seed {args.seed}: "
              + ", ".join(f"{n} {k}" for k, n in counts.items()) + f" ({features} units)")
        print(f"generate + write GeoPackage: {t_gen:.2f} s")

        results: dict[str, list[float]] = {"gridmap": [], "plain COPY": [], "PostGIS join": []}
        for _ in range(args.repeat):
            for label in results:
                name, url = fresh_database(base)
                try:
                    if label == "gridmap":
                        t = timed(imports.load_district, path, url=url)
                    else:
                        t = timed(plain_copy, url, path, with_parents=label == "PostGIS join")
                finally:
                    drop(base, name)
                results[label].append(t)
        best = {label: min(ts) for label, ts in results.items()}
        print()
        print(f"| loader | best of {args.repeat} (s) | units/s | gridmap time / this |")
        print("|---|---:|---:|---:|")
        for label, t in best.items():
            print(f"| {label} | {t:.2f} | {features / t:,.0f} | {best['gridmap'] / t:.2f} |")


if __name__ == "__main__":
    main()
