"""Incidents in the database: categories, intake, reading (always for a viewer), lifecycle
updates and events, and the re-assignment query a boundary change runs.

Every reader takes the viewer and returns rows as that viewer may see them
(geo/security/privacy.py): a reporter's contact is never returned unmasked by accident.
A page of incidents is one query, whatever its size (and one more to count what matches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from geo.db.rows import dicts, one, value
from geo.errors import InvalidInput, NotFound
from geo.incidents.lifecycle import OPEN_STATES, STATE_ZH, overdue
from geo.locate.locator import Locator
from geo.security.identity import Identity
from geo.security.privacy import incident_for, text_for
from geo.units.codes import district_of
from geo.units.levels import LEVELS
from geo.units.model import Progress, no_progress

_ID_COLUMNS = [f"{lv}_id" for lv in LEVELS]


# ---- categories -----------------------------------------------------------------------------

def categories(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every category: code, name_zh, deadline_hours, escalate (handled by the community)."""
    return dicts(conn, "SELECT code, name_zh, deadline_hours, escalate FROM incident_category ORDER BY code")


def category(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    """One category, named by its code (any case), its Chinese name or an alias
    (incident_category_alias); InvalidInput naming the known ones otherwise."""
    found = one(conn, "SELECT code, name_zh, deadline_hours, escalate FROM incident_category "
                      "WHERE code = lower(%(n)s) OR name_zh = %(n)s "
                      "OR code = (SELECT category FROM incident_category_alias WHERE alias = %(n)s) "
                      "ORDER BY code = lower(%(n)s) DESC LIMIT 1", {"n": name.strip()})
    if found is None:
        known = [f"{c['code']} ({c['name_zh']})" for c in categories(conn)]
        raise InvalidInput(f"unknown category {name!r}: use a code or Chinese name, one of {', '.join(known)} "
                           "(GET /categories lists them with their aliases)")
    return found


def category_aliases(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Each category's aliases, by code."""
    out: dict[str, list[str]] = {}
    for r in dicts(conn, "SELECT category, alias FROM incident_category_alias ORDER BY category, alias"):
        out.setdefault(r["category"], []).append(r["alias"])
    return out


# ---- intake ---------------------------------------------------------------------------------

def clock(conn: psycopg.Connection) -> datetime:
    """The database's time now (not the transaction's start)."""
    at: datetime = value(conn, "SELECT clock_timestamp()")
    return at


def by_external_id(conn: psycopg.Connection, external_id: str) -> int | None:
    found: int | None = value(conn, "SELECT incident_id FROM incident_external_id WHERE external_id = %s",
                              [external_id])
    return found


def insert(conn: psycopg.Connection, fields: dict[str, Any], lon: float, lat: float) -> int | None:
    """Store a new incident (its point in WGS84; `fields` name its district and reported_at,
    its keys); None when its external id arrived at the same moment from elsewhere (that one
    stands). An external id is claimed first (incident_external_id: one incident per id), then
    the incident stored under the id it claimed."""
    fields = dict(fields)
    if fields.get("external_id"):
        claimed = one(conn, "INSERT INTO incident_external_id (external_id, incident_id, district, reported_at) "
                            "VALUES (%s, nextval('incident_id_seq'), %s, %s) "
                            "ON CONFLICT (external_id) DO NOTHING RETURNING incident_id",
                      [fields["external_id"], fields["district"], fields["reported_at"]])
        if claimed is None:
            return None
        fields["id"] = claimed["incident_id"]
    columns = list(fields)
    row = one(
        conn,
        f"INSERT INTO incident ({', '.join(columns)}, geom) "
        f"VALUES ({', '.join(['%s'] * len(columns))}, ST_SetSRID(ST_Point(%s, %s), 4326)) RETURNING id",
        [*(Jsonb(v) if k == "photos" else v for k, v in fields.items()), lon, lat],
    )
    assert row is not None
    return int(row["id"])


def add_event(conn: psycopg.Connection, incident_id: int, actor: str, from_state: str | None, to_state: str,
              note: str | None = None, data: dict[str, Any] | None = None) -> None:
    """One more event in an incident's history (filed under the incident's keys)."""
    conn.execute(
        "INSERT INTO incident_event (incident_id, district, incident_reported_at, actor, from_state, to_state, "
        "note, data) SELECT id, district, reported_at, %s, %s, %s, %s, %s FROM incident WHERE id = %s",
        [actor, from_state, to_state, note, Jsonb(data or {}), incident_id],
    )


Dispatcher = Callable[[int | None, int | None, str], tuple[int | None, str | None]]


def _no_worker(grid: int | None, community: int | None, category: str) -> tuple[int | None, str | None]:
    return None, None


def insert_generated(conn: psycopg.Connection, locator: Locator, columns: dict[str, np.ndarray],
                     progress: Progress = no_progress, dispatcher: Dispatcher = _no_worker) -> int:
    """Assign generated incidents to their units (in bulk), COPY them in and give each the history
    its state implies. `dispatcher(grid, community, category)` names the worker and level taking
    one (as intake would); an incident nobody could take stays `reported` (or its `rejected` or
    `duplicate`), since no other state is reachable without a worker. One outside every unit
    waits in the nearest street's queue, as intake puts it."""
    first_id: int = value(conn, "SELECT coalesce(max(id), 0) FROM incident")
    found = locator.locate(columns["lon"], columns["lat"])
    ids = {lv: np.where(found[lv] >= 0, locator.units[lv].ids[np.maximum(found[lv], 0)]
                        if len(locator.units[lv].ids) else 0, 0) for lv in LEVELS}
    n = len(columns["lon"])
    unassigned = (found["street"] < 0) & (found["community"] < 0) & (found["grid"] < 0)

    def code(level: str, i: int) -> str | None:
        at = int(found[level][i])
        return locator.units[level].codes[at] if at >= 0 else None

    cols = ("district", "category", "reported_at", "channel", "input_lon", "input_lat", "input_crs", "geom", "state",
            *(f"{lv}_id" for lv in LEVELS), "unassigned", "deadline", "resolved_at", "closed_at", "worker_id",
            "handled_at_level")
    with conn.cursor().copy(f"COPY incident ({', '.join(cols)}) FROM STDIN") as copy:
        for i in range(n):
            lon, lat = float(columns["lon"][i]), float(columns["lat"][i])
            state = str(columns["state"][i])
            worker, level = dispatcher(int(ids["grid"][i]) or None, int(ids["community"][i]) or None,
                                       str(columns["category"][i]))
            if state in ("rejected", "duplicate"):  # turned away at triage, before anyone took it
                worker, level = None, None
            elif worker is None:
                state = "reported"
            resolved = columns["resolved_at"][i]
            resolved_at = None if np.isnat(resolved) or state not in ("resolved", "closed") else \
                resolved.astype(datetime).isoformat() + "+00:00"
            copy.write_row((
                district_of({lv: code(lv, i) for lv in ("street", "community", "grid")}), columns["category"][i],
                columns["reported_at"][i].astype(datetime).isoformat() + "+00:00",
                columns["channel"][i], lon, lat, "EPSG:4326", f"SRID=4326;POINT({lon!r} {lat!r})", state,
                *((int(ids[lv][i]) or None) for lv in LEVELS), bool(unassigned[i]),
                columns["deadline"][i].astype(datetime).isoformat() + "+00:00",
                resolved_at, resolved_at if state == "closed" else None, worker, level,
            ))
            if i % 50_000 == 0:
                progress("incidents", i, n)
    progress("incidents", n, n)
    _queue_generated(conn, first_id)
    _histories(conn, first_id)
    return n


def _queue_generated(conn: psycopg.Connection, first_id: int) -> None:
    """Generated incidents outside every unit into the nearest street's queue, and its district."""
    conn.execute(f"""
        UPDATE incident i SET queue_street_id = q.unit_id, district = left(q.code, 6)
        FROM incident o CROSS JOIN LATERAL (
            SELECT unit_id, code FROM unit_version v
            WHERE v.level = 'street' AND v.valid_from <= o.reported_at
              AND (v.valid_to IS NULL OR v.valid_to > o.reported_at)
              AND ST_DWithin(v.geom::geography, o.geom::geography, {QUEUE_WITHIN_M})
            ORDER BY v.geom <-> o.geom, v.code LIMIT 1) q
        WHERE o.id > %(first)s AND o.unassigned AND i.id = o.id AND i.reported_at = o.reported_at
          AND q.code ~ '^[0-9]{{6}}'""", {"first": first_id})


def _histories(conn: psycopg.Connection, first_id: int) -> None:
    """Each generated incident's events, as the lifecycle would have written them: reported,
    handed to its worker a minute later, started, resolved and closed at its times (or
    rejected, or marked a duplicate, within the hour)."""
    conn.execute("""
        INSERT INTO incident_event (incident_id, district, incident_reported_at, at, actor, from_state, to_state,
                                    note, data)
        SELECT i.id, i.district, i.reported_at, e.at, e.actor, e.from_state, e.to_state, e.note, e.data
        FROM incident i LEFT JOIN worker w ON w.id = i.worker_id
        CROSS JOIN LATERAL (VALUES
            (0, i.reported_at, i.channel, NULL, 'reported',
             CASE WHEN i.unassigned THEN 'unassigned: outside every unit' END, '{}'::jsonb, true),
            (1, i.reported_at + interval '1 minute', 'dispatch', 'reported', 'assigned',
             'to the ' || i.handled_at_level || '''s worker', jsonb_build_object('worker_id', i.worker_id),
             i.worker_id IS NOT NULL),
            (2, i.reported_at + least(interval '30 minutes', (coalesce(i.resolved_at, now()) - i.reported_at) / 2),
             w.name, 'assigned', 'in_progress', NULL, '{}'::jsonb, i.state IN ('in_progress', 'resolved', 'closed')),
            (3, i.resolved_at, w.name, 'in_progress', 'resolved', NULL, '{}'::jsonb, i.state IN ('resolved', 'closed')),
            (4, i.closed_at, 'dispatch', 'resolved', 'closed', NULL, '{}'::jsonb, i.state = 'closed'),
            (5, i.reported_at + interval '40 minutes', 'dispatch', 'reported', i.state, NULL, '{}'::jsonb,
             i.state IN ('rejected', 'duplicate'))
        ) AS e(step, at, actor, from_state, to_state, note, data, happened)
        WHERE i.id > %s AND e.happened
        ORDER BY i.id, e.step""", [first_id])


# ---- lifecycle ------------------------------------------------------------------------------

def lock(conn: psycopg.Connection, incident_id: int) -> dict[str, Any]:
    """What a state change needs of an incident, locked; NotFound when there is none."""
    row = one(conn, "SELECT state, version, grid_id, community_id, category FROM incident WHERE id = %s FOR UPDATE",
              [incident_id])
    if row is None:
        raise NotFound(f"no incident with id {incident_id}")
    return row


def update(conn: psycopg.Connection, incident_id: int, sets: dict[str, Any], bump_version: bool = False) -> None:
    assignments = ", ".join(f"{k} = %s" for k in sets) + (", version = version + 1" if bump_version else "")
    conn.execute(f"UPDATE incident SET {assignments} WHERE id = %s", [*sets.values(), incident_id])



def by_evaluation_token(conn: psycopg.Connection, token_hash: str) -> dict[str, Any] | None:
    """The incident a reporter's token rates, locked: id, state, version, worker, evaluation."""
    return one(conn, "SELECT id, state, version, worker_id, evaluation FROM incident "
                     "WHERE evaluation_token_hash = %s FOR UPDATE", [token_hash])


def record_evaluation(conn: psycopg.Connection, incident_id: int, rating: str, comment: str | None) -> None:
    conn.execute("UPDATE incident SET evaluation = %s, evaluation_comment = %s, evaluated_at = clock_timestamp() "
                 "WHERE id = %s", [rating, comment, incident_id])


def awaiting_evaluation(conn: psycopg.Connection, resolved_before: datetime, limit: int = 1000) -> list[dict[str, Any]]:
    """Resolved incidents nobody rated, resolved before a time (id, version), oldest first."""
    return dicts(conn, "SELECT id, version FROM incident WHERE state = 'resolved' AND evaluation IS NULL "
                       "AND resolved_at < %s ORDER BY resolved_at LIMIT %s", [resolved_before, limit])


def state_of(conn: psycopg.Connection, incident_id: int) -> str:
    found: str = value(conn, "SELECT state FROM incident WHERE id = %s", [incident_id])
    return found


def duplicate_link(conn: psycopg.Connection, incident_id: int) -> dict[str, Any] | None:
    """An incident's id and what it repeats (None when there is no such incident)."""
    return one(conn, "SELECT id, duplicate_of FROM incident WHERE id = %s", [incident_id])


def escalates(conn: psycopg.Connection, code: str) -> bool:
    return bool(value(conn, "SELECT escalate FROM incident_category WHERE code = %s", [code]))


def open_in_closed_units(conn: psycopg.Connection, change_id: int) -> list[dict[str, Any]]:
    """Open incidents lying in a unit the change closed, locked, with their chain and point."""
    in_closed = ", ".join(f"i.{c}" for c in _ID_COLUMNS)
    return dicts(conn, f"""
        SELECT i.id, i.state, i.handled_at_level, i.category, {in_closed}, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat
        FROM incident i
        WHERE i.state = ANY(%s)
          AND EXISTS (SELECT 1 FROM unit_version v WHERE v.closed_by = %s AND v.unit_id IN ({in_closed}))
        FOR UPDATE OF i
        """, [list(OPEN_STATES), change_id])


QUEUE_WITHIN_M = 5000  # a report outside every unit waits for the dispatchers of a street this near


def nearest_street(conn: psycopg.Connection, lon: float, lat: float, at: datetime) -> dict[str, Any] | None:
    """The street valid at `at` nearest a point, within QUEUE_WITHIN_M (unit_id, code, name,
    distance_m); None when there is none."""
    return one(conn, """
        SELECT unit_id, code, name, ST_Distance(geom::geography, p::geography) AS distance_m
        FROM unit_version, ST_SetSRID(ST_Point(%(lon)s, %(lat)s), 4326) AS p
        WHERE level = 'street' AND valid_from <= %(at)s AND (valid_to IS NULL OR valid_to > %(at)s)
          AND ST_DWithin(geom::geography, p::geography, %(within)s)
        ORDER BY geom <-> p, code LIMIT 1""", {"lon": lon, "lat": lat, "at": at, "within": QUEUE_WITHIN_M})


SIMILAR_WITHIN_M = 50  # a report like another: the same category, this near,
SIMILAR_DAYS = 7  # and reported (or closed) within this many days of it


def similar(conn: psycopg.Connection, incident_id: int, *, viewer: Identity,
            within_m: float = SIMILAR_WITHIN_M, days: float = SIMILAR_DAYS) -> list[dict[str, Any]]:
    """Incidents an incident may repeat: the same category within `within_m`, open, or closed
    within `days` of its report, reported up to `days` before it; nearest first (id, state,
    reported_at, distance_m, description as `viewer` may see it). Not itself, not one already
    marked a duplicate."""
    rows = dicts(conn, """
        WITH me AS (SELECT id, category, geom, reported_at FROM incident WHERE id = %(id)s)
        SELECT o.id, o.state, o.reported_at, o.description,
               round(ST_Distance(o.geom::geography, me.geom::geography)::numeric, 1)::float AS distance_m
        FROM me JOIN incident o ON o.category = me.category AND o.id <> me.id
        WHERE ST_DWithin(o.geom::geography, me.geom::geography, %(within)s)
          AND o.reported_at BETWEEN me.reported_at - %(days)s * interval '1 day' AND me.reported_at
          AND o.state <> 'duplicate'
          AND (o.state = ANY(%(open)s)
               OR coalesce(o.closed_at, o.resolved_at, o.reported_at) >= me.reported_at - %(days)s * interval '1 day')
        ORDER BY distance_m, o.id LIMIT 20""",
                 {"id": incident_id, "within": within_m, "days": days, "open": list(OPEN_STATES)})
    for r in rows:
        r["description"] = text_for(r["description"], viewer)
    return rows


def units_covering(conn: psycopg.Connection, lon: float, lat: float) -> dict[str, int | None]:
    """The current unit of each level covering a point (the lower code where two do)."""
    found: dict[str, int | None] = dict.fromkeys(LEVELS)
    for row in dicts(conn, "SELECT DISTINCT ON (level) level, unit_id FROM unit_version WHERE valid_to IS NULL "
                           "AND ST_Covers(geom, ST_SetSRID(ST_Point(%s, %s), 4326)) ORDER BY level, code", [lon, lat]):
        found[row["level"]] = row["unit_id"]
    return found


def retired_place(conn: psycopg.Connection, incident_id: int) -> dict[str, Any] | None:
    """An incident's chain and point when one of its units has no current version any more
    (a boundary change retired it); None when every unit it names is current."""
    ids = ", ".join(f"i.{c}" for c in _ID_COLUMNS)
    return one(conn, f"""
        SELECT {ids}, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat
        FROM incident i
        WHERE i.id = %s
          AND EXISTS (SELECT 1 FROM unnest(ARRAY[{ids}]) AS u(unit_id)
                      WHERE u.unit_id IS NOT NULL AND NOT EXISTS (
                          SELECT 1 FROM unit_version v WHERE v.unit_id = u.unit_id AND v.valid_to IS NULL))
        """, [incident_id])


def latest_change_at(conn: psycopg.Connection) -> datetime | None:
    """When the newest change set was made (None: no change yet)."""
    at: datetime | None = value(conn, "SELECT max(created_at) FROM change_set")
    return at


# ---- reading --------------------------------------------------------------------------------

@dataclass
class Filter:
    """Which incidents a list holds."""

    ids: Sequence[int] | None = None
    states: Sequence[str] | None = None
    category: str | None = None
    categories: Sequence[str] | None = None  # any of these
    unit_id: int | None = None  # in this unit, at any level (a street: and the reports in its queue)
    unassigned: bool | None = None
    start: datetime | None = None  # reported at or after
    end: datetime | None = None  # reported at or before

    def where(self) -> tuple[str, list[Any]]:
        """SQL over `incident` for this filter, and its parameters."""
        filters = [
            ("id = ANY(%s)", None if self.ids is None else list(self.ids)),
            ("state = ANY(%s)", None if self.states is None else list(self.states)),
            ("category = %s", self.category),
            ("category = ANY(%s)", None if self.categories is None else list(self.categories)),
            (f"%s IN ({', '.join(_ID_COLUMNS)}, queue_street_id)", self.unit_id),
            ("unassigned = %s", self.unassigned),
            ("reported_at >= %s", self.start),
            ("reported_at <= %s", self.end),
        ]
        given = [(sql, v) for sql, v in filters if v is not None]
        return " AND ".join(["true", *(sql for sql, _ in given)]), [v for _, v in given]


def page(conn: psycopg.Connection, selection: Filter, *, viewer: Identity, limit: int, offset: int = 0,
         with_total: bool = True) -> tuple[int | None, list[dict[str, Any]]]:
    """Incidents newest first (and how many match), as `viewer` may see them: one query for
    the page, whatever its size (and one to count, when asked)."""
    where, params = selection.where()
    total = value(conn, f"SELECT count(*) FROM incident WHERE {where}", params) if with_total else None
    rows = dicts(conn, _WHOLE.format(incidents=f"(SELECT * FROM incident WHERE {where} "
                                               "ORDER BY reported_at DESC, id DESC LIMIT %s OFFSET %s)"),
                 [*params, limit, offset])
    return total, [incident_for(_incident(r), viewer) for r in rows]


def get(conn: psycopg.Connection, incident_id: int, *, viewer: Identity) -> dict[str, Any]:
    """One incident with its units (as they were when reported), worker and history."""
    found = get_many(conn, [incident_id], viewer=viewer)
    if not found:
        raise NotFound(f"no incident with id {incident_id}")
    return found[0]


def get_many(conn: psycopg.Connection, ids: Sequence[int], *, viewer: Identity) -> list[dict[str, Any]]:
    """Incidents in the order of `ids` (unknown ids left out), in one query."""
    if not ids:
        return []
    rows = dicts(conn, _WHOLE.format(incidents="(SELECT * FROM incident WHERE id = ANY(%s))"), [list(ids)])
    by_id = {r["id"]: _incident(r) for r in rows}
    return [incident_for(by_id[i], viewer) for i in ids if i in by_id]


# An incident whole, from the rows `incidents` names: its category's name, its worker, each of its
# units as it was when the incident was reported (or its latest version if it did not exist then),
# and its events as arrays in the order they happened.
_UNIT_AT_REPORT = """(SELECT json_build_object('id', v.unit_id, 'code', v.code, 'name', v.name, 'version', v.version)
    FROM unit_version v WHERE v.unit_id = i.{level}_id
    ORDER BY (v.valid_from <= i.reported_at AND (v.valid_to IS NULL OR v.valid_to > i.reported_at)) DESC,
             v.version DESC LIMIT 1) AS {level}"""
_WHOLE = """
    SELECT i.id, i.district, i.external_id, i.category, c.name_zh AS category_zh, i.description, i.address,
           i.reported_at,
           i.received_at, i.channel, i.contact, i.photos, i.input_lon, i.input_lat, i.input_crs,
           ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.state, i.version, i.unassigned, i.handled_at_level,
           i.worker_id, w.name AS worker_name, i.deadline, i.resolved_at, i.closed_at, now() AS now,
           i.evaluation, i.evaluation_comment, i.evaluated_at,
           i.duplicate_of, (SELECT array_agg(d.id ORDER BY d.id) FROM incident d WHERE d.duplicate_of = i.id)
               AS duplicates,
           """ + ",\n           ".join(_UNIT_AT_REPORT.format(level=lv) for lv in (*LEVELS, "queue_street")) + """,
           e.ats, e.actors, e.froms, e.tos, e.notes, e.datas
    FROM {incidents} i JOIN incident_category c ON c.code = i.category
    LEFT JOIN worker w ON w.id = i.worker_id
    LEFT JOIN LATERAL (
        SELECT array_agg(e.at ORDER BY e.id) AS ats, array_agg(e.actor ORDER BY e.id) AS actors,
               array_agg(e.from_state ORDER BY e.id) AS froms, array_agg(e.to_state ORDER BY e.id) AS tos,
               array_agg(e.note ORDER BY e.id) AS notes, array_agg(e.data ORDER BY e.id) AS datas
        FROM incident_event e WHERE e.incident_id = i.id) e ON true
    ORDER BY i.reported_at DESC, i.id DESC
"""


def updates(conn: psycopg.Connection, start: datetime | None, end: datetime | None, limit: int, *,
            viewer: Identity) -> list[dict[str, Any]]:
    """Every change of state in [start, end), oldest first (at most `limit`): its id, the
    incident's, when, from and to which state, its note (as `viewer` may see it)."""
    rows = dicts(conn, """
        SELECT id, incident_id, at, from_state, to_state, note FROM incident_event
        WHERE (%(start)s::timestamptz IS NULL OR at >= %(start)s) AND (%(end)s::timestamptz IS NULL OR at < %(end)s)
        ORDER BY at, id LIMIT %(limit)s""", {"start": start, "end": end, "limit": limit})
    for r in rows:
        r["label"] = f"{STATE_ZH.get(r['to_state'], r['to_state'])} {r['to_state']}"
        r["note"] = text_for(r["note"], viewer)
    return rows


def _incident(r: dict[str, Any]) -> dict[str, Any]:
    events = [{"at": at, "actor": actor, "from": from_, "to": to, "note": note, "data": data}
              for at, actor, from_, to, note, data in zip(r["ats"] or [], r["actors"] or [], r["froms"] or [],
                                                          r["tos"] or [], r["notes"] or [], r["datas"] or [],
                                                          strict=True)]
    return {
        "id": r["id"], "district": r["district"], "external_id": r["external_id"], "category": r["category"],
        "category_zh": r["category_zh"],
        "description": r["description"], "address": r["address"], "reported_at": r["reported_at"],
        "received_at": r["received_at"],
        "channel": r["channel"], "contact": r["contact"], "photos": r["photos"],
        "input": {"lon": r["input_lon"], "lat": r["input_lat"], "crs": r["input_crs"]},
        "wgs84": {"lon": r["lon"], "lat": r["lat"]},
        "state": r["state"], "version": r["version"], "unassigned": r["unassigned"],
        "handled_at_level": r["handled_at_level"],
        "worker": {"id": r["worker_id"], "name": r["worker_name"]} if r["worker_id"] else None,
        "deadline": r["deadline"],
        "overdue": overdue(r["state"], r["now"], r["deadline"], r["resolved_at"] or r["closed_at"]),
        "resolved_at": r["resolved_at"], "closed_at": r["closed_at"],
        "duplicate_of": r["duplicate_of"], "duplicates": r["duplicates"] or [],
        "evaluation": None if r["evaluation"] is None else {
            "rating": r["evaluation"], "comment": r["evaluation_comment"], "at": r["evaluated_at"]},
        **{lv: r[lv] for lv in LEVELS}, "queue_street": r["queue_street"], "events": events,
    }
