"""How good a set of parts is: the figures planners judge a split or merge by.

Measured from geometry alone (metric CRS), so a hand-edited plan, a METIS split and a
max-p regionalisation are judged the same way:
- households per part (buildings by a point on each; compounds without buildings by
  their largest overlap), and how far each part is outside the band;
- contiguity (one polygon per part), tiling (gaps and overlaps against the outline, as
  commit measures them: geo/planning/tiling.py);
- compounds smaller than the band's ceiling that are split, buildings cut by a boundary;
- the share of new boundary length that runs along roads or compound walls;
- Polsby-Popper compactness 4πA/P² per part.

Parts made invalid by projection are repaired, and every overlay is made robust, as tiling
does it (geo/planning/tiling.py `valid`, `overlay`): what GEOS still cannot measure is
InvalidInput naming the parts, never a GEOSException.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from shapely.errors import GEOSException

from geo.planning import tiling
from geo.planning.atoms import Feature
from geo.planning.graph import ROAD_TOLERANCE_M

WALL_TOLERANCE_M = 1.0  # a boundary within this of a compound wall (or inside a building by more) runs along it
SPLIT_AREA_M2 = 1.0  # a compound or building is split when a second part takes more than this


def households_of(parts: np.ndarray, compounds: list[Feature], buildings: list[Feature]) -> np.ndarray:
    """Households in each part."""
    parts = tiling.valid(np.asarray(parts, dtype=object))
    totals = np.zeros(len(parts), dtype=np.int64)
    tree = shapely.STRtree(parts)
    with_buildings = set()
    if buildings:
        probes = np.array([b.geom if b.geom.geom_type == "Point" else b.geom.point_on_surface()
                           for b in buildings], dtype=object)
        hit_b, hit_p = tree.query(probes, predicate="intersects")
        owner = np.full(len(buildings), -1)
        owner[hit_b[::-1]] = hit_p[::-1]
        for b, p in zip(buildings, owner, strict=True):
            if p >= 0:
                totals[p] += b.households
            if b.compound:
                with_buildings.add(b.compound)
    for c in compounds:
        if c.code in with_buildings or not c.households:
            continue
        cands = tree.query(c.geom, predicate="intersects")
        if len(cands):
            areas = shapely.area(tiling.overlay(shapely.intersection, parts[cands], c.geom))
            totals[cands[int(np.argmax(areas))]] += c.households
    return totals


def _split_count(parts: np.ndarray, features: list[Feature]) -> list[str]:
    if not features:
        return []
    tree = shapely.STRtree(parts)
    geoms = np.array([f.geom for f in features], dtype=object)
    hit_f, hit_p = tree.query(geoms, predicate="intersects")
    if not len(hit_f):
        return []
    areas = shapely.area(tiling.overlay(shapely.intersection, geoms[hit_f], parts[hit_p]))
    big = areas > SPLIT_AREA_M2
    counts = np.bincount(hit_f[big], minlength=len(features))
    return [features[i].code for i in np.flatnonzero(counts > 1)]


def new_boundary(parts: np.ndarray, outline: shapely.Geometry) -> shapely.Geometry:
    """Lines that separate parts (the outline itself excluded)."""
    edges = tiling.overlay(shapely.union_all, shapely.boundary(tiling.valid(np.asarray(parts, dtype=object))))
    return tiling.overlay(shapely.difference, edges, shapely.buffer(tiling.valid(outline).boundary, 0.05, quad_segs=2))


def measure(parts: Sequence[shapely.Geometry] | np.ndarray, outline: shapely.Geometry, band: tuple[int, int],
            compounds: list[Feature], buildings: list[Feature], roads: list[shapely.Geometry],
            households: np.ndarray | None = None,
            dwellings: tuple[list[Feature], shapely.Geometry] | None = None,
            labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Every figure of the quality targets, for parts (metric polygons) of `outline`.

    `dwellings` = (buildings, entrance lines) for small neighbourhoods: their boundaries run
    along lanes or between buildings, or between two entrances of one building; the share
    of new boundary that does so replaces the road-or-wall share in the targets.
    InvalidInput (naming `labels`, else "part k") when GEOS cannot measure the parts."""
    fixed: np.ndarray = tiling.valid(np.asarray(parts, dtype=object))
    try:
        return _measure(fixed, tiling.valid(outline), band, compounds, buildings, roads, households, dwellings,
                        labels)
    except GEOSException as exc:
        raise tiling.unmeasurable(exc, fixed, labels, doing="measured") from None


