"""What a planner reviews of a plan, before or after committing it: its proposed units (with
households, band and Polsby-Popper) beside the units it replaces at the versions it was drawn
from, the outline of the unit it redraws, where each part's households come from, its metrics
and targets missed, and the problems the checks of stored units (geo/planning/checks.py) find
on the proposed units and on the current ones: out of band, not contiguous, overlaps, gaps and
units reaching outside what they redraw. The plan map (maps/plan.py) draws it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import shapely

from geo.coords import crs
from geo.db import plans as db
from geo.db import units
from geo.planning import checks
from geo.units import levels
from geo.usecases.plans import compare


def _feature(geom: Any, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": shapely.geometry.mapping(geom), "properties": props}


def _with_label_points(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    """Each row's label point (centre of the largest inscribed circle) and the size of its box."""
    for r, (lon, lat) in zip(rows, db.label_points(conn, [r["geom"] for r in rows]), strict=True):
        r["lp"] = [round(lon, 7), round(lat, 7)]
        minx, miny, maxx, maxy = r["geom"].bounds
        r["room"] = [round(maxx - minx, 6), round(maxy - miny, 6)]


def _problems(level: str, rows: list[dict[str, Any]], parent: dict[str, Any] | None,
              source: str) -> list[dict[str, Any]]:
    """The checks of stored units (band, contiguity, overlaps, gaps, outside the parent) on `rows`."""
    if not rows:
        return []
    geoms = np.array([r["geom"] for r in rows] + ([parent["geom"]] if parent else []), dtype=object)
    geoms_m, metric = crs.to_metric(geoms)
    parent_m = geoms_m[-1] if parent else None
    geoms_m = geoms_m[:len(rows)]
    found = checks.per_unit(level, rows, geoms_m, metric)
    found += checks.siblings(level, rows, geoms_m, metric, list(range(len(rows))), parent, parent_m)
    for f in found:
        f["properties"]["source"] = source
    return found


def _short(name: str, parent: dict[str, Any] | None) -> str:
    """A part's name without its parent's (黄鹤湖社区第3网格 -> 第3网格), for labels."""
    if parent and name.startswith(parent["name"]) and len(name) > len(parent["name"]):
        return name[len(parent["name"]):]
    return name


def review(conn: psycopg.Connection, plan_id: int) -> dict[str, Any]:
    """Everything the plan map shows (NotFound for an unknown plan)."""
    plan = db.get(conn, plan_id)
    level = plan["level"]
    metrics = plan["metrics"] or {}
    band = metrics.get("band") or (plan["params"] or {}).get("band") or levels.HOUSEHOLD_BANDS.get(level)
    proposed = db.units(conn, plan_id, plan["revision"])
    replaced = db.replaced_versions(conn, plan_id)
    parent = None
    if plan["parent_id"] is not None:
        p = units.get_unit(conn, plan["parent_id"], as_of=None if plan["status"] == "draft" else plan["created_at"])
        parent = {"id": p["unit_id"], "level": p["level"], "code": p["code"], "name": p["name"],
                  "households": p["households"], "geom": shapely.geometry.shape(p["geometry"])}
    # the unit a split or redraw covers is the parent; a merge covers the units it joins
    check_parent = parent if plan["kind"] != "merge" else None
    problems = _problems(level, proposed, check_parent, "proposed")
    problems += _problems(level, [r for r in replaced if r["level"] == level], check_parent, "current")
    if parent and parent["level"] != level:
        problems += _problems(parent["level"], [parent], None, "current")
    _with_label_points(conn, proposed + replaced)
    compared = compare(conn, plan_id)
    flows = {u["seq"]: u for u in compared["units"]}
    pp = metrics.get("polsby_popper") or []
    by_code: dict[str, list[str]] = {}
    for f in problems:
        if f["properties"]["source"] == "proposed":
            for code in [f["properties"].get("code"), *f["properties"].get("codes", [])]:
                if code:
                    by_code.setdefault(code, []).append(f["properties"]["problem"])
    parts = []
    for k, u in enumerate(proposed):
        parts.append({"seq": u["seq"], "group": u["grp"], "code": u["code"], "name": u["name"],
                      "households": u["households"], "area_m2": round(u["area_m2"], 1),
                      "polsby_popper": pp[k] if k < len(pp) and plan["kind"] != "merge" else None,
                      "contiguous": "not_contiguous" not in by_code.get(u["code"], []),
                      "problems": sorted(set(by_code.get(u["code"], []))),
                      "from": flows.get(u["seq"], {}).get("from", {})})
    if plan["kind"] == "merge":
        for part, merge in zip(parts, metrics.get("merges") or [], strict=False):
            part["polsby_popper"] = merge.get("polsby_popper")
            part["merges"] = {"small": merge.get("small"), "into": merge.get("into"),
                              "households_moved": merge.get("households_moved")}
    return {
        "plan": {k: plan[k] for k in ("id", "kind", "status", "level", "revision", "params", "notes", "created_at",
                                      "updated_at", "closed_at")},
        "band": list(band) if band else None,
        "metrics": metrics,
        "parent": {k: v for k, v in parent.items() if k != "geom"} if parent else None,
        # what the commit would do (a draft) or did (a committed plan): codes that follow their
        # units to new parents, workers and incidents moved, a problem that would stop it
        "compare": {k: compared.get(k) for k in ("households_moved", "code_changes", "workers", "incidents_moved",
                                                 "problem", "as_committed")},
        "parts": parts,
        "proposed": {"type": "FeatureCollection", "features": [
            _feature(u["geom"], {"id": u["seq"], "seq": u["seq"], "code": u["code"], "name": u["name"],
                                 "short": _short(u["name"], parent), "households": u["households"], "lp": u["lp"],
                                 "room": u["room"]}) for u in proposed]},
        "current": {"type": "FeatureCollection", "features": [
            _feature(r["geom"], {"id": r["id"], "code": r["code"], "name": r["name"], "households": r["households"],
                                 "version": r["version"], "level": r["level"], "current": r["current"],
                                 "lp": r["lp"], "room": r["room"]}) for r in replaced]},
        "outline": _feature(parent["geom"], {"code": parent["code"], "name": parent["name"]}) if parent else None,
        "problems": {"type": "FeatureCollection", "features": problems},
    }
