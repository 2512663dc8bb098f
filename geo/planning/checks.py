"""Checks of the stored units, reported as GeoJSON a map can show.

- gaps: land of a parent that none of its children covers, for the levels that must tile
  their parent (communities tile their street, grids their community);
- overlaps between sibling units of one level, with their area and location;
- children outside their parent (beyond the store's 0.5 m tolerance);
- units outside their level's household band;
- units that are not contiguous (more than one polygon).
PostGIS 3.3 has no coverage functions, so this works in shapely on the units of each
parent, in a local metric CRS. Areas below 1 m² are rounding, not problems.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyproj
import shapely

from geo.coords import crs
from geo.units import levels
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
    out = []
    geoms = geoms_m[idx]
    codes_ = [rows[i]["code"] for i in idx]
    # a valid coverage (shapely's coverage_is_valid: edges match vertex for vertex) has no
    # overlaps; otherwise look for them pair by pair. Mismatched vertices alone (a
    # T-junction) are not a problem worth a planner's time, so they are not reported.
    if len(geoms) > 1 and not shapely.coverage_is_valid(geoms):
        tree = shapely.STRtree(geoms)
        a, b = tree.query(geoms, predicate="intersects")
        keep = a < b
        for i, j in zip(a[keep].tolist(), b[keep].tolist(), strict=True):
            inter = shapely.intersection(geoms[i], geoms[j])
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
        union = shapely.union_all(geoms)
        gaps = shapely.difference(parent_m, union)
        for g in shapely.get_parts(gaps):
            if g.area >= MIN_AREA_M2:
                out.append(feature("gap", lv, g, metric,
                                    f"{g.area:,.1f} m² of {parent['level']} {pcode} is in no {lv}",
                                    parent=pcode, area_m2=round(g.area, 1)))
    # children outside their parent
    outside = shapely.difference(geoms, shapely.buffer(parent_m, CONTAINMENT_TOLERANCE_M))
    for k, o in enumerate(outside):
        if o is not None and o.area >= MIN_AREA_M2:
            out.append(feature("outside_parent", lv, o, metric,
                                f"{lv} {codes_[k]} reaches {o.area:,.1f} m² outside its {parent['level']} {pcode}",
                                code=codes_[k], parent=pcode, area_m2=round(o.area, 1)))
    return out
