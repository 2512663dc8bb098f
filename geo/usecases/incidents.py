"""Incidents as people handle them: take in a report, move it through its lifecycle,
re-assign open ones after a boundary change, import a hotline export, store a
generated sample. Each owns its transaction's steps and writes its audit row in it.

Intake assigns a report to the units valid when it was made (its `reported_at`), through
the in-memory index (geo/usecases/locators.py) looked up on the request's own connection,
and dispatches it to a worker (geo/incidents/dispatch.py).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from geo import settings
from geo.coords import points
from geo.db import audit, generation, incident_months, units, workers
from geo.db import incidents as db
from geo.db.connection import connect
from geo.db.rows import transaction_time
from geo.errors import Conflict, GridmapError, InvalidInput, NotFound
from geo.incidents import dispatch, importing, lifecycle
from geo.incidents import sample as generated
from geo.locate.layered import Layered
from geo.locate.locator import Locator
from geo.security.identity import Identity, as_identity
from geo.units import codes
from geo.units.levels import LEVELS
from geo.units.model import Progress, no_progress
from geo.usecases import locators

LocatorFor = Callable[[datetime, float, float], "Locator | Layered"]


def locator_on(conn: psycopg.Connection) -> LocatorFor:
    """For a report stored on `conn`: the boundaries valid when it was made (the current index
    unless they changed since; else the units near the point as they stood then), looked up
    on that same connection, so an intake never holds one pooled connection while it waits
    for another."""

    def pick(when: datetime, lon: float, lat: float) -> Locator | Layered:
        changed = db.latest_change_at(conn)
        if changed is None or changed <= when:
            return locators.current(conn)
        return locators.around(when, np.array([lon]), np.array([lat]), conn=conn)

    return pick


def _first_worker(conn: psycopg.Connection) -> dispatch.FirstWorker:
    return lambda role, unit_id: workers.first_active(conn, role, unit_id)


def report_incident(conn: psycopg.Connection, report: lifecycle.Report, locator_for: LocatorFor,
                    actor: str = "intake", who: str | Identity | None = None) -> tuple[dict[str, Any], bool]:
    """Store a report, assign it to its units, dispatch it. Returns (incident, created).

    `actor` names the source in the incident's history (a channel); `who` is the caller
    recorded in the audit log (an API key, the command line; default: `actor`), and the
    viewer the incident is returned for. A report with an external id already stored is
    not stored again (created is False)."""
    viewer = as_identity(who or actor)
    # Assigned to the boundaries current when stored: wait for a boundary commit under way
    # (geo/db/generation.py), so a commit's re-assignment sees every report stored before it.
    generation.hold_commits(conn)
    now = db.clock(conn)
    if report.external_id:
        existing = db.by_external_id(conn, report.external_id)
        if existing:
            return db.get(conn, existing, viewer=viewer), False
    category = db.category(conn, report.category)
    reported_at = lifecycle.check_report(report, now)
    lon, lat, source = points.point_to_wgs84(report.lon, report.lat, report.crs, settings.get().bounds)
    locator = locator_for(reported_at, lon, lat)
    found = locator.locate_one(lon, lat)
    chain = {lv: (int(locator.units[lv].ids[i]) if i >= 0 else None) for lv, i in found.items()}
    unassigned = chain["street"] is None and chain["community"] is None and chain["grid"] is None
    district = codes.district_of({lv: (locator.units[lv].codes[i] if i >= 0 else None) for lv, i in found.items()})
    token = secrets.token_urlsafe(24)  # the reporter's, to rate the result: only its digest is stored
    queue = db.nearest_street(conn, lon, lat, reported_at) if unassigned else None
    if queue is not None:  # outside every unit: the nearest street's dispatchers take it, in its district
        district = codes.district_of({"street": queue["code"]})
    worker_id, level = dispatch.choose(chain, category["escalate"], _first_worker(conn))
    state = "assigned" if worker_id else "reported"
    fields = {
        "district": district, "external_id": report.external_id, "category": category["code"],
        "description": report.description, "address": report.address or None,
        "reported_at": reported_at, "channel": report.channel, "contact": report.contact, "photos": report.photos,
        "input_lon": report.lon, "input_lat": report.lat, "input_crs": source, "state": state,
        **{f"{lv}_id": chain[lv] for lv in LEVELS}, "unassigned": unassigned, "handled_at_level": level,
        "worker_id": worker_id, "deadline": reported_at + timedelta(hours=category["deadline_hours"]),
        "queue_street_id": queue["unit_id"] if queue else None, "evaluation_token_hash": _digest(token),
    }
    incident_id = db.insert(conn, fields, lon, lat)
    if incident_id is None:  # the same external id arrived at the same moment: that one stands
        existing = db.by_external_id(conn, report.external_id or "")
        assert existing is not None
        return db.get(conn, existing, viewer=viewer), False
    db.add_event(conn, incident_id, actor, None, "reported", _queued(queue) if unassigned else None)
    if worker_id:
        db.add_event(conn, incident_id, "dispatch", "reported", "assigned", f"to the {level}'s worker",
                     {"worker_id": worker_id})
    audit.record(conn, viewer, "incident.report", "incident", [incident_id],
                 after={"state": state, "version": 1, "worker_id": worker_id},
                 detail={"channel": report.channel, "category": category["code"], "external_id": report.external_id,
                         "unassigned": unassigned})
    incident = db.get(conn, incident_id, viewer=viewer)
    # what it may repeat, for the dispatcher to merge with one move (to=duplicate, duplicate_of)
    incident["possible_duplicates"] = db.similar(conn, incident_id, viewer=viewer)
    incident["evaluation_token"] = token  # given once, to whoever reported it
    return incident, True


# whoever holds a report's token: shown what a service key is shown (contacts masked)
RESIDENT = Identity("resident", role="service")


def evaluation_page(conn: psycopg.Connection, token: str) -> dict[str, Any]:
    """The incident a token rates, as its holder sees it; NotFound for an unknown token."""
    return db.get(conn, _rated(conn, token)["id"], viewer=RESIDENT)


def _rated(conn: psycopg.Connection, token: str) -> dict[str, Any]:
    """The incident a reporter's token opens, locked; NotFound when it opens none."""
    row = db.by_evaluation_token(conn, _digest(token))
    if row is None:
        raise NotFound("no report has this link: open the link you were sent with your report")
    return row


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def evaluate(conn: psycopg.Connection, token: str, rating: str, comment: str | None = None) -> dict[str, Any]:
    """The reporter's rating of a resolved incident, through the token they were given: pleased
    closes it; unsatisfied reopens it to its worker (GRIDMAP_REOPEN_UNSATISFIED; with nobody who
    may take it, it stays resolved, marked, for a dispatcher). NotFound for an unknown token,
    Conflict when the incident is not resolved. Returns the incident as its reporter sees it."""
    rating = lifecycle.check_rating(rating, comment)
    comment = (comment or "").strip() or None
    row = _rated(conn, token)
    if row["state"] != "resolved":
        said = "has been rated" if row["evaluation"] else f"is {row['state']}"
        raise Conflict(f"incident {row['id']} {said}: a report is rated once it is resolved")
    db.record_evaluation(conn, row["id"], rating, comment)
    note = f"居民评价 {lifecycle.RATINGS[rating]} {rating}" + (f": {comment}" if comment else "")
    resident = RESIDENT
    if rating in lifecycle.PLEASED or not settings.get().reopen_unsatisfied:
        return transition(conn, row["id"], "closed", expected_version=row["version"], actor="resident", note=note,
                          who=resident)
    for worker in (row["worker_id"], None):  # back to its worker, else to whoever intake would choose
        try:
            with conn.transaction():
                return transition(conn, row["id"], "assigned", expected_version=row["version"], actor="resident",
                                  note=note, worker_id=worker, who=resident)
        except (InvalidInput, Conflict):
            continue
    db.add_event(conn, row["id"], "resident", "resolved", "resolved",
                 note + "; nobody may take it back: a dispatcher will")
    return db.get(conn, row["id"], viewer=resident)


