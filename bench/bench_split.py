"""Split planner (geo.planning.search.split) against spopt's max-p heuristic on the same instances.

Run with `make bench-split` (installs the `bench` extra: spopt, libpysal), or directly:

    .venv/bin/python bench/bench_split.py                  # all instances, writes bench/RESULTS.md
    .venv/bin/python bench/bench_split.py --no-write       # print only
    .venv/bin/python bench/bench_split.py --only village   # sample | village | osm
    .venv/bin/python bench/bench_split.py --profile village  # cProfile of one split, top functions

Instances (all split into grids of 300-500 households, metres in a local metric CRS):
  sample   the sample district's oversized communities (> 3,000 households), with their
           compounds, buildings and the district's roads;
  village  a synthetic urban village of about 2,000 small buildings (2-4 households each) on a
           jittered lane lattice, made here with a seeded numpy RNG (the speed target of the
           issue: 10-20 grids in <= 2 s on 2 cores);
  osm      OpenStreetMap buildings and roads of a 2.3 x 1.5 km area of Guanggu, Wuhan
           (../shared/data/osm-wuhan-guanggu), households estimated from height; no compounds.

For every instance the split is timed (best of 3) and then spopt's MaxPHeuristic solves the
same problem: the atoms our split built (compounds, open blocks, and buildings of opened
compounds, with their territories) are its areal units, rook contiguity of the territories,
households as the spatially extensive attribute, threshold = the band floor, territory centroids
as the attributes to keep regions homogeneous (compact). Its regions are unioned into polygons.
Both plans are judged by geo.planning.quality.measure from geometry alone. spopt's time covers the
weights and the solve only (it gets the atoms for free); ours covers everything from raw features.
max-p runs with seeds 0-2 (its time swings widely with the seed): median time, best of the three plans.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import inspect
import io
import json
import math
import os
import platform
import pstats
import random
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon, box, shape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo.coords import crs as gcrs  # noqa: E402
from geo.planning.atoms import Feature  # noqa: E402
from geo.planning.quality import measure, meets_targets  # noqa: E402
from geo.planning.search import split  # noqa: E402

BAND = (300, 500)
SAMPLE = ROOT / "data" / "boundaries" / "sample-district.gpkg"
OSM = ROOT.parent / "shared" / "data" / "osm-wuhan-guanggu"
RESULTS = ROOT / "bench" / "RESULTS.md"
HEADING = "## Split planner vs spopt max-p (bench/bench_split.py)"
OSM_BBOX = (114.383, 30.500, 114.406, 30.515)
MAXP_SEEDS = 3


@dataclass
class Instance:
    name: str
    outline: object
    compounds: list
    buildings: list
    roads: list
    band: tuple = BAND
    info: dict = field(default_factory=dict)
    cells: list | None = None  # existing small neighbourhoods, if any

    @property
    def households(self) -> int:
        return sum(b.households for b in self.buildings)


def near_roads(roads: list, outline, margin: float = 6.0) -> list:
    if not roads:
        return []
    arr = np.asarray(roads, dtype=object)
    hits = shapely.STRtree(arr).query(outline.buffer(margin), predicate="intersects")
    return list(arr[np.sort(hits)])


# ---------------------------------------------------------------------------
# (a) the sample district's oversized communities
# ---------------------------------------------------------------------------

def sample_instances() -> list[Instance]:
    import geopandas as gpd

    layers = {name: gpd.read_file(SAMPLE, layer=name)
              for name in ("community", "compound", "building", "road", "neighbourhood")}
    c = layers["community"]
    lon, lat = shapely.centroid(shapely.union_all(c.geometry.values)).coords[0]
    metric = gcrs.local_metric(lon, lat)
    layers = {k: v.to_crs(metric) for k, v in layers.items()}
    c = layers["community"]
    roads = [g for g in layers["road"].geometry.values if g is not None and not g.is_empty]
    out = []
    for cm in c[c.households > 3000].sort_values("code").itertuples():
        ks = layers["compound"][layers["compound"].community_code == cm.code]
        bs = layers["building"][layers["building"].compound_code.str[:12] == cm.code]
        comps = [Feature(r.code, r.geometry, int(r.households)) for r in ks.itertuples()]
        blds = [Feature(r.code, r.geometry, int(r.households), r.compound_code) for r in bs.itertuples()]
        ns = layers["neighbourhood"][layers["neighbourhood"].compound_code.str[:12] == cm.code]
        cells = [Feature(r.code, r.geometry, int(r.households), r.compound_code) for r in ns.itertuples()]
        out.append(Instance(cm.code, cm.geometry, comps, blds, near_roads(roads, cm.geometry),
                            info={"community_households": int(cm.households)}, cells=cells))
    return out


# ---------------------------------------------------------------------------
# (b) a synthetic urban village of about 2,000 buildings
# ---------------------------------------------------------------------------

def urban_village(seed: int = 2026) -> Instance:
    """A lane lattice of 18 x 14 jittered cells (about 38 x 36 m), a corner cut off.
    Cells are grouped into compounds: most of 1-3 cells (open blocks of a few dozen
    households), one gated estate of 6 x 4 cells (over 500 households: must be opened into
    its buildings), one of 4 x 4 cells (inside the band: kept whole), and three empty cells
    (a school, a market, a pond: no households). Every cell holds 3-4 x 2-3 small buildings
    of 2-4 households. Lanes are the lattice edges, except inside the two estates; the
    compounds share their edges exactly and tile the outline."""
    rng = np.random.default_rng(seed)
    lattice = Lattice.jittered(rng, nx=18, ny=14, cw=38.0, ch=36.0)
    alive = {(i, j) for i in range(lattice.nx) for j in range(lattice.ny)
             if i + (lattice.ny - 1 - j) >= 3}  # NW corner cut
    cells = {(i, j): Polygon(lattice.corners(i, j)) for (i, j) in alive}
    estates = {"E1": [(i, j) for i in range(2, 8) for j in range(1, 5)],
               "E2": [(i, j) for i in range(11, 15) for j in range(8, 12)]}
    empty = {(9, 3): "school", (15, 2): "market", (6, 10): "pond"}

    group = _village_groups(rng, lattice, alive, estates, empty)
    roads = _village_lanes(lattice, alive, group, estates)
    buildings = _village_buildings(rng, lattice, cells, group, set(empty.values()))
    compounds = _village_compounds(cells, group, buildings)
    outline = shapely.coverage_union_all([cells[c] for c in sorted(alive)])
    blds = [b for key in sorted(buildings) for b in buildings[key]]
    return Instance("urban village (synthetic)", outline, compounds, blds, roads,
                    info={"cells": len(alive), "lanes_m": round(sum(r.length for r in roads))})


@dataclass
class Lattice:
    """nx x ny cells of about cw x ch m; gx, gy: the (jittered) x and y of corner (i, j)."""
    nx: int
    ny: int
    cw: float
    ch: float
    gx: np.ndarray
    gy: np.ndarray

    @classmethod
    def jittered(cls, rng: np.random.Generator, nx: int, ny: int, cw: float, ch: float,
                 jitter: float = 3.5) -> Lattice:
        gx, gy = np.meshgrid(np.arange(nx + 1) * cw, np.arange(ny + 1) * ch, indexing="ij")
        gx = gx + rng.uniform(-jitter, jitter, gx.shape)
        gy = gy + rng.uniform(-jitter, jitter, gy.shape)
        return cls(nx, ny, cw, ch, gx, gy)

    def node(self, i: int, j: int) -> tuple[float, float]:
        return (round(float(self.gx[i, j]), 3), round(float(self.gy[i, j]), 3))

    def corners(self, i: int, j: int) -> list[tuple[float, float]]:
        """Cell (i, j)'s corners, counter-clockwise from its lower left."""
        return [self.node(i, j), self.node(i + 1, j), self.node(i + 1, j + 1), self.node(i, j + 1)]


