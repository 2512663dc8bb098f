"""Incidents: intake by location, assignment to the units valid when reported, dispatch to
a worker, and the lifecycle reported → assigned → in_progress → resolved → closed (plus
rejected, duplicate and reopening). Every change of state is an event; every write checks
the incident's version, so two people updating one incident never lose an update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable
from urllib.parse import urlparse

import psycopg
from psycopg.types.json import Jsonb

from geo import audit, geometry
from geo.auth import Identity
from geo.errors import Conflict, InvalidInput, NotFound
from geo.locate import Locator

STATES = ("reported", "assigned", "in_progress", "resolved", "closed", "rejected", "duplicate")
OPEN_STATES = ("reported", "assigned", "in_progress")
# Which state may follow which. "assigned" after resolved/closed is a reopening; after
# assigned or in_progress it is a hand-over to another worker.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "reported": ("assigned", "rejected", "duplicate"),
    "assigned": ("assigned", "in_progress", "rejected", "duplicate"),
    "in_progress": ("assigned", "resolved", "rejected", "duplicate"),
    "resolved": ("closed", "assigned"),
    "closed": ("assigned",),
    "rejected": ("reported",),
    "duplicate": ("reported",),
}
CHANNELS = ("hotline", "wechat", "app", "patrol", "rider", "web", "open311", "import")
CHAIN = ("street", "community", "grid", "compound", "neighbourhood", "building")
MAX_PHOTOS = 20
MAX_DESCRIPTION = 5000
FUTURE_SLACK = timedelta(minutes=10)  # clocks of phones and hotline systems drift
OLDEST_REPORT = timedelta(days=3653)


def check_text(text: str, what: str) -> None:
    """Text PostgreSQL can store: no NUL, and valid Unicode (no lone surrogates)."""
    if "\x00" in text:
        raise InvalidInput(f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid Unicode text") from None


class IllegalTransition(Conflict):
    """A state change the lifecycle does not allow (409)."""


@dataclass
class Report:
    """One incoming report, as the reporter sent it."""

    category: str
    lon: float
    lat: float
    crs: str = "wgs84"
    reported_at: datetime | None = None
    description: str = ""
    channel: str = "app"
    contact: str | None = None
    photos: list[str] = field(default_factory=list)
    external_id: str | None = None


def _check(conn, report: Report, now: datetime) -> dict:
    category = conn.execute(
        "SELECT code, deadline_hours, escalate FROM incident_category WHERE code = %s", [report.category]
    ).fetchone()
    if category is None:
        known = [r[0] for r in conn.execute("SELECT code FROM incident_category ORDER BY code")]
        raise InvalidInput(f"unknown category {report.category!r}: use one of {', '.join(known)}")
    if report.channel not in CHANNELS:
        raise InvalidInput(f"unknown channel {report.channel!r}: use one of {', '.join(CHANNELS)}")
    if len(report.description) > MAX_DESCRIPTION:
        raise InvalidInput(f"description is longer than {MAX_DESCRIPTION} characters")
    for text, what in ((report.description, "description"), (report.contact or "", "contact"),
                       (report.external_id or "", "external_id"), (report.category, "category")):
        check_text(text, what)
    if len(report.external_id or "") > 200 or len(report.contact or "") > 200:
        raise InvalidInput("external_id and contact are at most 200 characters")
    if len(report.photos) > MAX_PHOTOS:
        raise InvalidInput(f"at most {MAX_PHOTOS} photos a report, not {len(report.photos)}")
    for url in report.photos:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(f"photo {url!r} is not an http(s) URL")
    when = report.reported_at or now
    if when.tzinfo is None:
        raise InvalidInput("reported_at needs a time zone (e.g. 2026-11-25T08:00:00+08:00)")
    if when > now + FUTURE_SLACK:
        raise InvalidInput(f"reported_at {when.isoformat()} is in the future")
    if when < now - OLDEST_REPORT:
        raise InvalidInput(f"reported_at {when.isoformat()} is more than 10 years ago: check the date")
    return {"deadline_hours": category[1], "escalate": category[2], "reported_at": when}


def to_wgs84(lon: float, lat: float, crs_text: str) -> tuple[float, float, str]:
    """The report's position in WGS84, or InvalidInput naming what is wrong with it."""
    wx, wy, source = geometry.points_to_wgs84([lon], [lat], crs_text, ["position"])
    return float(wx[0]), float(wy[0]), source


def _first_worker(conn, role: str, unit_id: int | None) -> int | None:
    if not unit_id:
        return None
    row = conn.execute(
        "SELECT id FROM worker WHERE active AND role = %s AND unit_id = %s ORDER BY id LIMIT 1", [role, unit_id]
    ).fetchone()
    return row[0] if row else None