def close_unevaluated(conn: psycopg.Connection, hours: float) -> list[int]:
    """Close the resolved incidents their reporters did not rate within `hours` (not evaluated),
    each in a transaction of its own (one changed meanwhile is left for the next round)."""
    before = db.clock(conn) - timedelta(hours=hours)
    closed = []
    for row in db.awaiting_evaluation(conn, before):
        try:
            with conn.transaction():
                db.record_evaluation(conn, row["id"], "not_evaluated", None)
                transition(conn, row["id"], "closed", expected_version=row["version"], actor="system",
                           note=f"未评价 not evaluated within {hours:g} h of being resolved", who="system")
            closed.append(row["id"])
        except Conflict:
            continue
    return closed


def _queued(queue: dict[str, Any] | None) -> str:
    """What the history says of a report outside every unit."""
    if queue is None:
        return (f"unassigned: outside every unit, no street within {db.QUEUE_WITHIN_M / 1000:g} km: "
                "in the district's queue")
    return (f"unassigned: outside every unit, {queue['distance_m']:.0f} m from street {queue['code']} {queue['name']}: "
            "in its dispatchers' queue")


# The open states an incident that is not open may move back into (a reopening).
_REOPENED_TO = {to for state in lifecycle.STATES if state not in lifecycle.OPEN_STATES
                for to in lifecycle.TRANSITIONS[state] if to in lifecycle.OPEN_STATES}


