"""Plans: stored proposals to split or merge units, drawn, compared, edited, committed.

A plan records the units it replaces at the versions it was drawn from. Commit checks
those versions are still current (else Conflict), re-checks that the proposed units tile
what they replace (no gaps, no overlaps) and then, in one transaction, closes the old
versions and opens the new units with lineage (geo/usecases/boundaries.py). Nothing is
overwritten: an edit adds a revision of the proposed units (geo/usecases/plan_edits.py); a
committed or discarded plan stays on record. Every step writes its audit row in its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import shapely

from geo.coords import crs
from geo.db import audit, roads, unit_writes, units
from geo.db import plans as db
from geo.errors import Conflict, InvalidInput, NotFound
from geo.planning import checks, communities, merge, naming, neighbourhoods, quality, search, tiling
from geo.planning import compare as flows
from geo.planning.atoms import Feature, Infeasible
from geo.security.identity import Identity
from geo.units import containment, geometry, levels
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
    if into == unit["level"] and len(result_parts) < 2:
        raise InvalidInput(f"{unit['level']} {unit['code']} ({unit['households']} households) comes out as one part "
                           f"in the band {band[0]}-{band[1]}: there is nothing to split (give parts=N to force one)")
    col = levels.PARENT_COLUMNS[unit["level"]]
    replaces = [unit] if into == unit["level"] else db.children_of(conn, into, unit)
    old = [(unit["code"], ctx.outline)] if into == unit["level"] else \
        [(f.code, f.geom) for f in _features(units.children_of(conn, into, col, unit_id), ctx.metric)]
    labels: list[str] | None = None
    attributes: list[dict[str, Any]] = [{} for _ in result_parts]
    if into == "neighbourhood":  # named after their buildings; people counted in the buildings they hold
        labels, attributes, shares = neighbourhoods.describe(result_parts, ctx.buildings, ctx.compounds, band[1],
                                                             attrs, db.populations(conn, "building", col, unit_id))
    else:  # people counted in the small neighbourhoods they hold (the buildings where none has a figure)
        cell_pop = db.populations(conn, "neighbourhood", col, unit_id)
        building_pop = db.populations(conn, "building", col, unit_id)
        sources = [(c.geom, cell_pop[c.code]) for c in ctx.cells if cell_pop.get(c.code) is not None] or \
            [(b.geom, building_pop.get(b.code)) for b in ctx.buildings]
        shares = naming.by_area([p[0] for p in result_parts], sources)
    proposed = naming.name_parts(unit, into, result_parts, old,
                                 lambda level, prefix: db.codes_in_use(conn, level, prefix), labels)
    populations = naming.apportion(shares)
    for p in proposed:
        p["population"], p["attributes"] = populations[p["part"]], attributes[p["part"]]
    metrics = _metrics(conn, ctx, into, band, [p["geom_m"] for p in proposed], [p["households"] for p in proposed],
                       [p["code"] for p in proposed])
    kind = "split" if into == unit["level"] or not replaces else "redraw"
    return _store_plan(conn, kind, into, unit, replaces, proposed, ctx.metric, metrics, notes,
                       {"into": into, "band": list(band), "parts": parts, "seed": seed,
                        "parent_version": unit["version"]}, actor)


def _metrics(conn: psycopg.Connection, ctx: Context, into: str, band: tuple[int, int], geoms_m: list[Any],
             households: list[int], codes: list[str] | None = None) -> dict[str, Any]:
    """The plan's figures, the targets it misses and what commit would refuse (`commit_problems`,
    found by the checks commit runs: see `_contained`), for parts of `ctx`'s unit in metres."""
    compounds = ctx.compounds if into != "neighbourhood" else []
    dwellings = None
    if into == "neighbourhood":
        # a small neighbourhood is a run of entrances: it may end between two entrances
        lines = neighbourhoods.entrance_lines(ctx.buildings, band[1],
                                              db.building_attributes(conn, ctx.unit["unit_id"]))
        dwellings = (ctx.buildings, lines)
    target = _outline_for(ctx, into)
    m = quality.measure(geoms_m, target, band, compounds, ctx.buildings, ctx.roads,
                        households=np.array(households), dwellings=dwellings)
    if into == "neighbourhood":
        m["buildings_split"] = []  # counted as cuts through dwellings instead
    parts = np.array(geoms_m, dtype=object)
    beneath = {"building": ctx.buildings, "neighbourhood": ctx.cells, "compound": ctx.compounds}
    if into == "community":
        beneath["grid"] = _features(units.children_of(conn, "grid", "community_id", ctx.unit["unit_id"]), ctx.metric)
    # as `_check_tiling` checks them at commit
    m["commit_problems"] = ["the plan " + p for p in tiling.problems(parts, target, ctx.metric)] + \
        _contained(conn, into, parts, ctx.metric, codes, beneath)
    m["targets_missed"] = quality.meets_targets(m)
    return m


