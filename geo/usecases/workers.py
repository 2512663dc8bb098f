"""Workers as dispatchers manage them, and as they follow their units through a redraw.

`add_worker`, `update_worker` and `deactivate_worker` each own their transaction, write an event
in the worker's history (worker_event) and an audit row. A worker is never deleted: incidents
keep naming them. When a worker may no longer take the open incidents handed to them
(deactivated, or moved to another unit or role), those incidents go back to the dispatch queue
(state `reported`, no worker, an event each) in the same transaction, and the answer lists them.

`follow_change` moves the workers of units a boundary change retired to the units that replaced
them; geo/usecases/boundaries.py calls it in the change's transaction, before open incidents
are re-assigned, so an incident follows its worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from geo.db import audit, workers
from geo.db import incidents as incident_db
from geo.db.rows import transaction_time
from geo.errors import InvalidInput
from geo.incidents import dispatch
from geo.incidents import sample as generated
from geo.incidents.lifecycle import check_text
from geo.security.identity import Identity, as_identity

# Roles a unit has one of: a grid has one full-time grid worker (网格员) and one grid head
# (网格长), a small neighbourhood one head (邻里长). A community has many community workers.
SINGLE_ROLES = frozenset({"grid_worker", "grid_head", "neighbourhood_head"})
EDITABLE = ("name", "phone", "role", "unit_id", "active")


def _check_phone(phone: str | None) -> None:
    if phone is not None:
        check_text(phone, "phone")


def _checked_name(conn: psycopg.Connection, name: str, role: str, unit_id: int) -> str:
    """The name to store, once the role fits the unit's level and the unit is current."""
    level = workers.unit_level(conn, unit_id)
    if level is None and workers.unit_known(conn, unit_id):
        raise InvalidInput(f"unit {unit_id} is retired: attach the worker to a current unit "
                           "(the unit's lineage names the units that replaced it)")
    return dispatch.check_worker(name, role, level, unit_id)


def add_worker(conn: psycopg.Connection, name: str, role: str, unit_id: int, phone: str | None = None,
               who: str | Identity = "gridmap") -> dict[str, Any]:
    """Attach a worker to the unit their role works in (a grid, community or neighbourhood);
    returns the worker as `who` may see them."""
    viewer = as_identity(who)
    with conn.transaction():
        name = _checked_name(conn, name, role, unit_id)
        _check_phone(phone)
        worker = workers.insert(conn, name, role, unit_id, phone)
        workers.add_event(conn, worker["id"], viewer.label, "add", to_unit=unit_id, data={"role": role})
        audit.record(conn, viewer, "worker.add", "worker", [worker["id"]],
                     after={"name": name, "role": role, "unit_id": unit_id})
        return workers.read(conn, worker["id"], viewer=viewer)


def staff_sample(conn: psycopg.Connection, who: str | Identity = "gridmap", seed: int = 1) -> int:
    """A demo's staff: a grid worker for every current grid and a community worker for every
    current community that has none (generated names); how many were added."""
    wanted = [(role, unit) for role, level in (("grid_worker", "grid"), ("community_worker", "community"))
              for unit in workers.units_without(conn, role, level)]
    for (role, unit), name in zip(wanted, generated.worker_names(len(wanted), seed), strict=True):
        add_worker(conn, name, role, unit, who=who)
    return len(wanted)