def _village_groups(rng: np.random.Generator, lattice: Lattice, alive: set, estates: dict[str, list],
                    empty: dict[tuple[int, int], str]) -> dict[tuple[int, int], str]:
    """The compound of every cell: the estates' cells and the empty cells as given; along each
    row, the other cells in runs of 1-3 (open blocks), named C001, C002, ..."""
    group: dict[tuple[int, int], str] = {}
    for key, members in estates.items():
        for cell in members:
            group[cell] = key
    for cell, key in empty.items():
        group[cell] = key
    n = 0
    for j in range(lattice.ny):
        i = 0
        while i < lattice.nx:
            if (i, j) not in alive or (i, j) in group:
                i += 1
                continue
            n += 1
            width = int(rng.choice([1, 1, 2, 2, 3]))
            taken = 0
            while taken < width and (i + taken, j) in alive and (i + taken, j) not in group:
                group[(i + taken, j)] = f"C{n:03d}"
                taken += 1
            i += taken
    return group


def _village_lanes(lattice: Lattice, alive: set, group: dict, estates: dict) -> list:
    """Lanes: lattice edges, except those between two cells of the same estate."""
    segments = []
    for i in range(lattice.nx + 1):
        for j in range(lattice.ny):
            left, right = (i - 1, j), (i, j)
            if left not in alive and right not in alive:
                continue
            if group.get(left) in estates and group.get(left) == group.get(right):
                continue
            segments.append(LineString([lattice.node(i, j), lattice.node(i, j + 1)]))
    for j in range(lattice.ny + 1):
        for i in range(lattice.nx):
            below, above = (i, j - 1), (i, j)
            if below not in alive and above not in alive:
                continue
            if group.get(below) in estates and group.get(below) == group.get(above):
                continue
            segments.append(LineString([lattice.node(i, j), lattice.node(i + 1, j)]))
    merged = shapely.line_merge(shapely.union_all(segments))
    return list(shapely.get_parts(merged))