def _contained(conn: psycopg.Connection, level: str, parts_m: np.ndarray, metric: Any, codes: list[str] | None,
               beneath: dict[str, list[Feature]]) -> list[str]:
    """What the containment checks commit runs (geo/usecases/boundaries.py `write_units`, with the
    rules of geo/units/containment.py) would refuse: a part outside its parents or whose code
    names another parent, and a unit beneath (of `beneath`, by level) outside every part."""
    n = len(parts_m)
    labels = [f"{level} {c}" for c in codes] if codes else [f"{level} part {k + 1}" for k in range(n)]
    bbox = tuple(shapely.total_bounds(crs.transform(parts_m, metric, crs.WGS84)))
    parents = []
    for p_level in levels.PARENTS[level]:
        rows = unit_writes.parents_near(conn, p_level, bbox)
        geoms = np.array([r["geom"] for r in rows], dtype=object)
        parents.append(containment.Parents.of(
            p_level, [r["unit_id"] for r in rows], [r["code"] for r in rows],
            [{c: r[c] for c in levels.CHAIN_COLUMNS} for r in rows],
            crs.transform(geoms, crs.WGS84, metric) if rows else geoms))
    found = checks.outside_parents(level, parts_m, labels, codes, parents)
    for child in levels.children(level):
        feats = beneath.get(child) or []
        found += checks.children_outside(level, parts_m, codes or labels, child,
                                         np.array([f.geom for f in feats], dtype=object),
                                         [f"{child} {f.code}" for f in feats])
    return found


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
        check_commit(conn, plan_id)
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
    replaces: list[dict[str, Any]] = []
    proposed: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for grp in groups:
        small, into = grp["small"], grp["into"]
        geom = _merged(small["geom"], into["geom"], level, f"{level} {into['code']} + {small['code']}")
        if geom is None:
            notes.append(f"{level} {small['code']} is left alone: merged into {into['code']}, the result would not "
                         "tile the two units exactly (their shared boundary is too ragged); merge them by hand")
            continue
        g = len(proposed) + 1
        for r in (small, into):
            replaces.append({"grp": g, "unit_id": r["unit_id"], "version": r["version"], "code": r["code"]})
        pop = naming.apportion([[(1.0, small["population"]), (1.0, into["population"])]])[0]
        proposed.append({"grp": g, "seq": g, "code": into["code"], "name": into["name"],
                         "households": grp["households"], "population": pop,
                         "attributes": into["attributes"] or {}, "geom": geom})
        lon, lat = geom.centroid.coords[0]
        g_m = crs.transform(np.array([geom], dtype=object), crs.WGS84, crs.local_metric(lon, lat))[0]
        summary.append({"group": g, "small": small["code"], "into": into["code"],
                        "households": grp["households"], "households_moved": int(small["households"] or 0),
                        "shared_boundary_m": grp["shared_m"],
                        "polsby_popper": round(float(4 * np.pi * g_m.area / g_m.length ** 2), 4)})
    if not proposed:
        raise InvalidInput(f"no {level} below the floor can be merged: {notes[0]}")
    metrics = {"parts": len(proposed), "households": [p["households"] for p in proposed],
               "households_moved": sum(s["households_moved"] for s in summary), "merges": summary,
               "polsby_popper": [s["polsby_popper"] for s in summary], "targets_missed": []}
    params = {"floor": floor_used, "ceiling": ceiling, "within": within}
    return _store_plan(conn, "merge", level, None, replaces, proposed, None, metrics, notes, params, actor)


