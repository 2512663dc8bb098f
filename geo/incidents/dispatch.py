"""Who takes an incident: "small matters stay in the grid" (小事不出网格).

A new incident goes to its grid's worker; with none there, or for a category the
community handles (`escalate`), to a community worker; with nobody attached it waits,
reported, for a dispatcher. A hand-over goes only to a worker or head of the incident's
grid, or a community worker of its community. A report outside every unit has no grid or
community: a dispatcher hands it to any active worker, saying why (it is never a dead end).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from geo.errors import InvalidInput

# The roles a worker can have, and the level of unit each is attached to.
ROLES: dict[str, str] = {"grid_worker": "grid", "grid_head": "grid", "neighbourhood_head": "neighbourhood",
                         "community_worker": "community"}
FirstWorker = Callable[[str, int | None], int | None]


def choose(chain: Mapping[str, int | None], escalate: bool, first_worker: FirstWorker) -> tuple[int | None, str | None]:
    """(worker id, the level handling it) for an incident in `chain`; (None, None) when nobody
    is attached. `first_worker(role, unit_id)` names the first active worker of a role there."""
    if not escalate:
        worker = first_worker("grid_worker", chain.get("grid"))
        if worker:
            return worker, "grid"
    worker = first_worker("community_worker", chain.get("community"))
    return (worker, "community") if worker else (None, None)


def hand_over_level(incident_id: int, worker_id: int, worker: Mapping[str, object] | None,
                    grid_id: int | None, community_id: int | None, reason: str | None = None) -> str:
    """The level that handles an incident handed to `worker` (a row: active, unit_id, role),
    or InvalidInput when that worker may not take it. An incident outside every unit (no grid,
    no community) goes to any active worker given a `reason`."""
    if worker is None or not worker["active"]:
        raise InvalidInput(f"no active worker with id {worker_id}")
    if grid_id is None and community_id is None:
        if not (reason or "").strip():
            raise InvalidInput(f"incident {incident_id} lies outside every unit: any active worker may take it, "
                               "with a reason: say why in note")
        return "community" if worker["role"] == "community_worker" else "grid"
    if worker["unit_id"] == grid_id and worker["role"] in ("grid_worker", "grid_head"):
        return "grid"
    if worker["unit_id"] == community_id and worker["role"] == "community_worker":
        return "community"
    raise InvalidInput(
        f"worker {worker_id} is a {worker['role']} of unit {worker['unit_id']}: hand incident {incident_id} "
        "to a worker or head of its grid, or a community worker of its community"
    )


def check_worker(name: str, role: str, unit_level: str | None, unit_id: int) -> str:
    """The name a new worker is stored under, or InvalidInput naming what is wrong."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if not name.strip() or "\x00" in name:
        raise InvalidInput("a worker needs a name")
    if unit_level is None:
        raise InvalidInput(f"no current unit with id {unit_id}")
    if unit_level != ROLES[role]:
        raise InvalidInput(f"a {role} is attached to a {ROLES[role]}, and unit {unit_id} is a {unit_level}")
    return name.strip()