def _changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a change names, or InvalidInput naming what is wrong with them."""
    if unknown := sorted(set(changes) - set(EDITABLE)):
        raise InvalidInput(f"a worker has no field {', '.join(unknown)}: change {', '.join(EDITABLE)}")
    if not changes:
        raise InvalidInput(f"give at least one of {', '.join(EDITABLE)} to change")
    if nulls := sorted(k for k, v in changes.items() if v is None and k != "phone"):
        raise InvalidInput(f"{', '.join(nulls)} cannot be null (only phone can be cleared)")
    return dict(changes)


def _requeue(conn: psycopg.Connection, worker: Mapping[str, Any], who: Identity, reason: str) -> list[int]:
    """Return to the dispatch queue the open incidents handed to `worker` (as it is now) that the
    worker may no longer take (geo/incidents/dispatch.py hand_over_level); their ids."""
    returned = []
    for row in workers.open_incidents(conn, worker["id"]):
        try:
            dispatch.hand_over_level(row["id"], worker["id"], worker, row["grid_id"], row["community_id"])
            continue
        except InvalidInput:
            pass
        incident_db.update(conn, row["id"], {"state": "reported", "worker_id": None, "handled_at_level": None},
                           bump_version=True)
        incident_db.add_event(conn, row["id"], who.label, row["state"], "reported",
                              f"back to the dispatch queue: worker {worker['id']} {reason}",
                              {"worker_id": worker["id"]})
        returned.append(row["id"])
    if returned:
        audit.record(conn, who, "incident.requeue", "incident", returned,
                     detail={"worker_id": worker["id"], "reason": reason})
    return returned


def _kind(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    if before["active"] and not after["active"]:
        return "deactivate"
    return "reactivate" if after["active"] and not before["active"] else "edit"


def update_worker(conn: psycopg.Connection, worker_id: int, changes: Mapping[str, Any],
                  who: str | Identity = "gridmap") -> dict[str, Any]:
    """Change a worker's name, phone, role, unit or whether they are active (fields not named
    keep their value; phone None clears it). A new role or unit, or a reactivation, is checked
    as `add_worker` checks it: the role fits the unit's level and the unit is current. A worker
    given a unit is no longer flagged as needing one, and neither is one deactivated. Returns
    the worker, as `who` may see them, with `returned_to_queue`: the incidents sent back."""
    viewer = as_identity(who)
    wanted = _changes(changes)
    with conn.transaction():
        before = workers.lock(conn, worker_id)
        after = before | wanted
        if "name" in wanted:
            after["name"] = str(wanted["name"]).strip()
        if {"role", "unit_id"} & set(wanted) or (after["active"] and not before["active"]):
            after["name"] = _checked_name(conn, after["name"], after["role"], after["unit_id"])
        elif not after["name"] or "\x00" in after["name"]:
            raise InvalidInput("a worker needs a name")
        _check_phone(after["phone"])
        changed = [k for k in EDITABLE if after[k] != before[k]]
        returned: list[int] = []
        if changed:
            kind = _kind(before, after)
            if before["unplaced_since"] is not None and ("unit_id" in changed or not after["active"]):
                after.update(unplaced_since=None, unplaced_reason=None)
            workers.update(conn, worker_id, {k: after[k] for k in (*changed, "unplaced_since", "unplaced_reason")})
            shown = [k for k in changed if k != "phone"]
            workers.add_event(conn, worker_id, viewer.label, kind, from_unit=before["unit_id"],
                              to_unit=after["unit_id"], data={"changed": changed})
            if {"role", "unit_id", "active"} & set(changed):
                reason = ("was deactivated" if kind == "deactivate"
                          else f"is now a {after['role']} of unit {after['unit_id']}")
                returned = _requeue(conn, after, viewer, reason)
            audit.record(conn, viewer, f"worker.{kind}", "worker", [worker_id],
                         before={k: before[k] for k in shown}, after={k: after[k] for k in shown},
                         detail={"changed": changed, "returned_to_queue": returned})
        return workers.read(conn, worker_id, viewer=viewer) | {"returned_to_queue": returned}


def deactivate_worker(conn: psycopg.Connection, worker_id: int, who: str | Identity = "gridmap") -> dict[str, Any]:
    """Deactivate a worker (the row stays): the open incidents handed to them go back to the
    dispatch queue in the same transaction. Deactivating an inactive worker changes nothing."""
    return update_worker(conn, worker_id, {"active": False}, who)


# ---- following a boundary change -------------------------------------------------------------

def _best_successors(shares: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """For each retired unit, the successor holding most of its households, or, where none of
    its successors holds a building with households, the one sharing most of its area; ties go to
    the larger area, then the lower unit id. Each row gains `by`: 'households' or 'area'."""
    by_unit: dict[int, list[dict[str, Any]]] = {}
    for row in shares:
        by_unit.setdefault(row["from_unit_id"], []).append(row)
    best: dict[int, dict[str, Any]] = {}
    for unit_id, rows in by_unit.items():
        by = "households" if any(r["households"] for r in rows) else "area"
        top = max(rows, key=lambda r: (r["households"] if by == "households" else 0, r["area_m2"], -r["to_unit_id"]))
        best[unit_id] = top | {"by": by}
    return best


def _why_not(worker: Mapping[str, Any], target: Mapping[str, Any] | None, change_id: int,
             holders: Mapping[tuple[int, str], Mapping[str, Any]]) -> str | None:
    """Why the worker cannot move to `target` (None: they can)."""
    role = worker["role"]
    if target is None:
        return f"unit {worker['unit_id']} was retired by change {change_id} and no current unit succeeds it"
    where = f"{target['to_level']} {target['to_code']}"
    if target["to_level"] != dispatch.ROLES.get(role):
        return f"its successor {where} is a {target['to_level']}, and a {role} is attached to a {dispatch.ROLES[role]}"
    holder = holders.get((target["to_unit_id"], role)) if role in SINGLE_ROLES else None
    if holder is not None:
        return f"its successor {where} already has a {role}: {holder['name']} (worker {holder['id']})"
    return None


def _move(conn: psycopg.Connection, worker: Mapping[str, Any], target: Mapping[str, Any], change_id: int,
          who: Identity) -> dict[str, Any]:
    old, new = worker["unit_id"], target["to_unit_id"]
    measure = {"by": target["by"], "households": int(target["households"]), "area_m2": round(target["area_m2"], 1)}
    # on a unit of their own now: a flag an earlier change left is cleared (`_flag` sets it again
    # when the successor has its worker already)
    workers.update(conn, worker["id"], {"unit_id": new, "unplaced_since": None, "unplaced_reason": None})
    workers.add_event(conn, worker["id"], who.label, "follow", from_unit=old, to_unit=new, change_id=change_id,
                      note=f"followed unit {old} to {target['to_level']} {target['to_code']} after change {change_id}",
                      data=measure)
    audit.record(conn, who, "worker.follow", "worker", [worker["id"]], change_id=change_id,
                 before={"unit_id": old}, after={"unit_id": new}, detail=measure | {"role": worker["role"]})
    return {"worker_id": worker["id"], "name": worker["name"], "from_unit": old, "to_unit": new}


def _flag(conn: psycopg.Connection, worker: Mapping[str, Any], reason: str, change_id: int,
          who: Identity) -> dict[str, Any]:
    workers.update(conn, worker["id"], {"unplaced_since": transaction_time(conn), "unplaced_reason": reason})
    workers.add_event(conn, worker["id"], who.label, "unplaced", from_unit=worker["unit_id"], change_id=change_id,
                      note=reason)
    audit.record(conn, who, "worker.unplaced", "worker", [worker["id"]], change_id=change_id,
                 before={"unit_id": worker["unit_id"]}, after={"unit_id": worker["unit_id"], "unplaced": True},
                 detail={"reason": reason, "role": worker["role"]})
    return {"worker_id": worker["id"], "name": worker["name"], "unit_id": worker["unit_id"], "reason": reason}


def follow_change(conn: psycopg.Connection, change_id: int, actor: str | Identity) -> dict[str, Any]:
    """Move the workers of the units change `change_id` retired to the units that replaced them,
    in the caller's transaction.

    A unit is retired by the change when the change closed its version and no current version
    of it is left. Each active worker on such a unit (flagged ones too) moves to one of the
    current units its lineage (unit_lineage, this change) leads to: the one holding most of the
    retired unit's households, counted as the households of the current buildings whose point
    (ST_PointOnSurface) lies both in the retired unit's last version and in the successor, as
    plan comparison counts them. Where none of the successors holds such a building with
    households, the successor sharing most of the retired unit's area (m², on the spheroid)
    takes the worker. Ties go to the larger area, then the lower unit id.

    A unit has one grid worker, one grid head, one neighbourhood head (SINGLE_ROLES): when two
    workers of such a role would land on one successor (a merge), the one whose old unit gives
    it most households (or area) moves, and the other is left unplaced, as is a worker whose
    successor already has an active worker of that role: an unplaced worker still follows to
    the successor (so every active worker stays on a current unit) but is flagged
    (unplaced_since and unplaced_reason), takes no new incidents, and is listed for dispatchers
    until one gives them a unit. A worker whose unit nobody succeeds stays flagged on it.
    Community workers always move.

    Each move and flag is an event in the worker's history and an audit row (worker.follow,
    worker.unplaced). Returns {"moved": [{worker_id, name, from_unit, to_unit}],
    "unplaced": [{worker_id, name, unit_id, reason}]}, each by worker id. Calling it again for
    the same change does nothing more."""
    who = as_identity(actor)
    retired = workers.on_retired_units(conn, change_id)
    if not retired:
        return {"moved": [], "unplaced": []}
    best = _best_successors(workers.successor_shares(conn, change_id, sorted({w["unit_id"] for w in retired})))
    holders: dict[tuple[int, str], Mapping[str, Any]] = dict(
        workers.role_holders(conn, sorted({b["to_unit_id"] for b in best.values()})))

    def claim(worker: Mapping[str, Any]) -> tuple[float, float, int]:
        target = best.get(worker["unit_id"])
        return (-target["households"], -target["area_m2"], worker["id"]) if target else (0, 0, worker["id"])

    moved, unplaced = [], []
    for worker in sorted(retired, key=claim):
        target = best.get(worker["unit_id"])
        if target is None and worker["unplaced_since"] is not None:
            continue  # flagged already, and still nowhere to go
        reason = _why_not(worker, target, change_id, holders)
        if reason is None:
            assert target is not None
            moved.append(_move(conn, worker, target, change_id, who))
            holders[(target["to_unit_id"], worker["role"])] = worker
        elif target is not None and target["to_level"] == dispatch.ROLES.get(worker["role"]):
            # the successor has its worker: this one goes there too, flagged, and takes no new
            # incidents until a dispatcher gives them a unit of their own
            moved.append(_move(conn, worker, target, change_id, who))
            unplaced.append(_flag(conn, dict(worker) | {"unit_id": target["to_unit_id"]},
                                  reason + ": attached there, flagged, until a dispatcher gives them a unit",
                                  change_id, who))
        else:
            unplaced.append(_flag(conn, worker, reason, change_id, who))
    return {"moved": sorted(moved, key=lambda m: m["worker_id"]),
            "unplaced": sorted(unplaced, key=lambda u: u["worker_id"])}
