"""An Open311 GeoReport v2 facade over the incidents, so existing civic-reporting clients can
talk to gridmap: services (the incident categories), requests (POST and GET) and one request.
The grid chain travels in `extended_attributes`."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from api import auth, db
from api.incidents import locator_on, shown
from geo import incidents, store
from geo.auth import Identity
from geo.errors import GridmapError

router = APIRouter(prefix="/open311/v2", tags=["open311"], dependencies=[auth.require("read")])
CLOSED = ("resolved", "closed", "rejected", "duplicate")


def _error(code: int, description: str) -> JSONResponse:
    return JSONResponse([{"code": code, "description": description}], status_code=code)


def _request(incident: dict) -> dict:
    chain = {lv: incident[lv]["code"] for lv in incidents.CHAIN if incident.get(lv)}
    chain_names = {f"{lv}_name": incident[lv]["name"] for lv in incidents.CHAIN if incident.get(lv)}
    return {
        "service_request_id": str(incident["id"]),
        "status": "closed" if incident["state"] in CLOSED else "open",
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
def services() -> list[dict]:
    with db.pool().connection() as conn:
        rows = conn.execute("SELECT code, name_zh, deadline_hours FROM incident_category ORDER BY code").fetchall()
    return [{"service_code": code, "service_name": name, "description": f"{name}（{hours} 小时内处置）",
             "metadata": False, "type": "realtime", "keywords": code, "group": "grid"}
            for code, name, hours in rows]


@router.post("/requests.json", summary="Open311: create a service request (form or JSON)")
async def create(request: Request, who: Identity = auth.require("report")) -> JSONResponse:
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
    report = incidents.Report(
        category=str(form["service_code"]), lon=lon, lat=lat, crs=str(form.get("crs") or "wgs84"),
        description=str(form.get("description") or ""), channel="open311", contact=contact or None,
        photos=[str(form["media_url"])] if form.get("media_url") else [],
        external_id=f"open311:{form['device_id']}:{form['token']}" if form.get("device_id") and form.get("token") else None,
    )
    from starlette.concurrency import run_in_threadpool

    def store_it() -> dict:
        with db.pool().connection() as conn, conn.transaction():
            return incidents.report_incident(conn, report, locator_on(conn), actor="open311", who=who)[0]

    try:
        incident = await run_in_threadpool(store_it)
    except GridmapError as exc:
        return _error(400, str(exc))
    notice = "outside every unit: a dispatcher will take it" if incident["unassigned"] else \
        f"assigned to {(incident.get('grid') or incident.get('community') or {}).get('name')}"
    return JSONResponse(jsonable_encoder([{"service_request_id": str(incident["id"]), "service_notice": notice,
                                           "account_id": None}]), status_code=201)


@router.get("/requests.json", summary="Open311: service requests, newest first")
def list_requests(
    service_request_id: Optional[str] = Query(None, description="comma-separated ids"),
    service_code: Optional[str] = Query(None),
    status: Optional[str] = Query(None, description="open or closed"),
    start_date: Optional[str] = Query(None),
    end_date: Optional[str] = Query(None),
    who: Identity = auth.require("read"),
) -> JSONResponse:
    clauses, params = [], []
    if service_request_id:
        try:
            ids = [int(v) for v in service_request_id.split(",") if v.strip()]
        except ValueError:
            return _error(400, "service_request_id must be numbers")
        clauses.append("id = ANY(%s)")
        params.append(ids)
    if service_code:
        clauses.append("category = %s")
        params.append(service_code)
    if status:
        if status not in ("open", "closed"):
            return _error(400, "status is open or closed")
        clauses.append(("NOT " if status == "open" else "") + "(state = ANY(%s))")
        params.append(list(CLOSED))
    try:
        for value, op in ((start_date, ">="), (end_date, "<=")):
            when = store.parse_time(value)
            if when is not None:
                clauses.append(f"reported_at {op} %s")
                params.append(when)
    except GridmapError as exc:
        return _error(400, str(exc))
    where = " AND ".join(clauses) or "true"
    with db.pool().connection() as conn:
        ids = [r[0] for r in conn.execute(
            f"SELECT id FROM incident WHERE {where} ORDER BY reported_at DESC, id DESC LIMIT 1000", params)]
        items = [_request(shown(incidents.get_incident(conn, i), who)) for i in ids]
    return JSONResponse(jsonable_encoder(items))


@router.get("/requests/{request_id}.json", summary="Open311: one service request")
def one_request(request_id: str, who: Identity = auth.require("read")) -> JSONResponse:
    if not request_id.isdigit():
        return _error(404, f"no service request {request_id}")
    with db.pool().connection() as conn:
        try:
            incident = incidents.get_incident(conn, int(request_id))
        except GridmapError:
            return _error(404, f"no service request {request_id}")
    return JSONResponse(jsonable_encoder([_request(shown(incident, who))]))