def _merged(small: Any, into: Any, level: str, label: str) -> Any:
    """The merged unit, as geo/planning/merge.py draws it, or else the plain union of the two,
    whichever is one piece and tiles the two units as commit checks it (geo/planning/tiling.py),
    preferring one that stays valid in metres (no hairline spike); None if neither does."""
    lon, lat = into.centroid.coords[0]
    metric = crs.local_metric(lon, lat)
    target_m = shapely.union_all(crs.transform(np.array([small, into], dtype=object), crs.WGS84, metric))
    drawn = merge.merged_geometry(small, into, level, label, merge.degrees(merge.SHARE_TOLERANCE_M))

    def pieces(g: Any) -> int:  # as /validate counts them (not_contiguous)
        return sum(1 for p in shapely.get_parts(g) if p.area >= checks.MIN_AREA_M2)

    fitting = []
    for candidate in (drawn, geometry.normalise(shapely.union_all([small, into]), level, label)):
        parts_m = crs.transform(np.array([candidate], dtype=object), crs.WGS84, metric)
        if pieces(parts_m[0]) == 1 and not tiling.problems(parts_m, target_m, metric, [label]):
            if parts_m[0].is_valid:  # no spike whose sides cross once projected
                return candidate
            fitting.append(candidate)
    return fitting[0] if fitting else None


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


def _compared(conn: psycopg.Connection, plan: dict[str, Any]) -> dict[str, Any]:
    """The plan's latest revision against the current boundaries it replaces."""
    proposed = db.units(conn, plan["id"], plan["revision"])
    old_ids = [r["unit_id"] for r in plan["replaces"]]
    moved_from = flows.flows([u["geom"] for u in proposed],
                             db.household_points(conn, levels.PARENT_COLUMNS.get(plan["level"]), old_ids))
    per_unit, moved, outside = flows.summary(proposed, moved_from, {r["unit_id"]: r["code"] for r in plan["replaces"]},
                                             plan["metrics"].get("polsby_popper") or [])
    return {"plan": plan["id"], "revision": plan["revision"], "households_moved": moved,
            "households_outside_plan": outside, "replaced": [r["code"] for r in plan["replaces"]],
            "units": per_unit}


def compare(conn: psycopg.Connection, plan_id: int) -> dict[str, Any]:
    """The plan against the boundaries it replaces: households that change unit, for each
    proposed unit where its households come from, and every code that would follow its unit
    to a new parent. A draft is compared with the current boundaries (and its commit tried in
    a savepoint: `preview`); a committed plan answers with its record, as it stood at commit."""
    plan = db.get(conn, plan_id)
    if plan["status"] == "committed" and plan.get("record"):
        return dict(plan["record"]) | {"metrics": plan["metrics"], "as_committed": True}
    result = _compared(conn, plan) | {"metrics": plan["metrics"], "as_committed": False}
    if plan["status"] == "draft":
        result |= preview(conn, plan)
    return result


# ---------------------------------------------------------------------------
# Editing, committing, discarding
# ---------------------------------------------------------------------------

def _lock_draft(conn: psycopg.Connection, plan_id: int, expected_revision: int | None,
                doing: str = "commit") -> dict[str, Any]:
    """The draft plan, locked; Conflict when it is not a draft, or not at `expected_revision`
    (the message speaks of what the caller is `doing`: "commit" or "edit")."""
    row = db.lock(conn, plan_id)
    if row["status"] != "draft":
        raise Conflict(f"plan {plan_id} is {row['status']}: only a draft plan can change")
    if expected_revision is not None and expected_revision != row["revision"]:
        now = row["revision"]
        if doing == "edit":
            raise Conflict(f"plan {plan_id} is at revision {now}, but the edit was made on revision "
                           f"{expected_revision}: reload revision {now} and make the edit again")
        raise Conflict(f"plan {plan_id} is at revision {now}, but the {doing} was asked for revision "
                       f"{expected_revision}: review revision {now} and {doing} it")
    return db.get(conn, plan_id)