def transition(conn: psycopg.Connection, incident_id: int, to_state: str, *, expected_version: int,
               actor: str, note: str | None = None, worker_id: int | None = None,
               who: str | Identity | None = None, duplicate_of: int | None = None) -> dict[str, Any]:
    """Move an incident to `to_state`; Conflict when it changed since `expected_version`,
    IllegalTransition when the lifecycle does not allow the move. `actor` is the person named
    in the incident's history; `who`, the caller the audit log records (default: `actor`).

    A reopened incident (from a state that is not open into an open one) whose units a boundary
    change retired meanwhile moves to the units now holding its point (its event names them,
    `from` and `to`), and goes to its new grid's worker as a new report would."""
    lifecycle.check_state(to_state)
    lifecycle.check_text(actor, "actor")
    lifecycle.check_text(note or "", "note")
    if to_state in _REOPENED_TO:
        # re-located to the boundaries current when stored: wait for a boundary commit under way
        # (taken before the incident's lock, in the order a commit takes them)
        generation.hold_commits(conn)
    row = db.lock(conn, incident_id)
    state, version = row["state"], row["version"]
    lifecycle.check_move(incident_id, state, version, to_state, expected_version)
    sets: dict[str, Any] = {"state": to_state, "version": version + 1}
    data: dict[str, Any] = {}
    chain: dict[str, int | None] = {"grid": row["grid_id"], "community": row["community_id"]}
    moved_grid = False
    place = db.retired_place(conn, incident_id) \
        if state not in lifecycle.OPEN_STATES and to_state in lifecycle.OPEN_STATES else None
    if place is not None:
        old = {lv: place[f"{lv}_id"] for lv in LEVELS}
        new = db.units_covering(conn, place["lon"], place["lat"])
        sets.update({f"{lv}_id": new[lv] for lv in LEVELS},
                    unassigned=new["street"] is None and new["community"] is None and new["grid"] is None)
        data["from"] = {lv: old[lv] for lv in LEVELS if old[lv] != new[lv]}
        data["to"] = {lv: new[lv] for lv in LEVELS if old[lv] != new[lv]}
        chain = {"grid": new["grid"], "community": new["community"]}
        moved_grid = chain != {"grid": old["grid"], "community": old["community"]}
    dispatched: tuple[int, str | None] | None = None
    sets.update(_duplicate_link(conn, incident_id, state, to_state, duplicate_of))
    if duplicate_of is not None:
        data["duplicate_of"] = duplicate_of
    if to_state == "assigned":
        if worker_id is None:
            worker_id, level = dispatch.choose(chain, db.escalates(conn, row["category"]), _first_worker(conn))
            if worker_id is None and chain["grid"] is None and chain["community"] is None:
                raise Conflict(f"incident {incident_id} lies outside every unit: hand it to a worker with "
                               "worker_id, saying why in note")
            if worker_id is None:
                raise Conflict(f"incident {incident_id}: no worker is attached to its grid or community; "
                               "name one with worker_id")
        else:
            level = dispatch.hand_over_level(incident_id, worker_id, workers.get(conn, worker_id),
                                             chain["grid"], chain["community"], note)
        sets.update(worker_id=worker_id, handled_at_level=level, resolved_at=None, closed_at=None)
        data["worker_id"] = worker_id
    elif to_state == "resolved":
        sets["resolved_at"] = transaction_time(conn)
    elif to_state == "closed":
        sets["closed_at"] = transaction_time(conn)
    elif to_state == "reported":
        sets.update(worker_id=None, handled_at_level=None, resolved_at=None, closed_at=None)
        if moved_grid:  # reopened in another grid: its worker takes it, as intake would hand it over
            new_worker, new_level = dispatch.choose(chain, db.escalates(conn, row["category"]), _first_worker(conn))
            if new_worker is not None:
                dispatched = (new_worker, new_level)
                sets.update(state="assigned", worker_id=new_worker, handled_at_level=new_level)
    db.update(conn, incident_id, sets)
    db.add_event(conn, incident_id, actor, state, to_state, note, data)
    if duplicate_of is not None:  # the original keeps a note of the report merged into it
        original_state = db.state_of(conn, duplicate_of)
        db.add_event(conn, duplicate_of, actor, original_state, original_state,
                     f"report {incident_id} merged into this one as a duplicate", {"duplicate": incident_id})
    if dispatched is not None:
        db.add_event(conn, incident_id, "dispatch", to_state, "assigned", f"to the {dispatched[1]}'s worker",
                     {"worker_id": dispatched[0]})
    viewer = as_identity(who or actor)
    audit.record(conn, viewer, "incident.transition", "incident", [incident_id],
                 before={"state": state, "version": version},
                 after={"state": sets["state"], "version": version + 1, **data,
                        **({"worker_id": dispatched[0]} if dispatched else {})},
                 detail={"actor": actor, "note": note})
    return db.get(conn, incident_id, viewer=viewer)


