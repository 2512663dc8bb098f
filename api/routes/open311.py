"""An Open311 GeoReport v2 facade over the incidents, so existing civic-reporting clients can
talk to gridmap: services (the incident categories), requests (POST and GET) and one request.
The grid chain travels in `extended_attributes`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Conn, ReadCaller, ReportCaller, time_of
from api.errors import OPEN311_PREFIX
from api.security import require
from geo.db import incidents, pool
from geo.errors import GridmapError, NotFound
from geo.incidents.lifecycle import CLOSED_STATES, OPEN_STATES, Report
from geo.units.levels import LEVELS
from geo.usecases import incidents as intake

router = APIRouter(prefix=f"{OPEN311_PREFIX}v2", tags=["open311"], dependencies=[require("read")])


def _error(code: int, description: str) -> JSONResponse:
    return JSONResponse([{"code": code, "description": description}], status_code=code)


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
        "requested_datetime": incident["reported_at"],
        "updated_datetime": incident["events"][-1]["at"] if incident["events"] else incident["received_at"],
        "expected_datetime": incident["deadline"],
        "address": None,
        "lat": incident["wgs84"]["lat"],
        "long": incident["wgs84"]["lon"],
        "media_url": incident["photos"][0] if incident["photos"] else None,
        "extended_attributes": {"state": incident["state"], "unassigned": incident["unassigned"],
                                "overdue": incident["overdue"], **chain, **chain_names},
    }


@router.get("/services.json", summary="Open311: the service types (incident categories)")
def services(conn: Conn) -> list[dict[str, Any]]:
    return [{"service_code": c["code"], "service_name": c["name_zh"],
             "description": f"{c['name_zh']}（{c['deadline_hours']} 小时内处置）",
             "metadata": False, "type": "realtime", "keywords": c["code"], "group": "grid"}
            for c in incidents.categories(conn)]


@router.post("/requests.json", summary="Open311: create a service request (form or JSON)")
async def create(request: Request, who: ReportCaller) -> JSONResponse:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            form = await request.json()
        except ValueError:
            return _error(400, "body is not valid JSON")
        if not isinstance(form, dict):
            return _error(400, "body must be an object of Open311 fields")
    else:
        form = dict(await request.form())
    missing = [f for f in ("service_code", "lat", "long") if not str(form.get(f) or "").strip()]
    if missing:
        return _error(400, f"missing {', '.join(missing)}")
    try:
        lat, lon = float(form["lat"]), float(form["long"])
    except (TypeError, ValueError):
        return _error(400, "lat and long must be numbers")
    contact = " ".join(str(form.get(k) or "") for k in ("first_name", "last_name", "email", "phone")).strip()
    report = Report(
        category=str(form["service_code"]), lon=lon, lat=lat, crs=str(form.get("crs") or "wgs84"),
        description=str(form.get("description") or ""), channel="open311", contact=contact or None,
        photos=[str(form["media_url"])] if form.get("media_url") else [],
        external_id=(f"open311:{form['device_id']}:{form['token']}" if form.get("device_id") and form.get("token")
                     else None),
    )

    def store_it() -> dict[str, Any]:
        with pool.pool().connection() as conn, conn.transaction():
            return intake.report_incident(conn, report, intake.locator_on(conn), actor="open311", who=who)[0]

    try:
        incident = await run_in_threadpool(store_it)
    except GridmapError as exc:
        return _error(400, str(exc))
    queue = incident.get("queue_street")
    notice = (f"outside every unit: in the dispatchers' queue of {queue['name']}" if queue else
              "outside every unit: in the district dispatchers' queue") if incident["unassigned"] else \
        f"assigned to {(incident.get('grid') or incident.get('community') or {}).get('name')}"
    return JSONResponse(jsonable_encoder([{"service_request_id": str(incident["id"]), "service_notice": notice,
                                           "account_id": None}]), status_code=201)


@router.get("/requests.json", summary="Open311: service requests, newest first")
def list_requests(
    conn: Conn,
    who: ReadCaller,
    service_request_id: Annotated[str | None, Query(description="comma-separated ids")] = None,
    service_code: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query(description="open or closed")] = None,
    start_date: Annotated[str | None, Query()] = None,
    end_date: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    selection = incidents.Filter(category=service_code or None)
    if service_request_id:
        try:
            selection.ids = [int(v) for v in service_request_id.split(",") if v.strip()]
        except ValueError:
            return _error(400, "service_request_id must be numbers")
    if status:
        if status not in ("open", "closed"):
            return _error(400, "status is open or closed")
        selection.states = OPEN_STATES if status == "open" else CLOSED_STATES
    try:
        selection.start, selection.end = time_of(start_date), time_of(end_date)
    except GridmapError as exc:
        return _error(400, str(exc))
    _, items = incidents.page(conn, selection, viewer=who, limit=1000, with_total=False)
    return JSONResponse(jsonable_encoder([_request(i) for i in items]))


@router.get("/requests/{request_id}.json", summary="Open311: one service request")
def one_request(request_id: str, conn: Conn, who: ReadCaller) -> JSONResponse:
    if not request_id.isdigit():
        return _error(404, f"no service request {request_id}")
    try:
        incident = incidents.get(conn, int(request_id), viewer=who)
    except NotFound:
        return _error(404, f"no service request {request_id}")
    return JSONResponse(jsonable_encoder([_request(incident)]))
