"""Plans: stored proposals to split or merge units, drawn, compared, edited, committed.

A plan records the units it replaces at the versions it was drawn from. Commit checks
those versions are still current (else Conflict), re-checks that the proposed units tile
what they replace (no gaps, no overlaps) and then, in one transaction, closes the old
versions and opens the new units with lineage (geo/usecases/boundaries.py). Nothing is
overwritten: an edit adds a revision of the proposed units; a committed or discarded plan
stays on record. Every step writes its audit row in its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import shapely

from geo import settings
from geo.coords import crs
from geo.db import audit, roads, units
from geo.db import plans as db
from geo.errors import Conflict, InvalidInput
from geo.planning import communities, merge, naming, neighbourhoods, quality, search, tiling
from geo.planning import compare as flows
from geo.planning.atoms import Feature, Infeasible
from geo.security.identity import Identity
from geo.units import geometry, levels
from geo.units.model import Progress, UnitInput, no_progress
from geo.usecases import boundaries

SPLITS = {"community": ("community", "grid"), "grid": ("grid", "neighbourhood")}


@dataclass
class Context:
    """A unit and what lies inside it, in a local metric CRS."""

    unit: dict[str, Any]
    metric: Any
    outline: Any
    compounds: list[Feature]
    buildings: list[Feature]
    cells: list[Feature]
    roads: list[Any]


def _features(rows: list[dict[str, Any]], metric: Any,
              compound_of: Callable[[dict[str, Any]], str | None] | None = None) -> list[Feature]:
    if not rows:
        return []
    geoms = crs.transform(np.array([r["geom"] for r in rows], dtype=object), crs.WGS84, metric)
    return [Feature(r["code"], g, int(r["households"] or 0), compound_of(r) if compound_of else None, r["name"])
            for r, g in zip(rows, geoms, strict=True)]


def load_context(conn: psycopg.Connection, unit_id: int) -> Context:
    """The unit, its compounds, buildings, small neighbourhoods and nearby roads, in metres."""
    unit = units.current(conn, unit_id)
    lon, lat = unit["geom"].centroid.coords[0]
    metric = crs.local_metric(lon, lat)
    outline = crs.transform(np.array([unit["geom"]], dtype=object), crs.WGS84, metric)[0]
    col = levels.PARENT_COLUMNS[unit["level"]]
    community_id = unit["unit_id"] if unit["level"] == "community" else unit["community_id"]
    compound_rows = units.intersecting(conn, "compound", community_id, unit["geom"])
    compound_code = {r["unit_id"]: r["code"] for r in compound_rows}

    def compound_of(r: dict[str, Any]) -> str | None:
        return compound_code.get(r["compound_id"])

    buildings = _features(units.children_of(conn, "building", col, unit_id), metric, compound_of)
    cells = _features(units.children_of(conn, "neighbourhood", col, unit_id), metric, compound_of)
    near = roads.roads_near(conn, unit["geom"])
    lines = list(crs.transform(np.array(near, dtype=object), crs.WGS84, metric)) if near else []
    return Context(unit, metric, outline, _features(compound_rows, metric), buildings, cells,
                   [g for r in lines for g in shapely.get_parts(r)])


def _into(unit_level: str, into: str) -> str:
    into = levels.parse_level(into)
    if into not in SPLITS.get(unit_level, ()):
        options = " or ".join(SPLITS.get(unit_level, ())) or "nothing"
        raise InvalidInput(f"a {unit_level} can be split into {options}, not into {into}")
    return into


def _outline_for(ctx: Context, into: str) -> Any:
    return neighbourhoods.residential_area(ctx.outline, ctx.compounds) if into == "neighbourhood" else ctx.outline


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------

def draw_split(conn: psycopg.Connection, unit_id: int, into: str, *, band: tuple[int, int] | None = None,
               parts: int | None = None, seed: int = 0, actor: str | Identity = "gridmap",
               progress: Progress = no_progress) -> dict[str, Any]:
    """Draw and store a split plan for one unit; returns the plan (see `get_plan`)."""
    ctx = load_context(conn, unit_id)
    unit = ctx.unit
    into = _into(unit["level"], into)
    band = band or levels.HOUSEHOLD_BANDS[into]
    if parts is not None and not 1 <= parts <= 500:
        raise InvalidInput("parts must be from 1 to 500")
    progress("partitioning", 0, 1)
    try:
        if into == "neighbourhood":
            attrs = db.building_attributes(conn, unit_id)
            result_parts, notes = neighbourhoods.split_by_compound(ctx.outline, ctx.compounds, ctx.buildings,
                                                                   band, seed, attrs)
        else:
            compounds, cells, buildings = ctx.compounds, ctx.cells, ctx.buildings
            if into == "community":
                grids = _features(units.children_of(conn, "grid", "community_id", unit_id), ctx.metric)
                comps = _features(units.children_of(conn, "compound", "community_id", unit_id), ctx.metric)
                compounds, cells, buildings = communities.grid_clusters(grids, comps), [], []
            result = search.split(ctx.outline, compounds, buildings, ctx.roads, band, parts=parts, seed=seed,
                                  cells=cells)
            result_parts, notes = [(p.geom, p.households, None) for p in result.parts], result.notes
    except Infeasible as exc:
        raise InvalidInput(f"{unit['level']} {unit['code']}: {exc}") from None
    progress("partitioning", 1, 1)
    replaces = [unit] if into == unit["level"] else db.children_of(conn, into, unit)
    proposed = naming.name_parts(unit, into, result_parts, replaces,
                                 lambda level, prefix: db.codes_in_use(conn, level, prefix))
    metrics = _metrics(conn, ctx, into, band, [p["geom_m"] for p in proposed], [p["households"] for p in proposed])
    kind = "split" if into == unit["level"] or not replaces else "redraw"
    return _store_plan(conn, kind, into, unit, replaces, proposed, ctx.metric, metrics, notes,
                       {"into": into, "band": list(band), "parts": parts, "seed": seed,
                        "parent_version": unit["version"]}, actor)


def _metrics(conn: psycopg.Connection, ctx: Context, into: str, band: tuple[int, int], geoms_m: list[Any],
             households: list[int]) -> dict[str, Any]:
    compounds = ctx.compounds if into != "neighbourhood" else []
    dwellings = None
    if into == "neighbourhood":
        # a small neighbourhood is a run of entrances: it may end between two entrances
        lines = neighbourhoods.entrance_lines(ctx.buildings, band[1],
                                              db.building_attributes(conn, ctx.unit["unit_id"]))
        dwellings = (ctx.buildings, lines)
    m = quality.measure(geoms_m, _outline_for(ctx, into), band, compounds, ctx.buildings, ctx.roads,
                        households=np.array(households), dwellings=dwellings)
    if into == "neighbourhood":
        m["buildings_split"] = []  # counted as cuts through dwellings instead
    m["targets_missed"] = quality.meets_targets(m)
    return m


def _to_wgs84(geoms_m: list[Any], metric: Any) -> list[Any]:
    geoms = crs.transform(np.array(geoms_m, dtype=object), metric, crs.WGS84)
    return [geometry.normalise(g, "grid", "planned unit") for g in geoms]


def _store_plan(conn: psycopg.Connection, kind: str, level: str, parent: dict[str, Any] | None,
                replaces: list[dict[str, Any]], proposed: list[dict[str, Any]], metric: Any,
                metrics: dict[str, Any], notes: list[str], params: dict[str, Any],
                actor: str | Identity) -> dict[str, Any]:
    with conn.transaction():
        parent_id = parent["unit_id"] if parent else None
        plan_id = db.insert(conn, kind, level, parent_id, params, metrics, notes, actor)
        db.insert_replaces(conn, plan_id, replaces)
        geoms = _to_wgs84([p["geom_m"] for p in proposed], metric) if metric is not None \
            else [p["geom"] for p in proposed]
        db.write_units(conn, plan_id, 1, proposed, geoms)
        audit.record(conn, actor, "plan.draw", "plan", [plan_id],
                     before={"units": [{"id": r["unit_id"], "version": r["version"]} for r in replaces]},
                     detail={"kind": kind, "level": level, "parent_id": parent_id, "parts": len(proposed)})
    return db.get(conn, plan_id)


def draw_merge(conn: psycopg.Connection, level: str, *, floor: int | None = None, ceiling: int | None = None,
               within: int | None = None, actor: str | Identity = "gridmap") -> dict[str, Any]:
    """Store a plan merging every unit below the floor into its best neighbour (geo/planning/merge.py)."""
    level = levels.parse_level(level)
    floor_used, ceiling_used = merge.limits(level, floor, ceiling)
    rows = units.units_rows(conn, level)
    if within is not None:
        rows = [r for r in rows if within in (r.get(c) for c in levels.CHAIN_COLUMNS)]
    groups, notes = merge.propose(rows, level, floor_used, ceiling_used)
    if not groups:
        raise InvalidInput(
            f"no {level} below the floor can be merged" + (f": {notes[0]}" if notes else " (none is below it)")
        )
    replaces, proposed, summary = [], [], []
    for g, grp in enumerate(groups, start=1):
        small, into = grp["small"], grp["into"]
        for r in (small, into):
            replaces.append({"grp": g, "unit_id": r["unit_id"], "version": r["version"], "code": r["code"]})
        geom = merge.merged_geometry(small["geom"], into["geom"], level, f"{level} {into['code']} + {small['code']}")
        pop = (small["population"] or 0) + (into["population"] or 0) if (small["population"] or into["population"]) \
            else None
        proposed.append({"grp": g, "seq": g, "code": into["code"], "name": into["name"],
                         "households": grp["households"], "population": pop,
                         "attributes": into["attributes"] or {}, "geom": geom})
        lon, lat = geom.centroid.coords[0]
        g_m = crs.transform(np.array([geom], dtype=object), crs.WGS84, crs.local_metric(lon, lat))[0]
        summary.append({"group": g, "small": small["code"], "into": into["code"],
                        "households": grp["households"], "households_moved": int(small["households"] or 0),
                        "shared_boundary_m": grp["shared_m"],
                        "polsby_popper": round(float(4 * np.pi * g_m.area / g_m.length ** 2), 4)})
    metrics = {"parts": len(proposed), "households": [p["households"] for p in proposed],
               "households_moved": sum(s["households_moved"] for s in summary), "merges": summary,
               "polsby_popper": [s["polsby_popper"] for s in summary], "targets_missed": []}
    params = {"floor": floor_used, "ceiling": ceiling, "within": within}
    return _store_plan(conn, "merge", level, None, replaces, proposed, None, metrics, notes, params, actor)


# ---------------------------------------------------------------------------
# Reading and comparing
# ---------------------------------------------------------------------------

get_plan = db.get
list_plans = db.all_plans


def plan_geojson(conn: psycopg.Connection, plan_id: int, revision: int | None = None) -> str:
    """A revision's proposed units (default: the latest) as GeoJSON, with Polsby-Popper."""
    plan = db.get(conn, plan_id)
    text = db.units_geojson(conn, plan_id, revision or plan["revision"], plan["level"])
    pp = plan["metrics"].get("polsby_popper") or []
    if pp:
        data = json.loads(text)
        for f in data["features"]:
            k = f["properties"]["seq"] - 1
            if 0 <= k < len(pp):
                f["properties"]["polsby_popper"] = pp[k]
        text = json.dumps(data, ensure_ascii=False)
    return text


