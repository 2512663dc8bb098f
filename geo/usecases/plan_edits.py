"""Editing a plan: a new revision of its proposed units from the polygons a planner sends back.

A planner exports the proposed units (`GET /plans/{id}/units`, `gridmap plan export`), changes
some in QGIS and sends back only those (`PUT /plans/{id}/units`, `gridmap plan edit`): features
are matched by code, and every unit not sent keeps its polygon of the current revision. Each
polygon is read in the crs it was sent in (WGS84 by default; GCJ-02 from Amap or WeChat, ...),
checked (plausible coordinates, repaired within 0.1 % or refused: geo/units/geometry.py) and
fitted into the plan's tiling in metres (geo/planning/tiling.py `fit`): its vertices snapped to
those of the outline and of its neighbours within 0.5 m, slivers beyond the outline cut off, and
neighbours giving way where it now lies. The revision is then measured as a drawn plan is
(geo/usecases/plans.py `_metrics`): its figures, the targets it misses and what commit would
refuse (`commit_problems`), gaps the edit left included.

Whatever is wrong with a feature is an InvalidInput naming it; no GEOS error reaches the caller.
The edit and its audit row are written in one transaction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import shapely
from shapely.errors import GEOSException

from geo import settings
from geo.coords import crs
from geo.coords.points import Area
from geo.db import audit, units
from geo.db import plans as db
from geo.errors import InvalidInput
from geo.planning import neighbourhoods, quality, tiling
from geo.security.identity import Identity
from geo.units import geometry, levels, model
from geo.usecases import plans
from geo.usecases.plans import Context


def edit_plan(conn: psycopg.Connection, plan_id: int, features: list[dict[str, Any]], *,
              expected_revision: int | None, crs_text: str | None = None,
              actor: str | Identity = "gridmap") -> dict[str, Any]:
    """A new revision of the plan's units: the features sent (matched by code, any number of
    them) fitted among the others, which keep the current revision where the edit leaves them."""
    if not isinstance(features, list) or not features:
        raise InvalidInput("upload a GeoJSON FeatureCollection with at least one feature")
    source = crs.parse(crs_text or "wgs84")
    area = settings.get().bounds
    with conn.transaction():
        plan = plans._lock_draft(conn, plan_id, expected_revision, doing="edit")
        proposed = db.units(conn, plan_id, plan["revision"])
        edited = _read(features, plan, proposed, source, area)
        try:
            ctx, edit = _fit(conn, plan, proposed, edited)
            metrics = _remeasure(conn, plan, proposed, ctx)
        except GEOSException as exc:  # what fitting each feature did not catch
            raise InvalidInput(f"{', '.join(edited.values())}: the polygons could not be measured with the plan's "
                               f"other units ({exc}); check them for self-intersections and slivers") from None
        metrics["edit"] = edit
        for u, hh in zip(proposed, metrics["households"], strict=True):
            u["households"] = int(hh)
        revision = plan["revision"] + 1
        db.write_units(conn, plan_id, revision, proposed, [u["geom"] for u in proposed])
        db.set_revision(conn, plan_id, revision, metrics, actor)
        plans.check_commit(conn, plan_id)
        audit.record(conn, actor, "plan.edit", "plan", [plan_id], before={"revision": plan["revision"]},
                     after={"revision": revision}, detail={"codes": [proposed[k]["code"] for k in edited]})
    return db.get(conn, plan_id)


def _read(features: list[Any], plan: dict[str, Any], proposed: list[dict[str, Any]], source: crs.Source,
          area: Area) -> dict[int, str]:
    """Each feature's polygon (WGS84, valid) and name put on the proposed unit with its code;
    returns the positions of the units edited, with the label naming each feature."""
    position = {u["code"]: k for k, u in enumerate(proposed)}
    edited: dict[int, str] = {}
    for i, feat in enumerate(features):
        label = f"feature {i + 1}"
        if not isinstance(feat, dict) or not isinstance(feat.get("properties"), dict):
            raise InvalidInput(f"{label}: not a GeoJSON Feature with properties")
        code = str(feat["properties"].get("code") or "").strip()
        if code not in position:
            raise InvalidInput(f"{label}: code {code!r} is not a unit of plan {plan['id']} "
                               f"(its codes: {', '.join(sorted(position)[:5])}...)")
        k = position[code]
        label = f"{label} ({code})"
        if k in edited:
            raise InvalidInput(f"{label}: {edited[k].split(' (')[0]} has the same code; send each unit once")
        try:
            geom = shapely.geometry.shape(feat.get("geometry"))
        except Exception:
            raise InvalidInput(f"{label}: geometry is not valid GeoJSON") from None
        try:
            geom = crs.to_wgs84(np.array([geom], dtype=object), source)[0]
            geometry.check_coordinates(np.array([geom], dtype=object), [label], area)
            proposed[k]["geom"] = geometry.normalise(geom, plan["level"], label)
        except GEOSException as exc:
            raise InvalidInput(f"{label}: the polygon cannot be read or repaired ({exc})") from None
        name = feat["properties"].get("name")
        if name:
            model.check_text(label, "its name", str(name))
            proposed[k]["name"] = str(name)[:model.MAX_NAME]
        edited[k] = label
    return edited


def _fit(conn: psycopg.Connection, plan: dict[str, Any], proposed: list[dict[str, Any]],
         edited: dict[int, str]) -> tuple[Context | None, dict[str, Any]]:
    """Fit the edited units among the others (geo/planning/tiling.py `fit`), in the metric CRS
    the plan is measured in, and what that did; each group of a merge on its own."""
    ctx = None
    if plan["parent_id"] is not None and plan["kind"] != "merge":
        ctx = plans.load_context(conn, plan["parent_id"])
        groups = [(ctx.metric, plans._outline_for(ctx, plan["level"]), list(range(len(proposed))))]
    else:
        groups = []
        for grp in sorted({proposed[k]["grp"] for k in edited}):
            members = [k for k, u in enumerate(proposed) if u["grp"] == grp]
            metric, target = plans._tiling_target(conn, plan | {"replaces": [r for r in plan["replaces"]
                                                                               if r["grp"] == grp]})
            groups.append((metric, target, members))
    edit: dict[str, Any] = {"codes": [proposed[k]["code"] for k in edited], "cut_beyond_outline_m2": {},
                            "given_way_m2": {}}
    for metric, target, members in groups:
        labels = [edited.get(k) or f"{plan['level']} {proposed[k]['code']}" for k in members]
        parts = crs.transform(np.array([proposed[k]["geom"] for k in members], dtype=object), crs.WGS84, metric)
        mine = [n for n, k in enumerate(members) if k in edited]
        fitted = tiling.fit(list(parts), mine, target, labels)
        # every unit of the group goes back to WGS84 the same way, so the edges they share stay
        # shared vertex for vertex
        back = crs.transform(np.array(fitted.parts, dtype=object), metric, crs.WGS84)
        for n, k in enumerate(members):
            proposed[k]["geom"] = geometry.normalise(back[n], plan["level"], labels[n])
        edit["cut_beyond_outline_m2"] |= {proposed[members[n]]["code"]: round(a, 2) for n, a in fitted.cut.items()}
        edit["given_way_m2"] |= {proposed[members[n]]["code"]: round(a, 2) for n, a in fitted.taken.items()}
    return ctx, edit


def _remeasure(conn: psycopg.Connection, plan: dict[str, Any], proposed: list[dict[str, Any]],
               ctx: Context | None) -> dict[str, Any]:
    """Metrics of the edited revision, households counted again (from the grids for communities,
    from the entrances for small neighbourhoods, else from the buildings)."""
    level, codes = plan["level"], [u["code"] for u in proposed]
    if ctx is None:  # a merge: its figures stay; what commit would refuse is found again
        metrics = dict(plan["metrics"])
        metrics["households"] = [u["households"] for u in proposed]
        metrics["commit_problems"] = _merge_problems(conn, plan, proposed)
        metrics["targets_missed"] = [t for t in metrics.get("targets_missed") or []
                                     if not t.startswith("commit would be refused")]
        metrics["targets_missed"] += quality.refused(metrics["commit_problems"])
        return metrics
    parent_id = plan["parent_id"]
    geoms_m = crs.transform(np.array([u["geom"] for u in proposed], dtype=object), crs.WGS84, ctx.metric)
    lo, hi = plan["params"].get("band") or levels.HOUSEHOLD_BANDS.get(level, (1, 10**9))
    if level == "community":
        grids = plans._features(units.children_of(conn, "grid", "community_id", parent_id), ctx.metric)
        hh = quality.households_of(geoms_m, grids, [])
    elif level == "neighbourhood":  # drawn as runs of entrances: counted by entrance
        dwellings = neighbourhoods.entrances(ctx.buildings, int(hi), db.building_attributes(conn, parent_id))
        hh = quality.households_of(geoms_m, [], dwellings)
    else:
        hh = quality.households_of(geoms_m, ctx.compounds, ctx.buildings)
    return plans._metrics(conn, ctx, level, (int(lo), int(hi)), list(geoms_m), [int(h) for h in hh], codes)


def _merge_problems(conn: psycopg.Connection, plan: dict[str, Any], proposed: list[dict[str, Any]]) -> list[str]:
    """What commit would refuse of a merge plan: each group's tiling of the units it joins,
    each merged unit inside its parents (the checks commit runs)."""
    found = []
    for grp in sorted({u["grp"] for u in proposed}):
        mine = [u for u in proposed if u["grp"] == grp]
        found += [f"the plan's group {grp} " + p for p in plans._check_tiling(
            conn, plan | {"replaces": [r for r in plan["replaces"] if r["grp"] == grp]}, mine, refuse=False)]
        geoms_m, metric = crs.to_metric(np.array([u["geom"] for u in mine], dtype=object))
        found += plans._contained(conn, plan["level"], geoms_m, metric, [u["code"] for u in mine], {})
    return found