def _village_buildings(rng: np.random.Generator, lattice: Lattice, cells: dict, group: dict,
                       empty: set[str]) -> dict[str, list[Feature]]:
    """Buildings per compound: a small sub-lattice inside each cell (bilinear in the cell's
    corners), none in the empty cells."""
    buildings: dict[str, list[Feature]] = {}
    for (i, j) in sorted(cells):
        key = group[(i, j)]
        if key in empty:
            continue
        corners = np.array(lattice.corners(i, j))
        inner = cells[(i, j)].buffer(-2.5, join_style="mitre")
        bx = int(rng.choice([3, 3, 4]))
        by = int(rng.choice([2, 2, 3, 3]))
        w = (lattice.cw - 5) / bx - 2.2
        h = (lattice.ch - 5) / by - 2.2
        for a in range(bx):
            for b in range(by):
                u = 0.07 + 0.86 * (a + 0.5) / bx
                v = 0.07 + 0.86 * (b + 0.5) / by
                p = ((1 - u) * (1 - v) * corners[0] + u * (1 - v) * corners[1]
                     + u * v * corners[2] + (1 - u) * v * corners[3])
                ww = w * rng.uniform(0.8, 1.0)
                hh = h * rng.uniform(0.8, 1.0)
                geom = box(p[0] - ww / 2, p[1] - hh / 2, p[0] + ww / 2, p[1] + hh / 2).intersection(inner)
                if geom.is_empty or geom.area < 20:
                    continue
                seq = len(buildings.setdefault(key, [])) + 1
                buildings[key].append(Feature(f"V-{key}-B{seq:03d}", geom, int(rng.integers(2, 5)), f"V-{key}"))
    return buildings


def _village_compounds(cells: dict, group: dict, buildings: dict[str, list[Feature]]) -> list[Feature]:
    """One compound per group: the union of its cells, with its buildings' households."""
    by_group: dict[str, list] = {}
    for cell, key in group.items():
        if cell in cells:
            by_group.setdefault(key, []).append(cells[cell])
    compounds = []
    for key in sorted(by_group):
        geom = shapely.coverage_union_all(by_group[key])
        hh = sum(b.households for b in buildings.get(key, []))
        compounds.append(Feature(f"V-{key}", geom, hh))
    return compounds


# ---------------------------------------------------------------------------
# (c) OpenStreetMap buildings of Guanggu, households estimated from height
# ---------------------------------------------------------------------------

FLOOR_M = 3.0              # storey height
NET_SHARE = 0.75           # share of gross floor area that is flats
FLAT_M2 = 90.0             # gross floor area per household
DEFAULT_FLOORS = 6         # residential building without a height: a walk-up
RES_DETAIL = {"house", "apartments", "residential", "dormitory", "terrace", "detached"}
NONRES_LANDUSE = {"industrial", "commercial", "retail", "park", "meadow"}
RES_NAME = re.compile("宿舍|公寓|住宅|小区|花园|雅苑|单身楼|家属")
ROAD_KINDS = {"major_road", "minor_road", "path"}


def _residential(p: dict) -> bool:
    """Residential by tags: a residential kind_detail or a residential word in the name;
    untagged, unnamed buildings count as residential (most unlabelled buildings in Chinese
    cities on OSM are housing), unless they stand on industrial, commercial, retail or park
    land. Named buildings without a residential word (teaching blocks, labs, canteens, malls,
    offices) and any other kind_detail (mall, commercial, hotel, station) are not."""
    detail = p.get("kind_detail")
    name = (p.get("name") or "").strip()
    if name in ("无名",):
        name = ""
    if detail in RES_DETAIL:
        return True
    if detail:
        return False
    if name:
        return bool(RES_NAME.search(name))
    return p.get("landuse_kind") not in NONRES_LANDUSE


