"""Checks of the stored units (geo/planning/checks.py), reported as GeoJSON a map can show:
each level read as of a time, siblings grouped by their parent, in a local metric CRS; and
every code checked against the chain it lies in (geo/units/codes.py `against_chain`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import numpy as np
import psycopg

from geo.coords import crs
from geo.db import units
from geo.planning import checks
from geo.units import codes, levels

CHECKED = ("street", "community", "grid", "compound", "neighbourhood")
CODED = ("community", "grid", "compound", "neighbourhood", "building")  # codes that name a parent


def _codes_against_chain(conn: psycopg.Connection, level: str, as_of: datetime | None) -> list[dict[str, Any]]:
    """A problem for each unit whose code names another parent than the one it lies in."""
    p_level = codes.code_parent_level(level)
    if level not in CODED or p_level is None:
        return []
    out = []
    for r in units.code_chains(conn, level, p_level, as_of):
        message = codes.against_chain(level, r["code"], r["parent_code"])
        if message:
            out.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                        "properties": {"problem": "code_against_chain", "level": level, "message": message,
                                       "code": r["code"], "unit_id": r["unit_id"], "parent_code": r["parent_code"],
                                       "location": [round(r["lon"], 7), round(r["lat"], 7)]}})
    return out


def validate(conn: psycopg.Connection, level: str | None = None, as_of: datetime | None = None) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of every problem found, with counts per kind."""
    todo = [levels.parse_level(level)] if level else list(CHECKED) + ["building"]
    features: list[dict[str, Any]] = []
    for lv in todo:
        features += _codes_against_chain(conn, lv, as_of)
        if lv == "building":
            continue
        rows = units.units_rows(conn, lv, as_of=as_of)
        if not rows:
            continue
        geoms_m, metric = crs.to_metric(np.array([r["geom"] for r in rows], dtype=object))
        features += checks.per_unit(lv, rows, geoms_m, metric)
        parent_level = levels.PARENTS[lv][0] if levels.PARENTS[lv] else None
        if parent_level is None:
            features += checks.siblings(lv, rows, geoms_m, metric, list(range(len(rows))), None, None)
            continue
        col = levels.PARENT_COLUMNS[parent_level]
        parents = {r["unit_id"]: r for r in units.units_rows(conn, parent_level, as_of=as_of)}
        groups: dict[int | None, list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault(r[col], []).append(i)
        for pid, idx in groups.items():
            parent = parents.get(pid) if pid is not None else None
            parent_m = crs.transform(np.array([parent["geom"]], dtype=object), crs.WGS84, metric)[0] \
                if parent else None
            features += checks.siblings(lv, rows, geoms_m, metric, idx, parent, parent_m)
    counts: dict[str, int] = {}
    for f in features:
        counts[f["properties"]["problem"]] = counts.get(f["properties"]["problem"], 0) + 1
    return {"type": "FeatureCollection", "valid": not features, "counts": counts, "features": features}


def to_text(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False)
