"""Every change to boundaries goes through here: the redraw pipeline.

`write_units` creates or changes units of one level: it checks codes and geometry, finds
each unit's parents (by code when given, else by geometry), checks the unit lies inside
them (0.5 m tolerance) and that existing children still lie inside a changed unit, then,
in the caller's transaction, opens version 1 of new units and closes the current version
of changed ones while opening the next. `replace_units` retires units and opens new ones
in their place (a split, a merge, a redraw) with lineage, and moves the descendants of the
retired units to the new ones. Codes are identities that follow the chain: a unit that comes
to lie under another parent takes a code under it (geo/units/codes.py `rehome`), in the same
change set, as a new version of the same unit; its old code stays readable as of before.
Nothing is overwritten: geo/db/units.py reads any past state.

After a change, `follow` does what must move with the boundaries, in the same transaction:
workers on retired units move to their successors, and open incidents in closed units are
re-assigned to the units now holding them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import pyproj
import shapely

from geo import settings
from geo.coords import crs
from geo.db import unit_writes, units
from geo.db.rows import transaction_time
from geo.errors import Conflict, InvalidInput
from geo.planning import checks
from geo.security.identity import Identity
from geo.units import codes, containment, levels, model
from geo.units.levels import CHAIN_COLUMNS
from geo.units.model import Progress, UnitInput, WriteSummary, no_progress
from geo.usecases import incidents, workers

REPLACEMENTS = ("split", "merge", "redraw")


def _parents(conn: psycopg.Connection, level: str, bbox: tuple[float, ...],
             metric: pyproj.CRS) -> containment.Parents:
    rows = unit_writes.parents_near(conn, level, bbox)
    geoms = np.array([r["geom"] for r in rows], dtype=object)
    geoms_m = crs.transform(geoms, crs.WGS84, metric) if rows else geoms
    return containment.Parents.of(level, [r["unit_id"] for r in rows], [r["code"] for r in rows],
                                  [{c: r[c] for c in CHAIN_COLUMNS} for r in rows], geoms_m)


def _find_parents(conn: psycopg.Connection, level: str, units: list[UnitInput], geoms_m: np.ndarray,
                  metric: pyproj.CRS, bbox: tuple[float, ...], check_codes: bool,
                  progress: Progress) -> list[dict[str, int | None]]:
    """Each unit's chain of parent ids, every parent found and checked. A unit whose code
    follows its parent (`follow_parent`) takes its code under the parent it is found in."""
    n = len(units)
    labels = [u.label for u in units]
    chains: list[dict[str, int | None]] = [dict.fromkeys(CHAIN_COLUMNS) for _ in range(n)]
    for p_level in levels.PARENTS[level]:
        progress(f"finding {p_level}s", 0, n)
        parents = _parents(conn, p_level, bbox, metric)
        if not len(parents.ids):
            if not unit_writes.any_stored(conn, p_level):
                raise InvalidInput(
                    f"no {p_level} is stored: load the {p_level} level first "
                    f"(a {level} must lie inside its {p_level})"
                )
            more = f" (and {n - 1} more)" if n > 1 else ""
            raise InvalidInput(
                f"{labels[0]}: lies outside every stored {p_level}{more}; "
                f"a {level} must lie inside its {p_level}"
            )
        explicit = [u.parent_codes.get(p_level) for u in units]
        match = containment.match_parents(geoms_m, parents, explicit, labels, level)
        if p_level == codes.code_parent_level(level):
            _follow_parents(conn, level, units, [parents.codes[j] for j in match.tolist()])
        containment.link_chains(level, [u.code for u in units], labels, parents, match, chains, check_codes)
        progress(f"finding {p_level}s", n, n)
    return chains


def _follow_parents(conn: psycopg.Connection, level: str, units: list[UnitInput], parent_codes: list[str]) -> None:
    """Give each unit that follows its parent the code under the parent it was found in."""
    moving = [i for i, u in enumerate(units)
              if u.follow_parent and codes.implied_parent(level, u.code, codes.code_parent_level(level) or "")
              not in (None, parent_codes[i])]
    if not moving:
        return
    taken = unit_writes.codes_taken(conn, level, sorted({codes.parent_part(level, parent_codes[i]) for i in moving}))
    for i in sorted(moving, key=lambda k: units[k].code):
        units[i].code = codes.rehome(level, units[i].code, parent_codes[i], taken, units[i].unit_id or 0)


def _check_children_inside(conn: psycopg.Connection, level: str, unit_ids: list[int], geoms_m: np.ndarray,
                           labels: list[str], metric: pyproj.CRS) -> None:
    position = {uid: k for k, uid in enumerate(unit_ids)}
    for child_level in levels.children(level):
        rows = units.under(conn, child_level, levels.PARENT_COLUMNS[level], unit_ids)
        if not rows:
            continue
        children_m = crs.transform(np.array([r["geom"] for r in rows], dtype=object), crs.WGS84, metric)
        containment.check_children_inside(level, child_level, geoms_m, labels,
                                          [position[r["parent_id"]] for r in rows],
                                          [r["code"] for r in rows], children_m)


def write_units(
    conn: psycopg.Connection,
    level: str,
    units: list[UnitInput],
    *,
    kind: str = "load",
    actor: str | Identity = "gridmap",
    note: str | None = None,
    check_codes: bool = True,
    progress: Progress = no_progress,
    change_id: int | None = None,
    valid_from: datetime | None = None,
    nested: bool = False,
) -> WriteSummary:
    """Create or change the given units at `level`, in the caller's transaction.

    A changed unit that comes to lie under another parent, or takes another code, carries its
    descendants with it: they are found again in the units now holding them, and their codes
    follow; then what follows a change (`follow`) runs. A `nested` write is one step of a
    larger change that does both itself. `valid_from` backdates new units (for a first load of boundaries that
    were already in force); it is refused when the write would change stored units."""
    level = levels.parse_level(level)
    if not units:
        return WriteSummary(change_id)
    model.prepare(units, level, settings.get().bounds)
    labels = [u.label for u in units]
    geoms = np.array([u.geom for u in units], dtype=object)
    geoms_m, metric = crs.to_metric(geoms)
    chains = _find_parents(conn, level, units, geoms_m, metric, tuple(shapely.total_bounds(geoms)),
                           check_codes, progress)

    by_code = unit_writes.lock_current(conn, level, [u.code for u in units if u.unit_id is None])
    by_id = unit_writes.lock_current_ids(conn, [u.unit_id for u in units if u.unit_id is not None])
    if gone := [u.label for u in units if u.unit_id is not None and u.unit_id not in by_id]:
        raise Conflict(f"{gone[0]} is not current any more: reload and try again")
    existing = [by_id[u.unit_id] if u.unit_id is not None else by_code.get(u.code) for u in units]
    summary = WriteSummary(change_id)
    new_idx, changed_idx = _new_and_changed(units, existing, chains, summary)
    if not new_idx and not changed_idx:
        return summary
    stored = {i: row for i in changed_idx if (row := existing[i]) is not None}

    if changed_idx:  # a changed unit must still hold its children
        _check_children_inside(conn, level, [stored[i]["unit_id"] for i in changed_idx],
                               geoms_m[changed_idx], [labels[i] for i in changed_idx], metric)
    if summary.change_id is None:
        summary.change_id = unit_writes.open_change_set(conn, kind, actor, note)
    now = _effective_from(transaction_time(conn), valid_from, bool(changed_idx))

    unit_ids = [0] * len(units)
    versions = [1] * len(units)
    if new_idx:
        for i, uid in zip(new_idx, unit_writes.new_units(conn, level, len(new_idx), now), strict=True):
            unit_ids[i] = uid
        summary.created = [unit_ids[i] for i in new_idx]
    if changed_idx:
        for i in changed_idx:
            row = stored[i]
            unit_ids[i] = row["unit_id"]
            versions[i] = row["version"] + 1
            if row["code"] != units[i].code:
                summary.recoded.append({"level": level, "unit_id": row["unit_id"], "from": row["code"],
                                        "to": units[i].code})
        summary.changed = [unit_ids[i] for i in changed_idx]
        unit_writes.close_versions(conn, summary.changed, now, summary.change_id)
    write = new_idx + changed_idx
    unit_writes.open_versions(conn, level, [units[i] for i in write], [unit_ids[i] for i in write],
                              [versions[i] for i in write], [chains[i] for i in write], now,
                              summary.change_id, progress)
    if changed_idx:
        moved = [stored[i]["unit_id"] for i in changed_idx
                 if stored[i]["code"] != units[i].code
                 or {c: stored[i][c] for c in CHAIN_COLUMNS} != chains[i]]
        if not nested:
            if moved:
                _carry_descendants(conn, level, moved, summary, actor)
            summary.followed = follow(conn, summary.change_id, actor)
    return summary


def _new_and_changed(units: list[UnitInput], existing: list[dict[str, Any] | None],
                     chains: list[dict[str, int | None]], summary: WriteSummary) -> tuple[list[int], list[int]]:
    """The positions of the units that are new and of those that change a stored unit; a stored
    unit that stays as it is goes to `summary.unchanged`. A unit that keeps its stored households
    or population takes them over here."""
    new_idx, changed_idx = [], []
    for i, unit in enumerate(units):
        row = existing[i]
        if row is None:
            new_idx.append(i)
            continue
        if "households" in unit.keep:
            unit.households = row["households"]
        if "population" in unit.keep:
            unit.population = row["population"]
        same = (
            row["code"] == unit.code and row["name"] == unit.name and row["households"] == model.count(unit.households)
            and row["population"] == model.count(unit.population) and row["attributes"] == unit.attributes
            and {c: row[c] for c in CHAIN_COLUMNS} == chains[i] and model.same_shape(row["geom"], unit.geom)
        )
        if same:
            summary.unchanged.append(row["unit_id"])
        else:
            changed_idx.append(i)
    return new_idx, changed_idx


def _effective_from(now: datetime, valid_from: datetime | None, changes_stored: bool) -> datetime:
    """When the written versions take effect: the transaction's time, or `valid_from` for a
    backdated load (which only creates units, and not in the future)."""
    if valid_from is None:
        return now
    if changes_stored:
        raise InvalidInput("a backdated load can only create units, and some of these are stored already")
    if valid_from > now:
        raise InvalidInput("valid_from is in the future")
    return valid_from


def replace_units(
    conn: psycopg.Connection,
    old_unit_ids: Iterable[int],
    new_units: list[UnitInput],
    *,
    kind: str,
    actor: str | Identity = "gridmap",
    note: str | None = None,
) -> WriteSummary:
    """Retire units and open new ones in their place (a split or a merge), recording lineage.

    Descendants of the retired units are re-assigned, by geometry, to the new units
    (each gets a new version); anything that no longer fits is refused.
    """
    if kind not in REPLACEMENTS:
        raise InvalidInput(f"unknown replacement kind {kind!r}")
    old_ids = sorted(set(old_unit_ids))
    rows = unit_writes.lock_units(conn, old_ids)
    found = {r["unit_id"] for r in rows}
    if missing := [u for u in old_ids if u not in found]:
        raise Conflict(f"units {missing} are not current any more: reload and plan again")
    level_set = {r["level"] for r in rows}
    if len(level_set) != 1 or any(u.level != rows[0]["level"] for u in new_units):
        raise InvalidInput("a split or merge replaces units of one level with units of the same level")
    level = rows[0]["level"]
    # a code once given is never given to other land: only to a unit these replace, or one
    # they came from (the code a split's largest part kept, passing on in a merge)
    own_line = set(old_ids) | unit_writes.ancestors(conn, old_ids)
    for unit in new_units:
        if others := unit_writes.holders_of_code(conn, level, unit.code) - own_line:
            raise Conflict(f"{level} code {unit.code} belongs to unit {min(others)} (current or retired) since "
                           "this change was drawn: draw it again so the new unit takes a free code")
    change_id = unit_writes.open_change_set(conn, kind, actor, note)
    retired_codes = {r["code"] for r in rows}
    unit_writes.close_versions(conn, old_ids, None, change_id)
    for unit in new_units:  # new units may reuse a retired code only as a new unit
        if unit.code in retired_codes:
            unit.label = unit.label or f"{level} {unit.code}"
    summary = write_units(conn, level, new_units, kind=kind, actor=actor, note=note, change_id=change_id)
    unit_writes.record_lineage(conn, change_id, kind, old_ids, summary.created)
    _carry_descendants(conn, level, old_ids, summary, actor)
    _check_still_tiled(conn, level, summary.created)
    summary.followed = follow(conn, change_id, actor)
    return summary


def _check_still_tiled(conn: psycopg.Connection, level: str, unit_ids: list[int]) -> None:
    """The levels that tile `level` (grids tile a community) must still cover each new unit:
    refuse what /validate would report as a gap (geo/planning/checks.py, the same measure)."""
    tilers = [lv.name for lv in levels.TABLE if lv.tiles == level]
    if not tilers or not unit_ids:
        return
    parents = list(unit_writes.lock_current_ids(conn, unit_ids).values())
    for child_level in tilers:
        rows = units.under(conn, child_level, levels.PARENT_COLUMNS[level], unit_ids)
        geoms = np.array([r["geom"] for r in rows] + [p["geom"] for p in parents], dtype=object)
        geoms_m, metric = crs.to_metric(geoms)
        for k, parent in enumerate(parents):
            idx = [i for i, r in enumerate(rows) if r["parent_id"] == parent["unit_id"]]
            found = checks.siblings(child_level, rows, geoms_m[:len(rows)], metric, idx,
                                    parent | {"level": level}, geoms_m[len(rows) + k])
            if gaps := [f["properties"]["message"] for f in found if f["properties"]["problem"] == "gap"]:
                raise InvalidInput(f"{gaps[0]}: the {child_level} units beneath would no longer cover the new "
                                   f"{level}; move their boundaries with it ({len(gaps)} gap(s) in all)")


def _carry_descendants(conn: psycopg.Connection, level: str, parent_ids: list[int], summary: WriteSummary,
                       actor: str | Identity) -> None:
    """The descendants of units that were retired, re-parented or recoded are found again, by
    geometry, in the current units now holding them (each gets a new version, in the change
    set of `summary`), and their codes follow their new parents; anything that no longer fits
    is refused. Levels go outermost first, so a small neighbourhood's code follows its
    compound's new code."""
    col = levels.PARENT_COLUMNS.get(level)
    if col is None:
        return
    for child_level in levels.LEVELS[levels.LEVELS.index(level) + 1:]:
        if level not in levels.ancestors(child_level):
            continue
        rows = units.under(conn, child_level, col, parent_ids)
        if not rows:
            continue
        moved = [
            UnitInput(
                level=child_level, code=r["code"], name=r["name"], geom=r["geom"],
                households=r["households"], population=r["population"], attributes=r["attributes"],
                label=f"{child_level} {r['code']}", unit_id=r["unit_id"], follow_parent=True,
            )
            for r in rows
        ]
        done = write_units(conn, child_level, moved, kind="edit", actor=actor, change_id=summary.change_id,
                           nested=True)
        summary.recoded.extend(done.recoded)


def follow(conn: psycopg.Connection, change_id: int, actor: str | Identity) -> dict[str, Any]:
    """What must follow a boundary change in its transaction: workers on retired units move to
    their successors (or are flagged for dispatchers), then open incidents in the closed units
    move to the units now holding them (and to the moved workers)."""
    moved_workers = workers.follow_change(conn, change_id, actor)
    return {"workers": moved_workers, "incidents_moved": incidents.reassign_after_change(conn, change_id)}
