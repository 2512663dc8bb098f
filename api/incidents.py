"""/incidents and /workers: reports in, assigned to their units, dispatched, followed to resolution."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from typing import Callable, Optional

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field

from api import auth, db, locators
from geo import incidents, levels, privacy, store
from geo.auth import Identity
from geo.errors import InvalidInput
from geo.locate import Locator

router = APIRouter(tags=["incidents"], dependencies=[auth.require("read")])


def shown(incident: dict, who: Identity) -> dict:
    """The incident as `who` may see it: the reporter's contact masked without `contact`."""
    return incident if who.can("contact") else privacy.incident(incident)


class ReportIn(BaseModel):
    """A report: where (lon/lat in `crs`), what (category, description, photos), who and when."""

    model_config = ConfigDict(extra="forbid")
    category: str = Field(..., max_length=64, description="e.g. manhole, garbage, noise (see incident_category)")
    lon: float
    lat: float
    crs: str = Field("wgs84", max_length=64, description="wgs84, gcj02 (WeChat, Amap), bd09, cgcs2000, EPSG:nnnn")
    reported_at: Optional[datetime] = Field(None, description="when it was reported; default now")
    description: str = Field("", max_length=incidents.MAX_DESCRIPTION)
    channel: str = Field("app", description="hotline, wechat, app, patrol, rider, web, open311, import")
    contact: Optional[str] = Field(None, max_length=200)
    photos: list[str] = Field(default_factory=list, max_length=incidents.MAX_PHOTOS)
    external_id: Optional[str] = Field(None, max_length=200, description="the source system's id: "
                                       "a report already stored under it is not stored twice")


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(..., description="assigned, in_progress, resolved, closed, rejected, duplicate, reported")
    version: int = Field(..., ge=1, description="the incident's version the change is based on (409 if stale)")
    actor: str = Field(..., min_length=1, max_length=200)
    note: Optional[str] = Field(None, max_length=5000)
    worker_id: Optional[int] = Field(None, description="with to=assigned: the worker to hand it to")


class WorkerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100)
    role: str = Field(..., description="grid_worker, grid_head, neighbourhood_head, community_worker")
    unit_id: int
    phone: Optional[str] = Field(None, max_length=40)


def locator_on(conn) -> Callable[[datetime], Locator]:
    """For a report stored on `conn`: the boundaries valid when it was made (the current index
    unless they changed since), looked up on that same connection, so an intake never holds
    one pooled connection while it waits for another."""

    def pick(when: datetime) -> Locator:
        changed = conn.execute("SELECT max(created_at) FROM change_set").fetchone()[0]
        if changed is None or changed <= when:
            return locators.current(conn)
        return locators.as_of(when, conn)

    return pick


@router.post("/incidents", status_code=201, summary="Report an incident; it is assigned and dispatched at once")
def report(body: ReportIn, who: Identity = auth.require("report")) -> JSONResponse:
    item = incidents.Report(**body.model_dump())
    with db.pool().connection() as conn, conn.transaction():
        incident, created = incidents.report_incident(conn, item, locator_on(conn), actor=f"{body.channel}", who=who)
    return JSONResponse(jsonable_encoder(shown(incident, who)), status_code=201 if created else 200)


@router.get("/incidents/{incident_id}", summary="One incident with its units, worker and history")
def get_incident(incident_id: int, who: Identity = auth.require("read")) -> dict:
    with db.pool().connection() as conn:
        return jsonable_encoder(shown(incidents.get_incident(conn, incident_id), who))


@router.get("/incidents", summary="Incidents, newest first")
def list_incidents(
    state: Optional[str] = Query(None),
    unit_id: Optional[int] = Query(None, description="only incidents in this unit (any level)"),
    unassigned: Optional[bool] = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    who: Identity = auth.require("read"),
) -> dict:
    clauses, params = [], []
    if state is not None:
        if state not in incidents.STATES:
            raise InvalidInput(f"unknown state {state!r}: use one of {', '.join(incidents.STATES)}")
        clauses.append("state = %s")
        params.append(state)
    if unit_id is not None:
        clauses.append("%s IN (street_id, community_id, grid_id, compound_id, neighbourhood_id, building_id)")
        params.append(unit_id)
    if unassigned is not None:
        clauses.append("unassigned = %s")
        params.append(unassigned)
    where = " AND ".join(clauses) or "true"
    with db.pool().connection() as conn:
        total = conn.execute(f"SELECT count(*) FROM incident WHERE {where}", params).fetchone()[0]
        ids = [r[0] for r in conn.execute(
            f"SELECT id FROM incident WHERE {where} ORDER BY reported_at DESC, id DESC LIMIT %s OFFSET %s",
            [*params, limit, offset])]
        items = [shown(incidents.get_incident(conn, i), who) for i in ids]
    return {"total": total, "items": jsonable_encoder(items)}


@router.post("/incidents/{incident_id}/transitions", summary="Move an incident through its lifecycle")
def move(incident_id: int, body: TransitionIn, who: Identity = auth.require("dispatch")) -> dict:
    with db.pool().connection() as conn, conn.transaction():
        incident = incidents.transition(conn, incident_id, body.to, expected_version=body.version,
                                        actor=body.actor, note=body.note, worker_id=body.worker_id, who=who)
    return jsonable_encoder(shown(incident, who))


@router.post("/workers", status_code=201, summary="Attach a worker to a grid, community or neighbourhood")
def add_worker(body: WorkerIn, who: Identity = auth.require("dispatch")) -> dict:
    with db.pool().connection() as conn, conn.transaction():
        return jsonable_encoder(incidents.add_worker(conn, body.name, body.role, body.unit_id, body.phone, who=who))


@router.get("/workers", summary="Workers attached to a unit")
def list_workers(unit_id: int, who: Identity = auth.require("read")) -> list[dict]:
    with db.pool().connection() as conn:
        rows = conn.execute(
            "SELECT id, name, role, unit_id, phone, active FROM worker WHERE unit_id = %s ORDER BY id", [unit_id]
        ).fetchall()
    workers = [dict(zip(("id", "name", "role", "unit_id", "phone", "active"), r)) for r in rows]
    if not who.can("contact"):
        workers = [w | {"phone": privacy.mask_contact(w["phone"])} for w in workers]
    return workers


@router.get("/stats", summary="Incidents per unit: by state and category, overdue, time to resolve")
def incident_stats(
    level: str = Query("grid", description="street, community, grid, compound or neighbourhood"),
    from_: str = Query(..., alias="from", description="start of the window (ISO 8601), inclusive"),
    to: str = Query(..., description="end of the window (ISO 8601), exclusive"),
) -> dict:
    lv = levels.parse_level(level)
    start, end = store.parse_time(from_), store.parse_time(to)
    if start is None or end is None:
        raise InvalidInput("give both 'from' and 'to' as ISO 8601 times, e.g. from=2026-01-01&to=2026-02-01")
    with db.pool().connection() as conn, ExitStack() as extra:
        try:  # medians in parallel on a second connection, only if one is free right now:
            median_conn = extra.enter_context(db.pool().connection(timeout=0.05))
        except PoolTimeout:  # waiting for it while holding `conn` could starve the pool
            median_conn = None
        return jsonable_encoder(incidents.stats(conn, lv, start, end, median_conn=median_conn))