def _measure(parts: np.ndarray, outline: shapely.Geometry, band: tuple[int, int], compounds: list[Feature],
             buildings: list[Feature], roads: list[shapely.Geometry], households: np.ndarray | None,
             dwellings: tuple[list[Feature], shapely.Geometry] | None,
             labels: Sequence[str] | None) -> dict[str, Any]:
    lo, hi = band
    if households is None:
        households = households_of(parts, compounds, buildings)
    households = np.asarray(households, dtype=np.int64)
    dev = np.maximum(households - hi, 0) + np.maximum(lo - households, 0)
    area = shapely.area(parts)
    perimeter = shapely.length(parts)
    pp = np.where(perimeter > 0, 4 * math.pi * area / np.maximum(perimeter, 1e-9) ** 2, 0.0)
    pieces = shapely.get_num_geometries(parts)
    # compounds below the floor fit in any part and are never split; compounds within the
    # band are kept whole unless the band cannot be met otherwise (reported separately)
    split_compounds = _split_count(parts, [c for c in compounds if c.households is not None and c.households < lo])
    split_in_band = _split_count(parts, [c for c in compounds if c.households is not None and lo <= c.households <= hi])
    split_buildings = _split_count(parts, [b for b in buildings if b.geom.geom_type != "Point"])
    lines = new_boundary(parts, outline)
    total_len = float(lines.length)
    on_road = on_wall = 0.0
    if total_len > 0:
        guides = []
        if roads:
            guides.append(shapely.buffer(tiling.overlay(shapely.union_all, roads), ROAD_TOLERANCE_M, quad_segs=2))
        if compounds:
            walls = tiling.overlay(shapely.union_all, [shapely.boundary(c.geom) for c in compounds])
            guides.append(shapely.buffer(walls, WALL_TOLERANCE_M, quad_segs=2))
        if roads:
            on_road = float(tiling.overlay(shapely.intersection, lines, guides[0]).length)
        if guides:
            either = tiling.overlay(shapely.union_all, guides)
            on_wall = float(tiling.overlay(shapely.intersection, lines, either).length)
    extra = {}
    if dwellings is not None:
        blds, cuts = dwellings
        solid = [shapely.buffer(b.geom, -WALL_TOLERANCE_M) for b in blds if b.geom.geom_type != "Point"]
        inside = tiling.overlay(shapely.union_all, solid) if solid else shapely.Polygon()
        if not cuts.is_empty:
            inside = tiling.overlay(shapely.difference, inside, shapely.buffer(cuts, WALL_TOLERANCE_M, quad_segs=2))
        through = float(tiling.overlay(shapely.intersection, lines, inside).length) if total_len else 0.0
        extra = {"through_dwellings_m": round(through, 1),
                 "between_dwellings_share": round(1 - through / total_len, 4) if total_len else 1.0}
    tiled = tiling.figures(parts, outline, labels)  # as commit measures it (geo/planning/tiling.py `problems`)
    return {
        "parts": int(len(parts)),
        "households": households.tolist(),
        "band": [lo, hi],
        "in_band": int(np.count_nonzero(dev == 0)),
        "out_of_band": int(np.count_nonzero(dev > 0)),
        "max_deviation": int(dev.max()) if len(dev) else 0,
        "mean_abs_deviation_from_mid": float(np.mean(np.abs(households - (lo + hi) / 2))) if len(dev) else 0.0,
        "contiguous": int(np.count_nonzero(pieces == 1)),
        "contiguous_share": float(np.mean(pieces == 1)) if len(parts) else 1.0,
        "compounds_split": split_compounds,
        "compounds_in_band_split": split_in_band,
        "buildings_split": split_buildings,
        "new_boundary_m": round(total_len, 1),
        "road_share": round(on_road / total_len, 4) if total_len else 1.0,
        "road_or_wall_share": round(on_wall / total_len, 4) if total_len else 1.0,
        "polsby_popper": [round(float(x), 4) for x in pp],
        "polsby_popper_mean": round(float(pp.mean()), 4) if len(pp) else 0.0,
        "polsby_popper_min": round(float(pp.min()), 4) if len(pp) else 0.0,
        "gap_m2": round(tiled.gap, 3),
        "overlap_m2": round(tiled.overlap, 3),
        "outside_m2": round(tiled.spill, 3),
    } | extra


TARGETS = {
    "road_or_wall_share": 0.70,
    "polsby_popper_mean": 0.5,
    "polsby_popper_min": 0.3,
}


def meets_targets(m: dict[str, Any]) -> list[str]:
    """What a plan misses of the quality targets (empty when it meets all), and why its commit
    would be refused when it has `commit_problems` (`refused`)."""
    missed = []
    if m["out_of_band"]:
        missed.append(f"{m['out_of_band']} part(s) outside {m['band'][0]}-{m['band'][1]} households")
    if m["contiguous"] != m["parts"]:
        missed.append(f"{m['parts'] - m['contiguous']} part(s) not contiguous")
    if m["compounds_split"]:
        missed.append(f"{len(m['compounds_split'])} compound(s) smaller than the band's floor split")
    if m["buildings_split"]:
        missed.append(f"{len(m['buildings_split'])} building(s) cut by a boundary")
    if "between_dwellings_share" in m:
        if m["between_dwellings_share"] < TARGETS["road_or_wall_share"]:
            missed.append(f"only {m['between_dwellings_share']:.0%} of new boundary on lanes, walls, between "
                          "buildings or between entrances (target 70 %)")
    elif m["road_or_wall_share"] < TARGETS["road_or_wall_share"]:
        missed.append(f"only {m['road_or_wall_share']:.0%} of new boundary on roads or walls (target 70 %)")
    if m["polsby_popper_mean"] < TARGETS["polsby_popper_mean"]:
        missed.append(f"mean Polsby-Popper {m['polsby_popper_mean']:.2f} (target ≥ 0.5)")
    if m["polsby_popper_min"] < TARGETS["polsby_popper_min"]:
        missed.append(f"min Polsby-Popper {m['polsby_popper_min']:.2f} (target ≥ 0.3)")
    if m["gap_m2"] > 1 or m["overlap_m2"] > 1 or m["outside_m2"] > 1:
        missed.append(f"parts do not tile the area (gaps {m['gap_m2']} m², overlaps {m['overlap_m2']} m², "
                      f"beyond it {m['outside_m2']} m²)")
    return missed + refused(m.get("commit_problems") or [])


def refused(commit_problems: list[str]) -> list[str]:
    """The target every plan must meet, whatever it is: that its commit would not be refused."""
    if not commit_problems:
        return []
    more = f" (and {len(commit_problems) - 1} more: see commit_problems)" if len(commit_problems) > 1 else ""
    return [f"commit would be refused: {commit_problems[0]}{more}"]
