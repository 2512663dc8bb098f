"""Checks of the stored units, reported as GeoJSON a map can show.

- gaps: land of a parent that none of its children covers, for the levels that must tile
  their parent (communities tile their street, grids their community);
- overlaps between sibling units of one level, with their area and location;
- children outside their parent (beyond the store's 0.5 m tolerance);
- units outside their level's household band;
- units that are not contiguous (more than one polygon).
PostGIS 3.3 has no coverage functions, so this works in shapely on the units of each
parent, in a local metric CRS. Areas below 1 m² are rounding, not problems.

And, for a plan before it is committed, what the containment checks of its commit would
refuse (`outside_parents`, `children_outside`): the rules of geo/units/containment.py, run as
geo/usecases/boundaries.py `write_units` runs them, so a plan reports what commit would say.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyproj
import shapely
from shapely.errors import GEOSException

from geo.coords import crs
from geo.errors import InvalidInput
from geo.planning import tiling
from geo.units import containment, levels
from geo.units.containment import CONTAINMENT_TOLERANCE_M

MIN_AREA_M2 = 1.0


def _point(geom_m: shapely.Geometry, metric: pyproj.CRS) -> list[float]:
    p = crs.transform(np.array([geom_m.representative_point()], dtype=object), metric, crs.WGS84)[0]
    return [round(p.x, 7), round(p.y, 7)]


def feature(problem: str, level: str, geom_m: shapely.Geometry, metric: pyproj.CRS, message: str,
            **props: Any) -> dict[str, Any]:
    geom = crs.transform(np.array([geom_m], dtype=object), metric, crs.WGS84)[0]
    return {
        "type": "Feature",
        "geometry": shapely.geometry.mapping(geom),
        "properties": {"problem": problem, "level": level, "message": message,
                       "location": _point(geom_m, metric), **props},
    }


def per_unit(lv: str, rows: list[dict[str, Any]], geoms_m: np.ndarray, metric: pyproj.CRS) -> list[dict[str, Any]]:
    out = []
    band = levels.HOUSEHOLD_BANDS.get(lv)
    for r, g in zip(rows, geoms_m, strict=True):
        hh = r["households"]
        if band and hh is not None and not band[0] <= hh <= band[1]:
            side = "below" if hh < band[0] else "above"
            out.append(feature("out_of_band", lv, g, metric,
                                f"{lv} {r['code']} has {hh} households, {side} the band {band[0]}-{band[1]}",
                                code=r["code"], households=hh, band=list(band)))
        pieces = [p for p in shapely.get_parts(g) if p.area >= MIN_AREA_M2]
        if len(pieces) > 1:
            out.append(feature("not_contiguous", lv, g, metric,
                                f"{lv} {r['code']} is in {len(pieces)} separate pieces",
                                code=r["code"], pieces=len(pieces)))
    return out


def siblings(lv: str, rows: list[dict[str, Any]], geoms_m: np.ndarray, metric: pyproj.CRS, idx: list[int],
             parent: dict[str, Any] | None, parent_m: shapely.Geometry | None) -> list[dict[str, Any]]:
    """Overlaps among siblings, gaps in the parent they tile and siblings outside it. Units that
    are valid in lon/lat but not once projected are repaired first, and an overlay GEOS cannot
    do even then is reported as a problem (`not_checked`), never raised."""
    try:
        return _siblings(lv, rows, geoms_m, metric, idx, parent, tiling.valid(parent_m))
    except GEOSException as exc:
        where = tiling.valid(geoms_m[idx])
        codes_ = [rows[i]["code"] for i in idx]
        return [feature("not_checked", lv, shapely.union_all(where), metric,
                        f"{lv} units {', '.join(codes_[:5])}{' ...' if len(codes_) > 5 else ''} could not be checked "
                        f"for overlaps and gaps ({exc}): look for self-touching rings or spikes",
                        codes=codes_)]


def _siblings(lv: str, rows: list[dict[str, Any]], geoms_m: np.ndarray, metric: pyproj.CRS, idx: list[int],
              parent: dict[str, Any] | None, parent_m: shapely.Geometry | None) -> list[dict[str, Any]]:
    out = []
    geoms = tiling.valid(geoms_m[idx])
    codes_ = [rows[i]["code"] for i in idx]
    # a valid coverage (shapely's coverage_is_valid: edges match vertex for vertex) has no
    # overlaps; otherwise look for them pair by pair. Mismatched vertices alone (a
    # T-junction) are not a problem worth a planner's time, so they are not reported.
    if len(geoms) > 1 and not shapely.coverage_is_valid(geoms):
        tree = shapely.STRtree(geoms)
        a, b = tree.query(geoms, predicate="intersects")
        keep = a < b
        for i, j in zip(a[keep].tolist(), b[keep].tolist(), strict=True):
            inter = tiling.overlay(shapely.intersection, geoms[i], geoms[j])
            area = float(shapely.area(inter))
            if area >= MIN_AREA_M2:
                out.append(feature("overlap", lv, inter, metric,
                                    f"{lv} {codes_[i]} and {codes_[j]} overlap by {area:,.1f} m²",
                                    codes=[codes_[i], codes_[j]], area_m2=round(area, 1)))
    if parent_m is None:
        return out
    assert parent is not None  # a parent's geometry comes with its row
    pcode = parent["code"]
    # gaps: parent land no child covers
    if levels.BY_NAME[lv].tiles == parent["level"]:
        union = tiling.overlay(shapely.union_all, geoms)
        gaps = tiling.overlay(shapely.difference, parent_m, union)
        for g in shapely.get_parts(gaps):
            if g.area >= MIN_AREA_M2:
                out.append(feature("gap", lv, g, metric,
                                    f"{g.area:,.1f} m² of {parent['level']} {pcode} is in no {lv}",
                                    parent=pcode, area_m2=round(g.area, 1)))
    # children outside their parent
    outside = tiling.overlay(shapely.difference, geoms, shapely.buffer(parent_m, CONTAINMENT_TOLERANCE_M))
    for k, o in enumerate(outside):
        if o is not None and o.area >= MIN_AREA_M2:
            out.append(feature("outside_parent", lv, o, metric,
                                f"{lv} {codes_[k]} reaches {o.area:,.1f} m² outside its {parent['level']} {pcode}",
                                code=codes_[k], parent=pcode, area_m2=round(o.area, 1)))
    return out


def _contained(level: str, parts_m: np.ndarray, labels: list[str], codes: list[str] | None,
               parents: list[containment.Parents]) -> None:
    """Raise what `write_units` raises for these units: each parent found, the unit inside it
    (0.5 m tolerance), its code naming that parent (when `codes` are given)."""
    n = len(parts_m)
    chains: list[dict[str, int | None]] = [dict.fromkeys(levels.CHAIN_COLUMNS) for _ in range(n)]
    for p in parents:
        match = containment.match_parents(parts_m, p, [None] * n, labels, level)
        containment.link_chains(level, codes or [""] * n, labels, p, match, chains, codes is not None)


def outside_parents(level: str, parts_m: np.ndarray, labels: list[str], codes: list[str] | None,
                    parents: list[containment.Parents]) -> list[str]:
    """What the containment check of a write would refuse of these units (metric, with the
    stored `parents` of each of their parent levels, in the same CRS), one message per unit."""
    parts = np.asarray(parts_m, dtype=object)
    try:
        _contained(level, parts, labels, codes, parents)
        return []
    except InvalidInput:
        pass
    found = []
    for k in range(len(parts)):
        try:
            _contained(level, parts[k:k + 1], labels[k:k + 1], codes[k:k + 1] if codes else None, parents)
        except InvalidInput as exc:
            found.append(str(exc))
    return found


def children_outside(level: str, parts_m: np.ndarray, part_codes: list[str], child_level: str,
                     children_m: np.ndarray, child_labels: list[str]) -> list[str]:
    """What a write moving the units beneath (`children_m`, of `child_level`) into these units
    would refuse: the first child that lies in none of them (0.5 m tolerance)."""
    if not len(children_m) or not len(parts_m):
        return []
    n = len(parts_m)
    parts = containment.Parents.of(level, list(range(n)), part_codes,
                                   [dict.fromkeys(levels.CHAIN_COLUMNS) for _ in range(n)],
                                   np.asarray(parts_m, dtype=object))
    try:
        containment.match_parents(np.asarray(children_m, dtype=object), parts, [None] * len(children_m),
                                  child_labels, child_level)
    except InvalidInput as exc:
        return [str(exc)]
    return []