def _escalates(conn, category: str) -> bool:
    return conn.execute("SELECT escalate FROM incident_category WHERE code = %s", [category]).fetchone()[0]


def _dispatch(conn, chain: dict[str, int | None], escalate: bool) -> tuple[int | None, str | None]:
    """The worker who takes a new incident: the grid's worker, else (or for categories the
    community handles) a community worker. None when nobody is attached."""
    if not escalate:
        worker = _first_worker(conn, "grid_worker", chain["grid"])
        if worker:
            return worker, "grid"
    worker = _first_worker(conn, "community_worker", chain["community"])
    return (worker, "community") if worker else (None, None)


def report_incident(conn: psycopg.Connection, report: Report, locator_for: Callable[[datetime], Locator],
                    actor: str = "intake", who: str | Identity | None = None) -> tuple[dict, bool]:
    """Store a report, assign it to its units, dispatch it. Returns (incident, created).

    `actor` names the source in the incident's history (a channel); `who` is the caller
    recorded in the audit log (an API key, the command line; default: `actor`).
    A report with an external id already stored is not stored again (created is False).
    """
    # A boundary commit holds this row from its first write to its end (the trigger of
    # migration 0001 updates it): a report waits for it, so it is assigned to the boundaries
    # current when it is stored, and a commit's re-assignment of open incidents sees every
    # report stored before the commit began writing. Reports share the lock among themselves.
    conn.execute("SELECT generation FROM boundary_generation FOR SHARE")
    now = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    if report.external_id:
        existing = conn.execute("SELECT id FROM incident WHERE external_id = %s", [report.external_id]).fetchone()
        if existing:
            return get_incident(conn, existing[0]), False
    facts = _check(conn, report, now)
    lon, lat, source = to_wgs84(report.lon, report.lat, report.crs)
    locator = locator_for(facts["reported_at"])
    found = locator.locate_one(lon, lat)
    chain = {lv: (int(locator.units[lv].ids[i]) if i >= 0 else None) for lv, i in found.items()}
    unassigned = chain["street"] is None and chain["community"] is None and chain["grid"] is None
    worker_id, level = _dispatch(conn, chain, facts["escalate"])
    state = "assigned" if worker_id else "reported"
    deadline = facts["reported_at"] + timedelta(hours=facts["deadline_hours"])
    incident_id = conn.execute(
        """
        INSERT INTO incident (external_id, category, description, reported_at, channel, contact, photos,
            input_lon, input_lat, input_crs, geom, state, street_id, community_id, grid_id, compound_id,
            neighbourhood_id, building_id, unassigned, handled_at_level, worker_id, deadline)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, ST_SetSRID(ST_Point(%s, %s), 4326), %s,
                %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (external_id) DO NOTHING
        RETURNING id
        """,
        [report.external_id, report.category, report.description, facts["reported_at"], report.channel,
         report.contact, Jsonb(report.photos), report.lon, report.lat, source, lon, lat, state,
         *(chain[lv] for lv in CHAIN), unassigned, level, worker_id, deadline],
    ).fetchone()
    if incident_id is None:  # the same external id arrived at the same moment: that one stands
        existing = conn.execute("SELECT id FROM incident WHERE external_id = %s", [report.external_id]).fetchone()
        return get_incident(conn, existing[0]), False
    incident_id = incident_id[0]
    _event(conn, incident_id, actor, None, "reported", "unassigned: outside every unit" if unassigned else None)
    if worker_id:
        _event(conn, incident_id, "dispatch", "reported", "assigned", f"to the {level}'s worker",
               {"worker_id": worker_id})
    audit.record(conn, who or actor, "incident.report", "incident", [incident_id],
                 after={"state": state, "version": 1, "worker_id": worker_id},
                 detail={"channel": report.channel, "category": report.category, "external_id": report.external_id,
                         "unassigned": unassigned})
    return get_incident(conn, incident_id), True


def _event(conn, incident_id: int, actor: str, from_state: str | None, to_state: str,
           note: str | None = None, data: dict | None = None) -> None:
    conn.execute(
        "INSERT INTO incident_event (incident_id, actor, from_state, to_state, note, data) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        [incident_id, actor, from_state, to_state, note, Jsonb(data or {})],
    )