def _duplicate_link(conn: psycopg.Connection, incident_id: int, state: str, to_state: str,
                    duplicate_of: int | None) -> dict[str, Any]:
    """What a move changes of the incident an incident repeats: set when it is marked a
    duplicate of another, cleared when a duplicate is reopened."""
    if duplicate_of is not None:
        if to_state != "duplicate":
            raise InvalidInput("duplicate_of goes with to=duplicate")
        _check_original(conn, incident_id, duplicate_of)
        return {"duplicate_of": duplicate_of}
    return {"duplicate_of": None} if state == "duplicate" else {}


def _check_original(conn: psycopg.Connection, incident_id: int, original: int) -> None:
    """InvalidInput unless `original` is another incident that repeats nothing itself."""
    if original == incident_id:
        raise InvalidInput(f"incident {incident_id} cannot be a duplicate of itself")
    found = db.duplicate_link(conn, original)
    if found is None:
        raise InvalidInput(f"duplicate_of {original}: there is no such incident")
    if found["duplicate_of"] is not None:
        raise InvalidInput(f"incident {original} is itself a duplicate of {found['duplicate_of']}: "
                           f"mark {incident_id} a duplicate of {found['duplicate_of']}")


def reassign_after_change(conn: psycopg.Connection, change_id: int) -> int:
    """Open incidents in units a change closed are re-assigned to the units now holding their
    point, in the same transaction, with an event each; closed ones keep the units they were
    handled in. Returns how many were re-assigned."""
    moved = 0
    for row in db.open_in_closed_units(conn, change_id):
        state, level = row["state"], row["handled_at_level"]
        old = {lv: row[f"{lv}_id"] for lv in LEVELS}
        new = db.units_covering(conn, row["lon"], row["lat"])
        if new == old:
            continue
        sets: dict[str, Any] = {f"{lv}_id": new[lv] for lv in LEVELS}
        sets["unassigned"] = new["street"] is None and new["community"] is None and new["grid"] is None
        data: dict[str, Any] = {"from": {lv: old[lv] for lv in LEVELS if old[lv] != new[lv]},
                                "to": {lv: new[lv] for lv in LEVELS if old[lv] != new[lv]}, "change_id": change_id}
        new_state = state
        moved_grid = new["grid"] != old["grid"] or new["community"] != old["community"]
        if moved_grid and (state == "reported" or (state == "assigned" and level in ("grid", "community"))):
            # the new grid's worker takes it (or the community's); with nobody there it waits
            worker_id, new_level = dispatch.choose({"grid": new["grid"], "community": new["community"]},
                                                   db.escalates(conn, row["category"]), _first_worker(conn))
            sets.update(worker_id=worker_id, handled_at_level=new_level)
            new_state = "assigned" if worker_id else "reported"
            data["worker_id"] = worker_id
        sets["state"] = new_state
        db.update(conn, row["id"], sets, bump_version=True)
        db.add_event(conn, row["id"], "boundary change", state, new_state, f"re-assigned after change {change_id}",
                     data)
        moved += 1
    return moved