def _tiling_target(conn: psycopg.Connection, plan: dict[str, Any]) -> tuple[Any, Any]:
    """A metric CRS and what the plan's units must tile in it: the parent they redraw (for small
    neighbourhoods, the parent grid's residential area), or the units they replace."""
    stale = Conflict(f"the units plan {plan['id']} redraws changed since it was drawn (some are retired): "
                     "draw the plan again")
    if plan["parent_id"] is not None and plan["kind"] != "merge":
        try:
            ctx = load_context(conn, plan["parent_id"])
        except NotFound:
            raise stale from None
        return ctx.metric, _outline_for(ctx, plan["level"])
    geoms = db.current_geoms(conn, [r["unit_id"] for r in plan["replaces"]])
    if len(geoms) < len({r["unit_id"] for r in plan["replaces"]}):
        raise stale
    target = shapely.union_all(geoms)
    lon, lat = target.centroid.coords[0]
    metric = crs.local_metric(lon, lat)
    return metric, crs.transform(np.array([target], dtype=object), crs.WGS84, metric)[0]


def _check_tiling(conn: psycopg.Connection, plan: dict[str, Any], proposed: list[dict[str, Any]], *,
                  refuse: bool = True) -> list[str]:
    """Proposed units must cover what they replace (`_tiling_target`), no gaps, no overlaps:
    InvalidInput when they do not, or (`refuse=False`) what is wrong, for a plan to report."""
    geoms = np.array([u["geom"] for u in proposed], dtype=object)
    metric, target_m = _tiling_target(conn, plan)
    found = tiling.problems(crs.transform(geoms, crs.WGS84, metric), target_m, metric)
    if found and refuse:
        raise InvalidInput(f"plan {plan['id']} " + " and ".join(found) + ": edit the plan and commit again")
    return found


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


def _apply(conn: psycopg.Connection, plan: dict[str, Any], proposed: list[dict[str, Any]],
           actor: str | Identity) -> dict[str, Any]:
    """Apply the plan's units, group by group, through the redraw pipeline; what it did."""
    done: dict[str, Any] = {"change_ids": [], "created": [], "code_changes": [],
                            "workers": {"moved": [], "unplaced": []}, "incidents_moved": 0}
    if plan["kind"] != "merge":
        _check_tiling(conn, plan, proposed)
    for grp in sorted({u["grp"] for u in proposed}):
        old = [r["unit_id"] for r in plan["replaces"] if r["grp"] == grp]
        new = [UnitInput(level=plan["level"], code=u["code"], name=u["name"], geom=u["geom"],
                         households=u["households"], population=u["population"],
                         attributes=u["attributes"] or {}, label=f"{plan['level']} {u['code']} (plan {plan['id']})")
               for u in proposed if u["grp"] == grp]
        if plan["kind"] == "merge":
            _check_tiling(conn, plan | {"replaces": [r for r in plan["replaces"] if r["grp"] == grp]},
                          [u for u in proposed if u["grp"] == grp])
        note = f"plan {plan['id']}"
        if old:
            summary = boundaries.replace_units(conn, old, new, kind=plan["kind"], actor=actor, note=note)
        else:
            summary = boundaries.write_units(conn, plan["level"], new, kind="split", actor=actor, note=note)
        done["change_ids"].append(summary.change_id)
        done["created"].extend(summary.created)
        done["code_changes"].extend(summary.recoded)
        followed = summary.followed or {}
        for key in ("moved", "unplaced"):
            done["workers"][key].extend((followed.get("workers") or {}).get(key, []))
        done["incidents_moved"] += int(followed.get("incidents_moved") or 0)
    return done