def osm_instance() -> Instance:
    data = json.loads((OSM / "buildings.geojson").read_text())
    pieces: dict[str, list] = {}
    props: dict[str, dict] = {}
    kinds = {"features": len(data["features"]), "points": 0, "not_building": 0}
    for f in data["features"]:
        geom = shape(f["geometry"])
        p = f["properties"]
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            kinds["points"] += 1  # label positions
            continue
        if p.get("kind") != "building":
            kinds["not_building"] += 1  # building_part (overlaps its building), address
            continue
        key = str(p.get("id"))
        pieces.setdefault(key, []).append(shapely.make_valid(geom))
        props.setdefault(key, p)
    ids = sorted(pieces)
    wgs = np.array([shapely.union_all(pieces[k]) for k in ids], dtype=object)
    lon0, lat0 = (OSM_BBOX[0] + OSM_BBOX[2]) / 2, (OSM_BBOX[1] + OSM_BBOX[3]) / 2
    metric = gcrs.local_metric(lon0, lat0)
    geoms = gcrs.transform(wgs, gcrs.WGS84, metric)
    outline = gcrs.transform(np.array([box(*OSM_BBOX)], dtype=object), gcrs.WGS84, metric)[0]

    buildings, skipped, guessed_floors, from_height = [], [], 0, 0
    for key, geom in zip(ids, geoms, strict=True):
        p = props[key]
        geom = shapely.intersection(geom, outline)
        geom = shapely.make_valid(geom)
        if geom.is_empty or geom.area < 10:
            continue
        if not _residential(p):
            skipped.append(p)
            continue
        h = p.get("height")
        if h is None:
            floors = DEFAULT_FLOORS
            guessed_floors += 1
        else:
            floors = max(1, round(float(h) / FLOOR_M))
            from_height += 1
        hh = max(1, round(floors * geom.area * NET_SHARE / FLAT_M2))
        if geom.geom_type == "MultiPolygon":  # pieces that do not touch: keep the largest
            geom = max(shapely.get_parts(geom), key=lambda g: g.area)
        buildings.append(Feature(f"osm-{key}", geom, int(hh), None, p.get("name") or ""))

    rdata = json.loads((OSM / "roads.geojson").read_text())
    rkinds: dict[str, int] = {}
    lines = []
    for f in rdata["features"]:
        p = f["properties"]
        kind = p.get("kind")
        if kind not in ROAD_KINDS or p.get("is_tunnel"):
            rkinds[f"skipped {kind}{' tunnel' if p.get('is_tunnel') else ''}"] = rkinds.get(
                f"skipped {kind}{' tunnel' if p.get('is_tunnel') else ''}", 0) + 1
            continue
        rkinds[kind] = rkinds.get(kind, 0) + 1
        lines.append(shape(f["geometry"]))
    rgeoms = gcrs.transform(np.array(lines, dtype=object), gcrs.WGS84, metric)
    roads = [g for r in rgeoms for g in shapely.get_parts(r) if g.length > 0]
    g = np.array([b.geom for b in buildings], dtype=object)
    ia, ib = shapely.STRtree(g).query(g, predicate="intersects")
    info = {
        "touching_pairs": int(np.count_nonzero(ia < ib)),
        "osm_ids": len(ids),
        "residential": len(buildings),
        "skipped": len(skipped),
        "skipped_examples": sorted({(p.get("name") or p.get("kind_detail") or p.get("landuse_kind") or "?")
                                    for p in skipped})[:12],
        "from_height": from_height,
        "guessed_floors": guessed_floors,
        "road_kinds": rkinds,
        "area_km2": round(outline.area / 1e6, 2),
        "features": kinds,
    }
    return Instance("OSM Guanggu", outline, [], buildings, roads, info=info)


# ---------------------------------------------------------------------------
# running both methods
# ---------------------------------------------------------------------------

def _split_kwargs(inst: Instance) -> dict:
    # small neighbourhoods guide the opening of big compounds (split(..., cells=) since 91dd441)
    if inst.cells and "cells" in inspect.signature(split).parameters:
        return {"cells": inst.cells}
    return {}


def run_ours(inst: Instance, repeat: int = 3):
    best, res = math.inf, None
    kw = _split_kwargs(inst)
    for _ in range(repeat):
        t = time.perf_counter()
        res = split(inst.outline, inst.compounds, inst.buildings, inst.roads, inst.band, seed=0, **kw)
        best = min(best, time.perf_counter() - t)
    return res, best


