"""An Open311 GeoReport v2 facade over the incidents, so existing civic-reporting clients can
talk to gridmap: services (the incident categories), requests (POST and GET), one request, and
the servicerequestupdates extension (every status change since a time), each in JSON or XML
(`.json` or `.xml`). The grid chain travels in `extended_attributes`.

A key may come as GeoReport's `api_key` (a form field, a JSON field or a query parameter) as well
as in the headers gridmap reads elsewhere. `jurisdiction_id` is accepted and not needed: one
gridmap serves one jurisdiction."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api import georeport
from api.deps import Conn, ReadCaller, ReportCaller, time_of
from api.errors import OPEN311_PREFIX
from api.security import KEY_IN_REQUEST, require
from geo.db import incidents, pool
from geo.errors import GridmapError, NotFound
from geo.incidents.lifecycle import CLOSED_STATES, OPEN_STATES, Report
from geo.units.levels import LEVELS
from geo.usecases import incidents as intake

DEFAULT_DAYS = 90  # a list without ids or dates: the requests of the last 90 days (the spec's default)
MAX_LIST = 1000
_CJK = re.compile(r"[\u3400-\u9fff]")


async def _fields(request: Request) -> dict[str, Any]:
    """A POST's GeoReport fields: a form (urlencoded or multipart) or a JSON object."""
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("body must be an object of Open311 fields")
        return body
    return dict(await request.form())


async def _key_in_request(request: Request) -> None:
    """GeoReport clients send their key as `api_key`: in the query or, on a POST, in the body."""
    key = request.query_params.get("api_key")
    if key is None and request.method == "POST":
        try:
            key = (await _fields(request)).get("api_key")
        except ValueError:
            key = None  # the route says what is wrong with the body
    if key:
        request.scope[KEY_IN_REQUEST] = str(key)


router = APIRouter(prefix=f"{OPEN311_PREFIX}v2", tags=["open311"],
                   dependencies=[Depends(_key_in_request), require("read")])


def _format(fmt: str) -> str:
    if fmt not in georeport.FORMATS:
        raise NotFound(f"GeoReport answers in .json or .xml, not .{fmt}")
    return fmt


def _contact(form: dict[str, Any]) -> str | None:
    """The reporter's name and how to reach them. A Chinese name is family name first, written
    together (last_name 张, first_name 三: 张三); others `first last`."""
    first, last = (str(form.get(k) or "").strip() for k in ("first_name", "last_name"))
    name = last + first if _CJK.search(first + last) else " ".join(p for p in (first, last) if p)
    parts = [name, *(str(form.get(k) or "").strip() for k in ("email", "phone"))]
    return " ".join(p for p in parts if p) or None


def _request(incident: dict[str, Any]) -> dict[str, Any]:
    chain = {lv: incident[lv]["code"] for lv in LEVELS if incident.get(lv)}
    chain_names = {f"{lv}_name": incident[lv]["name"] for lv in LEVELS if incident.get(lv)}
    return {
        "service_request_id": str(incident["id"]),
        "status": "closed" if incident["state"] in CLOSED_STATES else "open",
        "status_notes": incident["events"][-1]["note"] if incident["events"] else None,
        "service_name": incident["category_zh"],
        "service_code": incident["category"],
        "description": incident["description"],
        "agency_responsible": (incident.get("grid") or incident.get("community") or {}).get("name"),
        "service_notice": None,
        "requested_datetime": incident["reported_at"],
        "updated_datetime": incident["events"][-1]["at"] if incident["events"] else incident["received_at"],
        "expected_datetime": incident["deadline"],
        "address": incident["address"],
        "address_id": None,
        "zipcode": None,
        "lat": incident["wgs84"]["lat"],
        "long": incident["wgs84"]["lon"],
        "media_url": incident["photos"][0] if incident["photos"] else None,
        "extended_attributes": {"state": incident["state"], "unassigned": incident["unassigned"],
                                "overdue": incident["overdue"], **chain, **chain_names},
    }


@router.get("/services.{fmt}", summary="Open311: the service types (incident categories), JSON or XML")
def services(fmt: str, conn: Conn, jurisdiction_id: Annotated[str | None, Query()] = None) -> Response:
    rows = [{"service_code": c["code"], "service_name": c["name_zh"],
             "description": f"{c['name_zh']}（{c['deadline_hours']} 小时内处置）",
             "metadata": False, "type": "realtime", "keywords": c["code"], "group": "grid"}
            for c in incidents.categories(conn)]
    return georeport.answer(_format(fmt), "services", "service", rows)