def compare(conn: psycopg.Connection, plan_id: int) -> dict[str, Any]:
    """The plan against the boundaries it replaces: households that change unit, and for each
    proposed unit where its households come from."""
    plan = db.get(conn, plan_id)
    proposed = db.units(conn, plan_id, plan["revision"])
    old_ids = [r["unit_id"] for r in plan["replaces"]]
    moved_from = flows.flows([u["geom"] for u in proposed],
                             db.household_points(conn, levels.PARENT_COLUMNS.get(plan["level"]), old_ids))
    per_unit, moved, outside = flows.summary(proposed, moved_from, {r["unit_id"]: r["code"] for r in plan["replaces"]},
                                             plan["metrics"].get("polsby_popper") or [])
    return {"plan": plan_id, "revision": plan["revision"], "households_moved": moved,
            "households_outside_plan": outside, "replaced": [r["code"] for r in plan["replaces"]],
            "units": per_unit, "metrics": plan["metrics"]}


# ---------------------------------------------------------------------------
# Editing, committing, discarding
# ---------------------------------------------------------------------------

def _lock_draft(conn: psycopg.Connection, plan_id: int, expected_revision: int | None) -> dict[str, Any]:
    row = db.lock(conn, plan_id)
    if row["status"] != "draft":
        raise Conflict(f"plan {plan_id} is {row['status']}: only a draft plan can change")
    if expected_revision is not None and expected_revision != row["revision"]:
        raise Conflict(
            f"plan {plan_id} is at revision {row['revision']}, but the edit was made on revision "
            f"{expected_revision}: reload the plan and edit again"
        )
    return db.get(conn, plan_id)