def run_maxp(atoms, lo: int, seed: int = 0):
    """One seeded MaxPHeuristic run on the atoms: (region polygons, seconds)."""
    import geopandas as gpd
    import libpysal
    from spopt.region import MaxPHeuristic

    terr = [a.territory for a in atoms]
    cen = shapely.centroid(np.asarray(terr, dtype=object))
    gdf = gpd.GeoDataFrame({"households": [a.households for a in atoms],
                            "x": shapely.get_x(cen), "y": shapely.get_y(cen)}, geometry=terr)
    np.random.seed(seed)
    random.seed(seed)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = libpysal.weights.Rook.from_dataframe(gdf, use_index=False, silence_warnings=True)
        model = MaxPHeuristic(gdf, w, ["x", "y"], "households", lo, top_n=2)
        model.solve()
    seconds = time.perf_counter() - t
    labels = np.asarray(model.labels_)
    geoms = [shapely.coverage_union_all([terr[i] for i in np.flatnonzero(labels == r)])
             for r in np.unique(labels)]
    return geoms, seconds


@dataclass
class Row:
    instance: str
    method: str
    m: dict
    seconds: float
    notes: list = field(default_factory=list)
    atoms: int = 0
    multi_atoms: int = 0  # atoms whose territory is in more than one piece
    spread: tuple | None = None  # fastest and slowest of spopt's seeded runs


def judge(inst: Instance, geoms) -> dict:
    return measure(geoms, inst.outline, inst.band, inst.compounds, inst.buildings, inst.roads)