@router.post("/requests.{fmt}", summary="Open311: create a service request (form or JSON), JSON or XML")
async def create(fmt: str, request: Request, who: ReportCaller) -> Response:
    fmt = _format(fmt)
    try:
        form = await _fields(request)
    except ValueError as exc:
        return georeport.error(fmt, 400, str(exc) if "object" in str(exc) else "body is not valid JSON")
    missing = [f for f in ("service_code", "lat", "long") if not str(form.get(f) or "").strip()]
    if missing:
        return georeport.error(fmt, 400, f"missing {', '.join(missing)}")
    try:
        lat, lon = float(form["lat"]), float(form["long"])
    except (TypeError, ValueError):
        return georeport.error(fmt, 400, "lat and long must be numbers")
    report = Report(
        category=str(form["service_code"]), lon=lon, lat=lat, crs=str(form.get("crs") or "wgs84"),
        description=str(form.get("description") or ""), channel="open311", contact=_contact(form),
        photos=[str(form["media_url"])] if form.get("media_url") else [],
        external_id=(f"open311:{form['device_id']}:{form['token']}" if form.get("device_id") and form.get("token")
                     else None),
        address=str(form.get("address_string") or "").strip() or None,
    )

    def store_it() -> dict[str, Any]:
        with pool.pool().connection() as conn, conn.transaction():
            return intake.report_incident(conn, report, intake.locator_on(conn), actor="open311", who=who)[0]

    try:
        incident = await run_in_threadpool(store_it)
    except GridmapError as exc:
        return georeport.error(fmt, 400, str(exc))
    queue = incident.get("queue_street")
    notice = (f"outside every unit: in the dispatchers' queue of {queue['name']}" if queue else
              "outside every unit: in the district dispatchers' queue") if incident["unassigned"] else \
        f"assigned to {(incident.get('grid') or incident.get('community') or {}).get('name')}"
    if incident.get("possible_duplicates"):
        notice += f"; {len(incident['possible_duplicates'])} similar report(s) nearby: a dispatcher may merge them"
    return georeport.answer(fmt, "service_requests", "request", [
        {"service_request_id": str(incident["id"]), "service_notice": notice, "account_id": None,
         # (gridmap's: where the resident rates the result once it is resolved)
         "evaluation_url": f"/evaluate/{incident['evaluation_token']}"}], 201)


def _window(start_date: str | None, end_date: str | None, default_days: int | None) -> tuple[Any, Any]:
    start, end = time_of(start_date), time_of(end_date)
    if start is None and end is None and default_days:
        start = datetime.now(UTC) - timedelta(days=default_days)
    return start, end


@router.get("/requests.{fmt}", summary="Open311: service requests, newest first, JSON or XML")
def list_requests(
    fmt: str,
    conn: Conn,
    who: ReadCaller,
    service_request_id: Annotated[str | None, Query(description="comma-separated ids (the other filters "
                                                                "then do not apply)")] = None,
    service_code: Annotated[str | None, Query(description="comma-separated service codes")] = None,
    status: Annotated[str | None, Query(description="open, closed, or both comma-separated")] = None,
    start_date: Annotated[str | None, Query(description="requested at or after (ISO 8601); without dates: "
                                                        "the last 90 days")] = None,
    end_date: Annotated[str | None, Query(description="requested at or before (ISO 8601)")] = None,
    jurisdiction_id: Annotated[str | None, Query()] = None,
) -> Response:
    fmt = _format(fmt)
    selection = incidents.Filter()
    if service_request_id:
        try:
            selection.ids = [int(v) for v in service_request_id.split(",") if v.strip()]
        except ValueError:
            return georeport.error(fmt, 400, "service_request_id must be numbers")
    else:
        codes = [c.strip() for c in (service_code or "").split(",") if c.strip()]
        statuses = {s.strip() for s in (status or "").split(",") if s.strip()}
        if statuses - {"open", "closed"}:
            return georeport.error(fmt, 400, "status is open, closed, or both (open,closed)")
        if statuses == {"open"}:
            selection.states = OPEN_STATES
        elif statuses == {"closed"}:
            selection.states = CLOSED_STATES
        try:
            selection.start, selection.end = _window(start_date, end_date, DEFAULT_DAYS)
        except GridmapError as exc:
            return georeport.error(fmt, 400, str(exc))
        if len(codes) == 1:
            selection.category = codes[0]
        elif codes:
            selection.categories = codes
    _, items = incidents.page(conn, selection, viewer=who, limit=MAX_LIST, with_total=False)
    return georeport.answer(fmt, "service_requests", "request", [_request(i) for i in items])


@router.get("/requests/{request_id}.{fmt}", summary="Open311: one service request, JSON or XML")
def one_request(request_id: str, fmt: str, conn: Conn, who: ReadCaller,
                jurisdiction_id: Annotated[str | None, Query()] = None) -> Response:
    fmt = _format(fmt)
    if not request_id.isdigit():
        return georeport.error(fmt, 404, f"no service request {request_id}")
    try:
        incident = incidents.get(conn, int(request_id), viewer=who)
    except NotFound:
        return georeport.error(fmt, 404, f"no service request {request_id}")
    return georeport.answer(fmt, "service_requests", "request", [_request(incident)])


@router.get("/servicerequestupdates.{fmt}",
            summary="Open311 extension: every status change of a request since a time, oldest first, JSON or XML")
def request_updates(
    fmt: str,
    conn: Conn,
    who: ReadCaller,
    start_date: Annotated[str | None, Query(description="changes at or after (ISO 8601); default: the last "
                                                        "24 hours")] = None,
    end_date: Annotated[str | None, Query(description="changes before (ISO 8601)")] = None,
    jurisdiction_id: Annotated[str | None, Query()] = None,
) -> Response:
    fmt = _format(fmt)
    try:
        start, end = _window(start_date, end_date, 1)
    except GridmapError as exc:
        return georeport.error(fmt, 400, str(exc))
    rows = incidents.updates(conn, start, end, limit=MAX_LIST, viewer=who)
    return georeport.answer(fmt, "service_requests_updates", "request_update", [{
        "update_id": str(r["id"]), "service_request_id": str(r["incident_id"]),
        "status": "closed" if r["to_state"] in CLOSED_STATES else "open",
        "updated_datetime": r["at"], "description": r["note"] or r["label"],
        "media_url": None, "extended_attributes": {"state": r["to_state"], "from_state": r["from_state"]},
    } for r in rows])
