"""/incidents and /stats: reports in, assigned to their units, dispatched, followed
to resolution, and counted. Every incident and worker comes back as the caller may see it
(contacts masked without the `contact` permission: the readers in geo/db decide)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from api.answers import Shared
from api.deps import (
    Conn,
    DispatchCaller,
    Page,
    ReadCaller,
    ReportCaller,
    encoded,
    encoded_rows,
    paging,
    spare_connection,
    time_of,
)
from api.security import require
from geo import settings as config
from geo.db import incidents, pool, replica, stats
from geo.errors import InvalidInput, NotFound
from geo.incidents import export, lifecycle
from geo.incidents.stats import window as incident_window
from geo.units import levels
from geo.usecases import incidents as intake
from geo.usecases import statistics

router = APIRouter(tags=["incidents"], dependencies=[require("read")])


class ReportIn(BaseModel):
    """A report: where (lon/lat in `crs`), what (category, description, photos), who and when."""

    model_config = ConfigDict(extra="forbid")
    category: str = Field(..., max_length=64, description="a code (manhole, garbage, noise), its Chinese name "
                          "(井盖缺失) or an alias (井盖): GET /categories")
    lon: float
    lat: float
    crs: str = Field("wgs84", max_length=64, description="wgs84, gcj02 (WeChat, Amap), bd09, cgcs2000, EPSG:nnnn")
    reported_at: datetime | None = Field(None, description="when it was reported; default now")
    description: str = Field("", max_length=lifecycle.MAX_DESCRIPTION)
    channel: str = Field("app", description="hotline, wechat, app, patrol, rider, web, open311, import")
    contact: str | None = Field(None, max_length=200)
    photos: list[str] = Field(default_factory=list, max_length=lifecycle.MAX_PHOTOS)
    external_id: str | None = Field(None, max_length=200, description="the source system's id: "
                                    "a report already stored under it is not stored twice")
    address: str | None = Field(None, max_length=lifecycle.MAX_ADDRESS, description="the place as the reporter "
                                "wrote it (kept beside the point, not used to place it)")


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(..., description="assigned, in_progress, resolved, closed, rejected, duplicate, reported")
    version: int = Field(..., ge=1, description="the incident's version the change is based on (409 if stale)")
    actor: str = Field(..., min_length=1, max_length=200)
    note: str | None = Field(None, max_length=5000)
    worker_id: int | None = Field(None, description="with to=assigned: the worker to hand it to")
    duplicate_of: int | None = Field(None, description="with to=duplicate: the incident it repeats (linked both "
                                                        "ways: that one lists it in `duplicates`)")


@router.post("/incidents", status_code=201, summary="Report an incident; it is assigned and dispatched at once")
def report(body: ReportIn, conn: Conn, who: ReportCaller) -> JSONResponse:
    item = lifecycle.Report(**body.model_dump())
    with conn.transaction():
        incident, created = intake.report_incident(conn, item, intake.locator_on(conn), actor=body.channel, who=who)
    token = incident.pop("evaluation_token", None)
    if token:  # for the reporter: where they rate the result once it is resolved
        incident["evaluation_url"] = f"/evaluate/{token}"
    return JSONResponse(jsonable_encoder(incident), status_code=201 if created else 200)


@router.get("/incidents/export.{fmt}", summary="Incidents as CSV or XLSX, Chinese headers, newest first",
            response_class=Response)
def incidents_export(
    fmt: str,
    conn: Conn,
    who: ReadCaller,
    state: Annotated[str | None, Query()] = None,
    unit_id: Annotated[int | None, Query(description="only incidents in this unit (any level)")] = None,
    unassigned: Annotated[bool | None, Query()] = None,
    category: Annotated[str | None, Query()] = None,
    from_: Annotated[str | None, Query(alias="from", description="reported at or after (ISO 8601)")] = None,
    to: Annotated[str | None, Query(description="reported at or before (ISO 8601)")] = None,
) -> Response:
    selection = incidents.Filter(states=None if state is None else [lifecycle.check_state(state)],
                                 unit_id=unit_id, unassigned=unassigned,
                                 category=None if category is None else incidents.category(conn, category)["code"],
                                 start=time_of(from_), end=time_of(to))
    total, items = incidents.page(conn, selection, viewer=who, limit=EXPORT_MAX)
    if total is not None and total > EXPORT_MAX:
        raise InvalidInput(f"{total:,} incidents match: an export holds at most {EXPORT_MAX:,}; narrow it with "
                           "from/to, unit_id, state or category")
    return _export(export.incident_rows(items, config.get().tz), fmt, "incidents")


@router.get("/incidents/{incident_id}", summary="One incident with its units, worker and history")
def get_incident(incident_id: int, conn: Conn, who: ReadCaller) -> dict[str, Any]:
    return encoded(incidents.get(conn, incident_id, viewer=who))


@router.get("/incidents", summary="Incidents, newest first")
def list_incidents(
    conn: Conn,
    who: ReadCaller,
    page: Annotated[Page, paging(100, 1000)],
    state: Annotated[str | None, Query()] = None,
    unit_id: Annotated[int | None, Query(description="only incidents in this unit (any level)")] = None,
    unassigned: Annotated[bool | None, Query()] = None,
) -> dict[str, Any]:
    selection = incidents.Filter(states=None if state is None else [lifecycle.check_state(state)],
                                 unit_id=unit_id, unassigned=unassigned)
    total, items = incidents.page(conn, selection, viewer=who, limit=page.limit, offset=page.offset)
    return {"total": total, "items": jsonable_encoder(items)}


@router.post("/incidents/{incident_id}/transitions", summary="Move an incident through its lifecycle")
def move(incident_id: int, body: TransitionIn, conn: Conn, who: DispatchCaller) -> dict[str, Any]:
    with conn.transaction():
        incident = intake.transition(conn, incident_id, body.to, expected_version=body.version,
                                     actor=body.actor, note=body.note, worker_id=body.worker_id, who=who,
                                     duplicate_of=body.duplicate_of)
    return encoded(incident)


@router.get("/incidents/{incident_id}/similar", summary="Reports an incident may repeat: same category, near, recent")
def similar(incident_id: int, conn: Conn, who: ReadCaller,
            within_m: Annotated[float, Query(gt=0, le=1000, description="how near, metres")] = 50,
            days: Annotated[float, Query(gt=0, le=90, description="how recent, days")] = 7) -> list[dict[str, Any]]:
    incidents.get(conn, incident_id, viewer=who)  # 404 for an unknown one
    return encoded_rows(incidents.similar(conn, incident_id, viewer=who, within_m=within_m, days=days))


@router.get("/categories", summary="Incident categories: code, Chinese name, deadline, escalation, aliases")
def list_categories(conn: Conn) -> list[dict[str, Any]]:
    """A report names its category by any of these: the code, the Chinese name or an alias."""
    aliases = incidents.category_aliases(conn)
    return [{**c, "aliases": aliases.get(c["code"], [])} for c in incidents.categories(conn)]


@router.get("/stats", summary="Incidents per unit: by state and category, overdue, time to resolve",
            response_class=Response, responses={200: {"content": {"application/json": {}}}})
def incident_stats(
    from_: Annotated[str | None, Query(alias="from", description="start of the window (ISO 8601), inclusive; "
                                                                 "default 30 days before `to`")] = None,
    to: Annotated[str | None, Query(description="end of the window (ISO 8601), exclusive; default now")] = None,
    level: Annotated[str, Query(description="street, community, grid, compound or neighbourhood")] = "grid",
    retired: Annotated[Literal["rollup", "separate"], Query(
        description="rollup: a retired unit's incidents count in the current units it became (by lineage; "
                    "after a split, in the one holding each incident's point); separate: retired units "
                    "are listed apart, marked `retired`")] = "rollup",
    by: Annotated[Literal["window", "month"], Query(
        description="window: one answer for the window; month: one per month of it (`months`)")] = "window",
) -> Response:
    lv = levels.parse_level(level)
    given = time_of(from_), time_of(to)
    incident_window(*given, datetime.now(UTC))  # a bad window is refused before anything is shared

    def compute() -> bytes:
        answer = _stats_answer(lv, given, retired, by)
        return json.dumps(encoded(answer), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()

    shared = _shared_stats()
    body, age = shared.get((lv, *given, retired, by), compute)
    headers = {"Cache-Control": f"max-age={shared.ttl_s:g}", "Age": str(int(age))} if shared.ttl_s > 0 else {}
    return Response(body, media_type="application/json", headers=headers)


def _stats_answer(lv: str, given: tuple[datetime | None, datetime | None], retired: str, by: str) -> dict[str, Any]:
    """/stats's answer for a window (`given`: from and to as asked), whole or month by month."""
    start, end = incident_window(*given, datetime.now(UTC))
    if by == "month":
        return replica.read(lambda c: statistics.by_month(c, lv, start, end, retired))
    # connections are taken here, not as dependencies: a request answered from the replica holds
    # none of the primary's, and a caller waiting for another's answer holds none at all
    if replica.usable():  # a read that may lag: on the streaming replica, medians on the same connection
        return replica.read(lambda c: stats.incident_stats(c, lv, start, end, retired=retired))
    with pool.pool().connection() as conn, contextmanager(spare_connection)() as spare:
        # medians run in parallel on the spare connection, when one was free
        return stats.incident_stats(conn, lv, start, end, median_conn=spare, retired=retired)