def bench(inst: Instance, repeat: int = 3, maxp: bool = True) -> list[Row]:
    res, t_ours = run_ours(inst, repeat)
    multi = int(sum(shapely.get_num_geometries(a.territory) > 1 for a in res.atoms))
    rows = [Row(inst.name, "ours (split)", judge(inst, [p.geom for p in res.parts]), t_ours,
                list(res.notes), len(res.atoms), multi)]
    if maxp:
        # max-p's run time swings with its seed (0.1 s to 14 s on one instance), so: seeds 0-2,
        # the median time, and the best of the three plans (fewest parts outside the band, then
        # the smallest deviation, then the best worst Polsby-Popper)
        runs = []
        for s in range(MAXP_SEEDS):
            geoms, t = run_maxp(res.atoms, inst.band[0], seed=s)
            runs.append((judge(inst, geoms), t))
        m = min((r[0] for r in runs), key=lambda m: (m["out_of_band"], m["max_deviation"], -m["polsby_popper_min"]))
        times = sorted(r[1] for r in runs)
        rows.append(Row(inst.name, "spopt MaxPHeuristic", m, times[len(times) // 2], [], len(res.atoms),
                        spread=(times[0], times[-1])))
    return rows


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------

COLUMNS = ["method", "parts", "in band", "max dev", "cmpd split", "bldg split", "road", "road/wall",
           "PP mean / min", "contig.", "time (s)", "time / spopt"]


def cells(row: Row, base: float | None) -> list[str]:
    m = row.m
    cs = str(len(m["compounds_split"]))
    if m["compounds_in_band_split"]:
        cs += f" (+{len(m['compounds_in_band_split'])} in band)"
    ratio = f"{row.seconds / base:.2f}" if base else ""
    return [row.method, str(m["parts"]), f"{m['in_band']}/{m['parts']}", str(m["max_deviation"]), cs,
            str(len(m["buildings_split"])), f"{m['road_share']:.0%}", f"{m['road_or_wall_share']:.0%}",
            f"{m['polsby_popper_mean']:.2f} / {m['polsby_popper_min']:.2f}",
            f"{m['contiguous']}/{m['parts']}",
            f"{row.seconds:.2f}" + (f" ({row.spread[0]:.2f}-{row.spread[1]:.2f})" if row.spread else ""), ratio]


def table(rows: list[Row], first: str | None = None) -> str:
    cols = ([first] if first else []) + COLUMNS
    text = 2 if first else 1
    out = ["| " + " | ".join(cols) + " |",
           "|" + "|".join("---" if i < text else "---:" for i in range(len(cols))) + "|"]
    base = {r.instance: r.seconds for r in rows if r.method.startswith("spopt")}
    for r in rows:
        out.append("| " + " | ".join(([r.instance] if first else []) + cells(r, base.get(r.instance))) + " |")
    return "\n".join(out)


def summary(rows: list[Row]) -> str:
    """Totals over several instances, per method."""
    out = ["| method | instances | parts | in band | worst deviation | compounds split | buildings split "
           "| road/wall (mean) | PP mean (mean) | PP min (worst) | meets every target | time total (s) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for method in dict.fromkeys(r.method for r in rows):
        rs = [r for r in rows if r.method == method]
        ms = [r.m for r in rs]
        out.append("| " + " | ".join([
            method, str(len(rs)), str(sum(m["parts"] for m in ms)),
            f"{sum(m['in_band'] for m in ms)}/{sum(m['parts'] for m in ms)}",
            str(max(m["max_deviation"] for m in ms)),
            str(sum(len(m["compounds_split"]) for m in ms)),
            str(sum(len(m["buildings_split"]) for m in ms)),
            f"{np.mean([m['road_or_wall_share'] for m in ms]):.0%}",
            f"{np.mean([m['polsby_popper_mean'] for m in ms]):.2f}",
            f"{min(m['polsby_popper_min'] for m in ms):.2f}",
            f"{sum(not meets_targets(m) for m in ms)}/{len(ms)}",
            f"{sum(r.seconds for r in rs):.2f}"]) + " |")
    return "\n".join(out)


def misses(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        miss = meets_targets(r.m)
        if miss:
            out.append(f"- {r.instance}, {r.method}: " + "; ".join(miss))
    return out


# ---------------------------------------------------------------------------

def profile(inst: Instance, top: int = 25) -> str:
    prof = cProfile.Profile()
    prof.enable()
    split(inst.outline, inst.compounds, inst.buildings, inst.roads, inst.band, seed=0, **_split_kwargs(inst))
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(top)
    s.write("\n--- by own time ---\n")
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(top)
    return s.getvalue()


def load(which: str) -> list[Instance]:
    if which == "sample":
        return sample_instances()
    if which == "village":
        return [urban_village()]
    if which == "osm":
        return [osm_instance()]
    raise SystemExit(f"unknown instance set {which!r}")


def write_section(text: str) -> None:
    """Append the section to RESULTS.md, or replace this script's own earlier section."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start = old.find(HEADING)
    if start >= 0:
        nxt = old.find("\n## ", start + len(HEADING))
        old = old[:start].rstrip() + ("\n\n" + old[nxt + 1:] if nxt >= 0 else "")
    RESULTS.write_text(old.rstrip() + "\n\n" + text.rstrip() + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["sample", "village", "osm"], action="append")
    ap.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md alone")
    ap.add_argument("--no-maxp", action="store_true", help="skip spopt")
    ap.add_argument("--profile", choices=["sample", "village", "osm"], help="cProfile one split and stop")
    ap.add_argument("--repeat", type=int, default=3, help="runs of our split per instance (best is kept)")
    args = ap.parse_args()

    if args.profile:
        for inst in load(args.profile):
            print(f"== {inst.name}: {len(inst.buildings)} buildings, {inst.households} households")
            print(profile(inst))
        return

    sets = args.only or ["sample", "village", "osm"]
    results: dict[str, tuple[list[Instance], list[Row]]] = {}
    for which in sets:
        t = time.perf_counter()
        insts = load(which)
        print(f"[{which}] {len(insts)} instance(s) built in {time.perf_counter() - t:.1f} s", flush=True)
        rows = []
        for inst in insts:
            rs = bench(inst, args.repeat, not args.no_maxp)
            rows += rs
            print(f"  {inst.name}: {len(inst.buildings)} buildings, {inst.households} households, "
                  f"{rs[0].atoms} atoms; " + "; ".join(f"{r.method} {r.m['parts']} parts "
                                                         f"{r.seconds:.2f} s" for r in rs), flush=True)
        results[which] = (insts, rows)
        print()
        print(table(rows, "instance" if which == "sample" else None))
        if which == "sample":
            print()
            print(summary(rows))
        for line in misses(rows):
            print(line)
        print(flush=True)

    if args.no_write:
        return
    RESULTS_TEXT = report(results)
    write_section(RESULTS_TEXT)
    print(f"wrote the section '{HEADING[3:]}' to {RESULTS.relative_to(ROOT)}")


def revision() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "geo/planning"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return f"commit {head}" + (" with uncommitted changes to geo/planning/" if dirty else "")
    except Exception:
        return "revision unknown"


def report(results) -> str:
    today = dt.date.today().isoformat()
    L = [HEADING, "",
         f"Command: `make bench-split` (= `.venv/bin/python bench/bench_split.py`, {today}, {revision()}). "
         f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}; every run is single-threaded "
         "(METIS, shapely and spopt each use one core). Band: grids of 300-500 households.",
         "",
         "Both methods solve the same problem. Our split builds its atoms (compounds up to 500 households, open "
         "blocks cut by roads, and the buildings of bigger compounds with their territories), partitions them and "
         "refines the result. spopt's `MaxPHeuristic` then gets those same atoms as areal units, with rook "
         "contiguity, households as the threshold attribute (floor 300), and territory centroids as the attributes to "
         "keep regions compact. Its regions are unioned into polygons. `geo.planning.quality.measure` judges both "
         "plans from geometry alone. Our time is the best of 3 runs and includes building the atoms. spopt's time "
         "covers the weights and the solve. max-p's run time swings widely with its random seed (0.14 s to 13.9 s on "
         "one community), so it runs with seeds 0, 1 and 2. The table shows the median time, with the fastest and "
         "slowest in brackets, and the best of the three plans (fewest parts outside the band, then the smallest "
         "deviation). \"time / spopt\" is our time divided by spopt's median on the same instance, in the same "
         "process. GerryChain's recursive_tree_part was not run. max-p has no ceiling: it maximises the number of "
         "regions above the floor, so its regions can run past 500.",
         "",
         "Columns: parts; parts in the band; max dev = households outside the band in the worst part; "
         "cmpd split = compounds below the band floor cut by a boundary (compounds of 300-500 that were "
         "opened are shown in brackets); bldg split = buildings cut; road and road/wall = share of new "
         "boundary within 6 m of a road centre line (or 1 m of a compound wall); PP = Polsby-Popper; "
         "contig. = parts in one piece. The targets are: every part in the band, contiguous, no small "
         "compound or building split, road/wall share ≥ 70 %, PP mean ≥ 0.5 and min ≥ 0.3.",
         ""]
    if "sample" in results:
        insts, rows = results["sample"]
        L += [f"### Sample district: the {len(insts)} oversized communities", "",
              "`data/boundaries/sample-district.gpkg`, communities over 3,000 households, with their compounds, "
              f"buildings ({sum(len(i.buildings) for i in insts):,}), small neighbourhoods "
              f"({sum(len(i.cells or []) for i in insts):,}; passed to `split` as `cells`, so a big compound "
              "is opened along them) and the district's roads, in a local transverse Mercator.", "",
              summary(rows), "", "Per community:", "", table(rows, "community"), ""]
        miss = misses(rows)
        if miss:
            L += ["Targets missed:", ""] + miss + [""]
    if "village" in results:
        insts, rows = results["village"]
        inst = insts[0]
        ours = rows[0]
        L += ["### Synthetic urban village: 2,000 buildings (the speed target)", "",
              f"Made by `urban_village(seed=2026)` in the bench file. It is a lane lattice of {inst.info['cells']} "
              f"jittered cells of about 38 × 36 m, with {inst.info['lanes_m']:,} m of lanes. There are "
              f"{len(inst.buildings):,} buildings of 2-4 households, {inst.households:,} households in all. "
              f"The {len(inst.compounds)} compounds tile the outline with shared edges: open blocks of 1-3 cells, "
              "one gated estate over 500 households (so it is opened into its buildings), one of 300-500 "
              "households, and three empty cells. "
              f"Our split built {ours.atoms} atoms.", "",
              table(rows), ""]
        ok_time = ours.seconds <= 2.0
        miss = meets_targets(ours.m)
        L += [f"Target \"2,000 buildings into 10-20 grids in ≤ 2 s on 2 cores\": {ours.m['parts']} grids in "
              f"{ours.seconds:.2f} s, {'met' if ok_time and 10 <= ours.m['parts'] <= 20 else 'NOT met'}. "
              f"Quality targets: {'all met' if not miss else 'missed: ' + '; '.join(miss)}.", ""]
        if ours.notes:
            L += ["Notes from the splitter: " + " ".join(ours.notes), ""]
        sp = [r for r in rows if r.method.startswith("spopt")]
        if sp and meets_targets(sp[0].m):
            L += ["spopt missed: " + "; ".join(meets_targets(sp[0].m)) + ".", ""]
    if "osm" in results:
        insts, rows = results["osm"]
        inst = insts[0]
        info = inst.info
        ours = rows[0]
        m = ours.m
        L += ["### Real buildings: OpenStreetMap, Guanggu (Wuhan)", "",
              "Data: `../shared/data/osm-wuhan-guanggu` (© OpenStreetMap contributors, ODbL), read in place. "
              f"The outline is the area's bounding box (114.383-114.406 E, 30.500-30.515 N, {info['area_km2']} km²) "
              "in a transverse Mercator centred on it. No compounds are given, so the splitter cuts the land into "
              "open blocks by the roads itself.", "",
              "How the input was made:", "",
              f"- Buildings: {info['features']['features']} features. {info['features']['points']} label points "
              f"and {info['features']['not_building']} building parts and addresses were dropped. Pieces cut at "
              f"tile edges were dissolved by `id` into {info['osm_ids']} buildings, then clipped to the outline.",
              f"- Residential or not, from tags: {info['residential']} buildings were counted as residential "
              f"and {info['skipped']} were skipped. Residential means a residential `kind_detail` (house, "
              "apartments, residential), or a name with a housing word (宿舍, 公寓, 住宅, 小区, 花园, 雅苑, "
              "单身楼), or no name and no tags at all, unless the building stands on industrial, commercial, "
              "retail or park land. Named buildings without a housing word are skipped, and so is any other "
              "`kind_detail`. Skipped examples: " + ", ".join(info["skipped_examples"]) + ".",
              f"- Households = floors × footprint × {NET_SHARE} / {FLAT_M2:.0f} m² (a 90 m² gross flat, 75 % "
              f"of floor area in flats), with floors = max(1, round(height / {FLOOR_M:.0f} m)). "
              f"{info['from_height']} buildings have a height; the other {info['guessed_floors']} get "
              f"{DEFAULT_FLOORS} floors (a walk-up). That gives {inst.households:,} households.",
              "- Roads: the kinds major_road, minor_road and path, without tunnels "
              f"({', '.join(f'{k} {v}' for k, v in sorted(info['road_kinds'].items()))}). Rail is left out: "
              "here it is the metro, in tunnel, so it is no boundary on the ground.", "",
              table(rows), "",
              f"Our split: {m['parts']} grids of {min(m['households'])}-{max(m['households'])} households "
              f"from {ours.atoms} atoms; {m['in_band']} of {m['parts']} in the band; road share "
              f"{m['road_share']:.0%}; PP mean {m['polsby_popper_mean']:.2f}, min {m['polsby_popper_min']:.2f}; "
              f"gaps {m['gap_m2']} m², overlaps {m['overlap_m2']} m²; {ours.seconds:.2f} s. "
              + ("Targets met." if not meets_targets(m) else "Targets missed: " + "; ".join(meets_targets(m)) + "."),
              ""]
        if ours.notes:
            L += ["Notes from the splitter:", ""] + [f"- {n}" for n in ours.notes] + [""]
        else:
            L += ["The splitter left no notes: every part is inside the band by its own count.", ""]
        why = []
        if m["buildings_split"]:
            n_cut = len(m['buildings_split'])
            why.append(f"{n_cut} building{'s are' if n_cut > 1 else ' is'} cut. In this data {info['touching_pairs']} "
                       "pairs of residential buildings touch or overlap. Where a block is opened into its "
                       "buildings, the Voronoi territories (from points every 4 m along the walls) give part "
                       "of one building's footprint to the neighbour it touches. When the two territories "
                       "land in different grids, the boundary runs through the building")
        if m["contiguous"] < m["parts"]:
            why.append(f"{m['parts'] - m['contiguous']} grids are in more than one piece. {ours.multi_atoms} "
                       "atoms have a territory in several pieces: a Voronoi cell clipped to a non-convex "
                       "open block, or the piece inside a touching building. The graph counts such an "
                       "atom as one node, so a part can be connected in the graph but not on the ground")
        if m["polsby_popper_min"] < 0.3 or m["polsby_popper_mean"] < 0.5:
            why.append("Compactness suffers because most of the area has no households in this data: "
                       "campus, commercial blocks, parkland, and parts OSM has not mapped. Grids must "
                       "absorb these large, irregular empty blocks whole")
        if m["outside_m2"] > 1 or m["gap_m2"] > 1:
            why.append(f"The tiling check fails on rounding: {m['outside_m2']} m² outside and {m['gap_m2']} m² "
                       "of gaps, spread along 7.7 km of outline edges. That is under a millimetre wide, but "
                       "the check's limit is 1 m² whatever the area's size")
        if why:
            L += (["Why targets are missed here (seen on this run's atoms and parts):", ""]
                  + [f"- {w}." for w in why] + [""])
    return "\n".join(L)


if __name__ == "__main__":
    main()