def edit_plan(conn: psycopg.Connection, plan_id: int, features: list[dict[str, Any]], *,
              expected_revision: int | None, crs_text: str | None = None,
              actor: str | Identity = "gridmap") -> dict[str, Any]:
    """A new revision of the plan's units with the uploaded polygons (matched by code)."""
    if not isinstance(features, list) or not features:
        raise InvalidInput("upload a GeoJSON FeatureCollection with at least one feature")
    source = crs.parse(crs_text or "wgs84")
    area = settings.get().bounds
    with conn.transaction():
        plan = _lock_draft(conn, plan_id, expected_revision)
        proposed = db.units(conn, plan_id, plan["revision"])
        by_code = {u["code"]: u for u in proposed}
        for i, feat in enumerate(features):
            label = f"feature {i + 1}"
            if not isinstance(feat, dict) or not isinstance(feat.get("properties"), dict):
                raise InvalidInput(f"{label}: not a GeoJSON Feature with properties")
            code = str(feat["properties"].get("code") or "").strip()
            if code not in by_code:
                raise InvalidInput(f"{label}: code {code!r} is not a unit of plan {plan_id} "
                                   f"(its codes: {', '.join(sorted(by_code)[:5])}...)")
            try:
                geom = shapely.geometry.shape(feat.get("geometry"))
            except Exception:
                raise InvalidInput(f"{label} ({code}): geometry is not valid GeoJSON") from None
            geom = crs.to_wgs84(np.array([geom], dtype=object), source)[0]
            geometry.check_coordinates(np.array([geom], dtype=object), [f"{label} ({code})"], area)
            by_code[code]["geom"] = geometry.normalise(geom, plan["level"], f"{label} ({code})")
            if feat["properties"].get("name"):
                by_code[code]["name"] = str(feat["properties"]["name"])[:200]
        revision = plan["revision"] + 1
        metrics = _remeasure(conn, plan, proposed)
        for u, hh in zip(proposed, metrics["households"], strict=True):
            u["households"] = int(hh)
        db.write_units(conn, plan_id, revision, proposed, [u["geom"] for u in proposed])
        db.set_revision(conn, plan_id, revision, metrics, actor)
        audit.record(conn, actor, "plan.edit", "plan", [plan_id], before={"revision": plan["revision"]},
                     after={"revision": revision},
                     detail={"codes": [str(f["properties"].get("code")) for f in features]})
    return db.get(conn, plan_id)