def transition(conn: psycopg.Connection, incident_id: int, to_state: str, *, expected_version: int,
               actor: str, note: str | None = None, worker_id: int | None = None,
               who: str | Identity | None = None) -> dict:
    """Move an incident to `to_state`; Conflict when it changed since `expected_version`,
    IllegalTransition when the lifecycle does not allow the move. `actor` is the person named
    in the incident's history; `who`, the caller the audit log records (default: `actor`)."""
    if to_state not in STATES:
        raise InvalidInput(f"unknown state {to_state!r}: use one of {', '.join(STATES)}")
    check_text(actor, "actor")
    check_text(note or "", "note")
    row = conn.execute(
        "SELECT state, version, grid_id, community_id, category FROM incident WHERE id = %s FOR UPDATE",
        [incident_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no incident with id {incident_id}")
    state, version, grid_id, community_id, category = row
    if version != expected_version:
        raise Conflict(
            f"incident {incident_id} is at version {version}, but the change was made on version "
            f"{expected_version}: reload it and try again"
        )
    if to_state not in TRANSITIONS[state]:
        allowed = ", ".join(TRANSITIONS[state]) or "nothing"
        raise IllegalTransition(f"incident {incident_id} is {state}: it can go to {allowed}, not to {to_state}")
    sets = {"state": to_state, "version": version + 1}
    data: dict = {}
    if to_state == "assigned":
        if worker_id is None:
            worker_id, level = _dispatch(conn, {"grid": grid_id, "community": community_id},
                                         _escalates(conn, category))
            if worker_id is None:
                raise Conflict(f"incident {incident_id}: no worker is attached to its grid or community; "
                               "name one with worker_id")
        else:
            worker = conn.execute("SELECT active, unit_id, role FROM worker WHERE id = %s", [worker_id]).fetchone()
            if worker is None or not worker[0]:
                raise InvalidInput(f"no active worker with id {worker_id}")
            if worker[1] == grid_id and worker[2] in ("grid_worker", "grid_head"):
                level = "grid"
            elif worker[1] == community_id and worker[2] == "community_worker":
                level = "community"
            else:
                raise InvalidInput(
                    f"worker {worker_id} is a {worker[2]} of unit {worker[1]}: hand incident {incident_id} "
                    "to a worker or head of its grid, or a community worker of its community"
                )
        sets.update(worker_id=worker_id, handled_at_level=level, resolved_at=None, closed_at=None)
        data["worker_id"] = worker_id
    elif to_state == "resolved":
        sets["resolved_at"] = conn.execute("SELECT now()").fetchone()[0]
    elif to_state == "closed":
        sets["closed_at"] = conn.execute("SELECT now()").fetchone()[0]
    elif to_state == "reported":
        sets.update(worker_id=None, handled_at_level=None, resolved_at=None, closed_at=None)
    assignments = ", ".join(f"{k} = %s" for k in sets)
    conn.execute(f"UPDATE incident SET {assignments} WHERE id = %s", [*sets.values(), incident_id])
    _event(conn, incident_id, actor, state, to_state, note, data)
    audit.record(conn, who or actor, "incident.transition", "incident", [incident_id],
                 before={"state": state, "version": version},
                 after={"state": to_state, "version": version + 1, **data},
                 detail={"actor": actor, "note": note})
    return get_incident(conn, incident_id)


def get_incident(conn: psycopg.Connection, incident_id: int) -> dict:
    row = conn.execute(
        """
        SELECT i.id, i.external_id, i.category, c.name_zh, i.description, i.reported_at, i.received_at,
               i.channel, i.contact, i.photos, i.input_lon, i.input_lat, i.input_crs, ST_X(i.geom), ST_Y(i.geom),
               i.state, i.version, i.unassigned, i.handled_at_level, i.worker_id, w.name, i.deadline,
               i.resolved_at, i.closed_at, now(),
               i.street_id, i.community_id, i.grid_id, i.compound_id, i.neighbourhood_id, i.building_id
        FROM incident i JOIN incident_category c ON c.code = i.category
        LEFT JOIN worker w ON w.id = i.worker_id
        WHERE i.id = %s
        """,
        [incident_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no incident with id {incident_id}")
    (iid, external_id, category, category_zh, description, reported_at, received_at, channel, contact, photos,
     in_lon, in_lat, in_crs, lon, lat, state, version, unassigned, level, worker_id, worker_name, deadline,
     resolved_at, closed_at, now, *chain_ids) = row
    chain = {}
    for level_name, unit_id in zip(CHAIN, chain_ids):
        if unit_id is None:
            chain[level_name] = None
            continue
        unit = conn.execute(
            "SELECT code, name, version FROM unit_version WHERE unit_id = %s AND valid_from <= %s "
            "AND (valid_to IS NULL OR valid_to > %s)", [unit_id, reported_at, reported_at],
        ).fetchone() or conn.execute(
            "SELECT code, name, version FROM unit_version WHERE unit_id = %s ORDER BY version DESC LIMIT 1",
            [unit_id]).fetchone()
        chain[level_name] = {"id": unit_id, "code": unit[0], "name": unit[1], "version": unit[2]}
    events = [
        {"at": r[0], "actor": r[1], "from": r[2], "to": r[3], "note": r[4], "data": r[5]}
        for r in conn.execute(
            "SELECT at, actor, from_state, to_state, note, data FROM incident_event WHERE incident_id = %s ORDER BY id",
            [incident_id])
    ]
    finished = resolved_at or closed_at
    overdue = (state in OPEN_STATES and now > deadline) or (finished is not None and finished > deadline)
    return {
        "id": iid, "external_id": external_id, "category": category, "category_zh": category_zh,
        "description": description, "reported_at": reported_at, "received_at": received_at,
        "channel": channel, "contact": contact, "photos": photos,
        "input": {"lon": in_lon, "lat": in_lat, "crs": in_crs}, "wgs84": {"lon": lon, "lat": lat},
        "state": state, "version": version, "unassigned": unassigned, "handled_at_level": level,
        "worker": {"id": worker_id, "name": worker_name} if worker_id else None,
        "deadline": deadline, "overdue": bool(overdue), "resolved_at": resolved_at, "closed_at": closed_at,
        **chain, "events": events,
    }


def add_worker(conn: psycopg.Connection, name: str, role: str, unit_id: int, phone: str | None = None,
               who: str | Identity = "gridmap") -> dict:
    roles = {"grid_worker": "grid", "grid_head": "grid", "neighbourhood_head": "neighbourhood",
             "community_worker": "community"}
    if role not in roles:
        raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(roles)}")
    if not name.strip() or "\x00" in name:
        raise InvalidInput("a worker needs a name")
    unit = conn.execute(
        "SELECT level FROM unit_version WHERE unit_id = %s AND valid_to IS NULL", [unit_id]).fetchone()
    if unit is None:
        raise InvalidInput(f"no current unit with id {unit_id}")
    if unit[0] != roles[role]:
        raise InvalidInput(f"a {role} is attached to a {roles[role]}, and unit {unit_id} is a {unit[0]}")
    row = conn.execute(
        "INSERT INTO worker (name, role, unit_id, phone) VALUES (%s, %s, %s, %s) RETURNING id, created_at",
        [name.strip(), role, unit_id, phone],
    ).fetchone()
    audit.record(conn, who, "worker.add", "worker", [row[0]],
                 after={"name": name.strip(), "role": role, "unit_id": unit_id})
    return {"id": row[0], "name": name.strip(), "role": role, "unit_id": unit_id, "phone": phone,
            "active": True, "created_at": row[1]}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


STATS_LEVELS = ("street", "community", "grid", "compound", "neighbourhood")


def stats(conn: psycopg.Connection, level: str, start: datetime, end: datetime,
          median_conn: psycopg.Connection | None = None) -> dict:
    """Per unit of `level`: incidents reported in [start, end) by state and category, overdue,
    resolved, resolution rate (of those not rejected or duplicate) and median hours to resolve.
    Incidents count in the units they were assigned to, so closed ones keep their old units.

    One parallel scan counts by (unit, state, category); the medians, which PostgreSQL cannot
    compute in parallel, run at the same time on `median_conn` when one is given."""
    if level not in STATS_LEVELS:
        raise InvalidInput(f"stats are kept per {', '.join(STATS_LEVELS)}, not per {level!r}")
    if end <= start:
        raise InvalidInput("'to' must come after 'from'")
    col = f"{level}_id"
    window = "reported_at >= %(start)s AND reported_at < %(end)s"
    params = {"start": start, "end": end}
    median_sql = (
        f"SELECT {col}, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - reported_at)) "
        f"FROM incident WHERE {window} AND {col} IS NOT NULL AND resolved_at IS NOT NULL GROUP BY 1"
    )
    medians: dict = {}
    worker = None
    if median_conn is not None:
        import threading

        def run() -> None:
            medians.update(dict(median_conn.execute(median_sql, params).fetchall()))

        worker = threading.Thread(target=run)
        worker.start()
    rows = conn.execute(
        f"""
        SELECT {col}, state, category, count(*),
               count(*) FILTER (WHERE (state IN ('reported', 'assigned', 'in_progress') AND now() > deadline)
                                   OR coalesce(resolved_at, closed_at) > deadline)
        FROM incident WHERE {window} AND {col} IS NOT NULL GROUP BY 1, 2, 3
        """, params).fetchall()
    if worker is not None:
        worker.join()
    else:
        medians = dict(conn.execute(median_sql, params).fetchall())
    units: dict[int, dict] = {}
    for unit_id, state, category, n, overdue in rows:
        unit = units.setdefault(unit_id, {"unit_id": unit_id, "total": 0, "overdue": 0, "resolved": 0,
                                          "counted": 0, "by_state": {}, "by_category": {}})
        unit["total"] += n
        unit["overdue"] += overdue
        unit["resolved"] += n if state in ("resolved", "closed") else 0
        unit["counted"] += 0 if state in ("rejected", "duplicate") else n
        unit["by_state"][state] = unit["by_state"].get(state, 0) + n
        unit["by_category"][category] = unit["by_category"].get(category, 0) + n
    for unit in units.values():
        counted = unit.pop("counted")
        unit["resolution_rate"] = round(unit["resolved"] / counted, 4) if counted else None
        median_s = medians.get(unit["unit_id"])
        unit["median_hours_to_resolve"] = None if median_s is None else round(median_s / 3600, 2)
    if units:
        names = conn.execute(
            "SELECT DISTINCT ON (unit_id) unit_id, code, name FROM unit_version WHERE unit_id = ANY(%s) "
            "ORDER BY unit_id, version DESC", [list(units)]).fetchall()
        for unit_id, code, name in names:
            units[unit_id].update(code=code, name=name)
    unassigned = conn.execute(f"SELECT count(*) FROM incident WHERE {window} AND unassigned", params).fetchone()[0]
    return {"level": level, "from": start, "to": end, "unassigned": unassigned,
            "units": sorted(units.values(), key=lambda u: u.get("code", ""))}


def reassign_after_change(conn: psycopg.Connection, change_id: int) -> int:
    """Open incidents in units a change closed are re-assigned to the units now holding their
    point, in the same transaction, with an event each; closed ones keep the units they were
    handled in. Returns how many were re-assigned."""
    rows = conn.execute(
        f"""
        SELECT i.id, i.state, i.handled_at_level, i.category, {', '.join(f'i.{lv}_id' for lv in CHAIN)},
               ST_X(i.geom), ST_Y(i.geom)
        FROM incident i
        WHERE i.state IN ('reported', 'assigned', 'in_progress')
          AND EXISTS (SELECT 1 FROM unit_version v WHERE v.closed_by = %s AND v.unit_id IN
                      ({', '.join(f'i.{lv}_id' for lv in CHAIN)}))
        FOR UPDATE OF i
        """, [change_id]).fetchall()
    moved = 0
    for row in rows:
        incident_id, state, level, category = row[:4]
        old = dict(zip(CHAIN, row[4:10]))
        lon, lat = row[10], row[11]
        new = dict.fromkeys(CHAIN)
        for unit_level, unit_id in conn.execute(
                "SELECT DISTINCT ON (level) level, unit_id FROM unit_version WHERE valid_to IS NULL "
                "AND ST_Covers(geom, ST_SetSRID(ST_Point(%s, %s), 4326)) ORDER BY level, code", [lon, lat]):
            new[unit_level] = unit_id
        if new == old:
            continue
        sets = {f"{lv}_id": new[lv] for lv in CHAIN}
        sets["unassigned"] = new["street"] is None and new["community"] is None and new["grid"] is None
        data = {"from": {lv: old[lv] for lv in CHAIN if old[lv] != new[lv]},
                "to": {lv: new[lv] for lv in CHAIN if old[lv] != new[lv]}, "change_id": change_id}
        new_state = state
        moved_grid = new["grid"] != old["grid"] or new["community"] != old["community"]
        if moved_grid and (state == "reported" or (state == "assigned" and level in ("grid", "community"))):
            # the new grid's worker takes it (or the community's); with nobody there it waits
            worker_id, new_level = _dispatch(conn, {"grid": new["grid"], "community": new["community"]},
                                             _escalates(conn, category))
            sets.update(worker_id=worker_id, handled_at_level=new_level)
            new_state = "assigned" if worker_id else "reported"
            data["worker_id"] = worker_id
        sets["state"] = new_state
        assignments = ", ".join(f"{k} = %s" for k in sets)
        conn.execute(f"UPDATE incident SET {assignments}, version = version + 1 WHERE id = %s",
                     [*sets.values(), incident_id])
        _event(conn, incident_id, "boundary change", state, new_state, f"re-assigned after change {change_id}", data)
        moved += 1
    return moved