def import_file(path: str | Path, *, crs: str = "wgs84", errors_path: str | Path | None = None,
                url: str | None = None, actor: str = "import", who: str | Identity | None = None,
                progress: Progress = no_progress) -> dict[str, Any]:
    """Import a file of incidents (geo/incidents/importing.py), one savepoint per row: valid
    rows are kept, bad ones written to an errors file with the reason. Each row taken in is
    audited as an intake by `who` (default: `actor`). Returns counts and where errors went."""
    path = Path(path)
    source = importing.read_rows(path)
    rows = source.rows
    errors_path = Path(errors_path) if errors_path else source.errors_path()
    created = existing = 0
    problems: list[tuple[int, str]] = []
    zone = settings.get().tz
    with connect(url) as conn:
        locator_for = locator_on(conn)

        for n, row in enumerate(rows, start=1):
            try:
                with conn.transaction():
                    report = importing.report_of(row, crs, zone)
                    _, was_new = report_incident(conn, report, locator_for, actor=actor, who=who)
                created += was_new
                existing += not was_new
            except GridmapError as exc:
                problems.append((n, str(exc)))
            except psycopg.Error as exc:  # one row the database refuses does not stop the others
                problems.append((n, f"refused by the database: {exc.diag.message_primary or exc}"))
            if n % 200 == 0:
                progress("importing", n, len(rows))
        progress("importing", len(rows), len(rows))
    if problems:
        source.write_errors(problems, errors_path)
    elif errors_path.exists():
        errors_path.unlink()
    return {"rows": len(rows), "created": created, "already_stored": existing, "errors": len(problems),
            "errors_file": str(errors_path) if problems else None}


def store_sample(conn: psycopg.Connection, locator: Locator, columns: dict[str, np.ndarray], who: str | Identity,
                 progress: Progress = no_progress) -> int:
    """Store generated incidents (geo/incidents/sample.py) in one transaction, audited: each goes
    to the worker intake would give it (none: it stays reported), with the history its state implies."""
    staff = workers.first_active_all(conn)
    escalating = {c["code"] for c in db.categories(conn) if c["escalate"]}

    def dispatcher(grid: int | None, community: int | None, category: str) -> tuple[int | None, str | None]:
        return dispatch.choose({"grid": grid, "community": community}, category in escalating,
                               lambda role, unit: staff.get((role, unit)) if unit else None)

    with conn.transaction():
        if len(columns["reported_at"]):  # their months first: none waits in incident_default
            times = columns["reported_at"]
            incident_months.make_between(conn, *(t.astype(datetime).replace(tzinfo=UTC)
                                                 for t in (times.min(), times.max())))
        count = db.insert_generated(conn, locator, columns, progress, dispatcher)
        audit.record(conn, who, "incidents.sample", "incident", [], detail={"count": count, "generated": True})
    return count


def generate_sample(conn: psycopg.Connection, count: int, start: datetime, end: datetime, who: str | Identity,
                    seed: int = 1, progress: Progress = no_progress) -> int:
    """Generate `count` incidents between start and end over the boundaries stored now, and store them."""
    locator = units.locator(conn)
    columns = generated.generate(locator, count, start, end, seed=seed)
    return store_sample(conn, locator, columns, who, progress)