def _remeasure(conn: psycopg.Connection, plan: dict[str, Any], proposed: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics of edited units, households counted again from the buildings."""
    parent_id = plan["parent_id"]
    if parent_id is not None and plan["kind"] != "merge":
        ctx = load_context(conn, parent_id)
        geoms_m = list(crs.transform(np.array([u["geom"] for u in proposed], dtype=object), crs.WGS84, ctx.metric))
        band = tuple(plan["params"].get("band") or levels.HOUSEHOLD_BANDS.get(plan["level"], (1, 10**9)))
        compounds = ctx.compounds if plan["level"] != "neighbourhood" else []
        hh = quality.households_of(np.array(geoms_m, dtype=object), compounds, ctx.buildings)
        if plan["level"] == "community":
            grids = _features(units.children_of(conn, "grid", "community_id", parent_id), ctx.metric)
            hh = quality.households_of(np.array(geoms_m, dtype=object), grids, [])
        return _metrics(conn, ctx, plan["level"], (int(band[0]), int(band[1])), geoms_m, list(hh))
    metrics = dict(plan["metrics"])
    metrics["households"] = [u["households"] for u in proposed]
    return metrics


def _check_tiling(conn: psycopg.Connection, plan: dict[str, Any], proposed: list[dict[str, Any]]) -> None:
    """Proposed units must cover what they replace (or the parent they redraw; for small
    neighbourhoods, the parent grid's residential area), no gaps, no overlaps."""
    geoms = np.array([u["geom"] for u in proposed], dtype=object)
    if plan["parent_id"] is not None and plan["kind"] != "merge":
        ctx = load_context(conn, plan["parent_id"])
        metric, target_m = ctx.metric, _outline_for(ctx, plan["level"])
    else:
        target = shapely.union_all(db.current_geoms(conn, [r["unit_id"] for r in plan["replaces"]]))
        lon, lat = target.centroid.coords[0]
        metric = crs.local_metric(lon, lat)
        target_m = crs.transform(np.array([target], dtype=object), crs.WGS84, metric)[0]
    found = tiling.problems(crs.transform(geoms, crs.WGS84, metric), target_m, metric)
    if found:
        raise InvalidInput(f"plan {plan['id']} " + " and ".join(found) + ": edit the plan and commit again")


def _check_current(conn: psycopg.Connection, plan: dict[str, Any]) -> None:
    """Conflict when a replaced unit, the parent, or the set of children changed since drawing."""
    plan_id = plan["id"]
    ids = [r["unit_id"] for r in plan["replaces"]]
    current = db.lock_versions(conn, ids + ([plan["parent_id"]] if plan["parent_id"] is not None else []))
    for r in plan["replaces"]:
        now = current.get(r["unit_id"])
        if now != r["version"]:
            state = "is retired" if now is None else f"is at version {now}"
            raise Conflict(
                f"{plan['level']} {r['code']} was at version {r['version']} when plan {plan_id} was drawn "
                f"and {state} now: draw the plan again"
            )
    if plan["parent_id"] is not None and plan["kind"] != "merge":
        want = plan["params"].get("parent_version")
        if want is not None and current.get(plan["parent_id"]) != want:
            raise Conflict(f"the unit plan {plan_id} redraws has changed since it was drawn: draw the plan again")
        # units added under the parent since the plan was drawn would be left behind
        parent = units.current(conn, plan["parent_id"])
        stored = set(ids)
        if plan["level"] != parent["level"]:
            stored = {r["unit_id"] for r in db.children_of(conn, plan["level"], parent)}
        if stored - set(ids):
            raise Conflict(f"{len(stored - set(ids))} {plan['level']} unit(s) were added since plan {plan_id} "
                           "was drawn: draw the plan again")


def commit_plan(conn: psycopg.Connection, plan_id: int, *, expected_revision: int | None = None,
                actor: str | Identity = "gridmap") -> dict[str, Any]:
    """Re-validate and apply the plan in one transaction; Conflict if the units changed since.
    The commit is recorded in the audit log in that transaction."""
    with conn.transaction():
        plan = _lock_draft(conn, plan_id, expected_revision)
        _check_current(conn, plan)
        proposed = db.units(conn, plan_id, plan["revision"])
        if plan["kind"] != "merge":
            _check_tiling(conn, plan, proposed)
        change_ids, created = [], []
        for grp in sorted({u["grp"] for u in proposed}):
            old = [r["unit_id"] for r in plan["replaces"] if r["grp"] == grp]
            new = [UnitInput(level=plan["level"], code=u["code"], name=u["name"], geom=u["geom"],
                             households=u["households"], population=u["population"],
                             attributes=u["attributes"] or {}, label=f"{plan['level']} {u['code']} (plan {plan_id})")
                   for u in proposed if u["grp"] == grp]
            if plan["kind"] == "merge":
                _check_tiling(conn, plan | {"replaces": [r for r in plan["replaces"] if r["grp"] == grp]},
                              [u for u in proposed if u["grp"] == grp])
            note = f"plan {plan_id}"
            if old:
                summary = boundaries.replace_units(conn, old, new, kind=plan["kind"], actor=actor, note=note)
            else:
                summary = boundaries.write_units(conn, plan["level"], new, kind="split", actor=actor, note=note)
            change_ids.append(summary.change_id)
            created.extend(summary.created)
        db.close(conn, plan_id, "committed", actor, change_ids[-1] if change_ids else None)
        audit.record(conn, actor, "plan.commit", "plan", [plan_id], change_id=change_ids[-1] if change_ids else None,
                     before={"status": "draft", "revision": plan["revision"],
                             "units": [{"id": r["unit_id"], "code": r["code"], "version": r["version"]}
                                       for r in plan["replaces"]]},
                     after={"status": "committed", "units": created, "change_ids": change_ids},
                     detail={"kind": plan["kind"], "level": plan["level"]})
    return db.get(conn, plan_id) | {"change_ids": change_ids}


def discard_plan(conn: psycopg.Connection, plan_id: int, *, actor: str | Identity = "gridmap") -> dict[str, Any]:
    with conn.transaction():
        plan = _lock_draft(conn, plan_id, None)
        db.close(conn, plan_id, "discarded", actor)
        audit.record(conn, actor, "plan.discard", "plan", [plan_id], before={"status": "draft"},
                     after={"status": "discarded"}, detail={"revision": plan["revision"]})
    return db.get(conn, plan_id)