class _DryRun(Exception):
    """Raised to roll back a commit tried only to see what it would do."""


def preview(conn: psycopg.Connection, plan: dict[str, Any]) -> dict[str, Any]:
    """What committing the plan now would do (codes that follow, workers and incidents moved),
    found by committing it in a savepoint that is then rolled back; or the problem that would
    stop the commit (`problem`)."""
    outcome: dict[str, Any] = {}
    try:
        with conn.transaction():
            _check_current(conn, plan)
            outcome = _apply(conn, plan, db.units(conn, plan["id"], plan["revision"]), "preview")
            raise _DryRun
    except _DryRun:
        pass
    except (InvalidInput, Conflict) as exc:
        return {"problem": str(exc)}
    return {k: outcome[k] for k in ("code_changes", "workers", "incidents_moved")}


def check_commit(conn: psycopg.Connection, plan_id: int) -> None:
    """Try the commit of the plan's latest revision (rolled back: `preview`) and add what would
    stop it to the plan's `commit_problems` and `targets_missed`, so that what a plan reports is
    what commit checks: a plan that misses no target commits."""
    plan = db.get(conn, plan_id)
    problem = preview(conn, plan).get("problem")
    m = dict(plan["metrics"] or {})
    known = m.get("commit_problems") or []
    if problem is None or any(p.removeprefix("the plan ") in problem or p.split(": ", 1)[-1] in problem
                              for p in known):
        return  # nothing, or what the plan's own checks found already
    m["commit_problems"] = [*(m.get("commit_problems") or []), problem]
    m["targets_missed"] = [t for t in m.get("targets_missed") or [] if not t.startswith("commit would be refused")]
    m["targets_missed"] += quality.refused(m["commit_problems"])
    db.set_revision(conn, plan_id, plan["revision"], m, plan["actor"])


def commit_plan(conn: psycopg.Connection, plan_id: int, *, expected_revision: int | None = None,
                actor: str | Identity = "gridmap") -> dict[str, Any]:
    """Re-validate and apply the plan in one transaction; Conflict if the units changed since.
    The plan keeps a record of what it did (its comparison with the boundaries it replaced, as
    it stood at commit, and the codes, workers and incidents that followed), and the commit
    is recorded in the audit log, in that transaction."""
    with conn.transaction():
        plan = _lock_draft(conn, plan_id, expected_revision)
        _check_current(conn, plan)
        record = _compared(conn, plan)
        done = _apply(conn, plan, db.units(conn, plan_id, plan["revision"]), actor)
        change_ids = done["change_ids"]
        record |= {k: done[k] for k in ("code_changes", "workers", "incidents_moved")}
        db.close(conn, plan_id, "committed", actor, change_ids[-1] if change_ids else None, record)
        audit.record(conn, actor, "plan.commit", "plan", [plan_id], change_id=change_ids[-1] if change_ids else None,
                     before={"status": "draft", "revision": plan["revision"],
                             "units": [{"id": r["unit_id"], "code": r["code"], "version": r["version"]}
                                       for r in plan["replaces"]]},
                     after={"status": "committed", "units": done["created"], "change_ids": change_ids,
                            "code_changes": len(done["code_changes"])},
                     detail={"kind": plan["kind"], "level": plan["level"],
                             "workers_moved": len(done["workers"]["moved"]),
                             "workers_unplaced": len(done["workers"]["unplaced"])})
    return db.get(conn, plan_id) | {"change_ids": change_ids, "code_changes": done["code_changes"],
                                    "workers": done["workers"], "incidents_moved": done["incidents_moved"]}


def discard_plan(conn: psycopg.Connection, plan_id: int, *, actor: str | Identity = "gridmap") -> dict[str, Any]:
    with conn.transaction():
        plan = _lock_draft(conn, plan_id, None)
        db.close(conn, plan_id, "discarded", actor)
        audit.record(conn, actor, "plan.discard", "plan", [plan_id], before={"status": "draft"},
                     after={"status": "discarded"}, detail={"revision": plan["revision"]})
    return db.get(conn, plan_id)