EXPORT_MAX = 100_000  # incidents in one export


def _export(table: export.Table, fmt: str, name: str) -> Response:
    if fmt == "csv":
        return Response(export.csv_bytes(table), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if fmt == "xlsx":
        return Response(export.xlsx_bytes(table, name),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
    raise NotFound(f"exports are .csv or .xlsx, not .{fmt}")


@router.get("/stats/export.{fmt}", summary="Incident statistics as CSV or XLSX, Chinese headers",
            response_class=Response)
def stats_export(
    fmt: str,
    from_: Annotated[str | None, Query(alias="from", description="start of the window (ISO 8601)")] = None,
    to: Annotated[str | None, Query(description="end of the window (ISO 8601), exclusive; default now")] = None,
    level: Annotated[str, Query(description="street, community, grid, compound or neighbourhood")] = "grid",
    retired: Annotated[Literal["rollup", "separate"], Query()] = "rollup",
    by: Annotated[Literal["window", "month"], Query(description="month: a row per unit and month")] = "window",
) -> Response:
    lv = levels.parse_level(level)
    answer = _stats_answer(lv, (time_of(from_), time_of(to)), retired, by)
    parts = [(m["month"], m) for m in answer["months"]] if by == "month" else [(None, answer)]
    return _export(export.stats_rows(parts), fmt, f"stats-{lv}")


_STATS_KEPT_BYTES = 64 << 20
_stats_answers: Shared | None = None


def _shared_stats() -> Shared:
    """This worker's /stats answers: one computation for callers asking the same at once, kept
    GRIDMAP_STATS_CACHE_SECONDS (0: not kept, every answer computed after its request arrived)."""
    global _stats_answers
    ttl = config.get().stats_cache_seconds
    if _stats_answers is None or _stats_answers.ttl_s != ttl:
        _stats_answers = Shared(ttl, _STATS_KEPT_BYTES)
    return _stats_answers
