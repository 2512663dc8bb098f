"""/units: the stored units as GeoJSON, one unit's versions and lineage, and edits."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminCaller, AsOf, BBoxQuery, Conn, Page, PlanCaller, encoded, encoded_rows, paging
from api.security import require
from geo.db import units
from geo.errors import Gone, InvalidInput, NotFound
from geo.units import levels
from geo.usecases import units as unit_work

router = APIRouter(tags=["units"], dependencies=[require("read")])


@router.get("/units", summary="Units of one level as GeoJSON",
            response_class=Response, responses={200: {"content": {"application/geo+json": {}}}})
def list_units(
    request: Request,
    conn: Conn,
    when: AsOf,
    box: BBoxQuery,
    page: Annotated[Page, paging(10_000, 100_000)],
    level: Annotated[str, Query(description="street, community, grid, compound, neighbourhood, building")],
    code: Annotated[str | None, Query(description="only the unit with this code")] = None,
    within: Annotated[int | None, Query(description="only units whose chain of parents holds this unit id")] = None,
) -> Response:
    lv = levels.parse_level(level)
    limit, offset = page.limit, page.offset
    body, total = units.units_geojson(conn, lv, as_of=when, bbox=box, code=code, parent_id=within,
                                      limit=limit, offset=offset)
    headers = {"X-Total-Count": str(total)}
    if offset + limit < total:
        params = {"level": lv, "as_of": request.query_params.get("as_of"), "bbox": request.query_params.get("bbox"),
                  "code": code, "within": within, "limit": limit, "offset": offset + limit}
        query = urlencode({k: v for k, v in params.items() if v is not None})
        headers["Link"] = f'<{request.app.url_path_for("list_units")}?{query}>; rel="next"'
    return Response(body, media_type="application/geo+json", headers=headers)


# What GET /units/{id} answers for a retired unit: the 200 body of its last version, plus these
_RETIRED_SCHEMA = {
    "type": "object",
    "required": ["error", "detail", "unit_id", "version", "code", "geometry", "retired_at", "successors", "links"],
    "properties": {
        "error": {"type": "string"}, "detail": {"type": "string"},
        "unit_id": {"type": "integer"}, "version": {"type": "integer"},
        "code": {"type": "string"}, "geometry": {"type": "object"},
        "retired_at": {"type": "string", "format": "date-time"},
        "successors": {"type": "array", "items": {
            "type": "object", "required": ["unit_id", "code", "url"],
            "properties": {"unit_id": {"type": "integer"}, "code": {"type": "string"}, "url": {"type": "string"}}}},
        "links": {"type": "object", "properties": {"history": {"type": "string"}, "lineage": {"type": "string"}}},
    },
}
GONE: dict[int | str, dict[str, Any]] = {410: {
    "description": "The unit was retired (split, merged or redrawn away): its last version, `retired_at`, "
                   "the current units it became and links to its history",
    "content": {"application/json": {"schema": _RETIRED_SCHEMA}},
}}


@router.get("/units/{unit_id}", summary="One unit (now or as of a time); 410 for a retired one", responses=GONE)
def get_unit(request: Request, unit_id: int, conn: Conn, when: AsOf) -> dict[str, Any]:
    try:
        return encoded(units.get_unit(conn, unit_id, when))
    except NotFound:
        last = units.retired(conn, unit_id, when)
        if last is None:  # never existed, or not yet at `as_of`
            raise
    for unit in last["successors"]:
        unit["url"] = request.app.url_path_for("get_unit", unit_id=unit["unit_id"])
    last["links"] = {"history": request.app.url_path_for("unit_history", unit_id=unit_id),
                     "lineage": request.app.url_path_for("unit_lineage", unit_id=unit_id)}
    became = ", ".join(f"{u['code']} ({u['url']})" for u in last["successors"]) or "no current unit"
    when_text = f" (asked as of {when.isoformat()})" if when else ""
    raise Gone(f"{last['level']} {last['code']} (unit {unit_id}) was retired at {last['retired_at'].isoformat()}"
               f"{when_text}; it became {became}; its versions: {last['links']['history']}", last)


@router.get("/units/{unit_id}/history", summary="Every version of one unit, oldest first")
def unit_history(unit_id: int, conn: Conn) -> list[dict[str, Any]]:
    return encoded_rows(units.history(conn, unit_id))


@router.get("/units/{unit_id}/lineage", summary="Units this one came from (split/merge) and became")
def unit_lineage(unit_id: int, conn: Conn) -> dict[str, Any]:
    units.history(conn, unit_id)  # 404 for a unit that never existed
    return units.lineage(conn, unit_id)


class UnitEdit(BaseModel):
    """A change to one unit. `version` is the version the edit was made on."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(..., ge=1, description="the unit's version the edit is based on (409 if stale)")
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON Polygon/MultiPolygon, WGS84")
    name: str | None = Field(None, min_length=1, max_length=200, pattern=r"\S")
    households: int | None = Field(None, ge=0, le=2**31 - 1)
    population: int | None = Field(None, ge=0, le=2**31 - 1)
    attributes: dict[str, Any] | None = None
    note: str | None = Field(None, max_length=2000)
    code: str | None = Field(None, description="not changed here: an admin corrects a code with "
                             "POST /units/{id}/recode, and its descendants' codes follow")


def _geometry(data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    try:
        return shapely.from_geojson(json.dumps(data))
    except Exception as exc:  # shapely raises GEOSException for bad GeoJSON
        raise InvalidInput(f"geometry is not valid GeoJSON: {exc}") from None


class Recode(BaseModel):
    """A corrected code for one unit; its descendants' codes follow it."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(..., min_length=1, max_length=64, description="the new code; it must name the unit's parents")
    version: int | None = Field(None, ge=1, description="the unit's version the recode is based on (409 if stale)")
    note: str | None = Field(None, max_length=2000)


@router.post("/units/{unit_id}/recode", summary="Correct a unit's code (admins); its descendants' codes follow",
             responses=GONE)
def recode_unit(unit_id: int, body: Recode, conn: Conn, who: AdminCaller) -> dict[str, Any]:
    with conn.transaction():
        result = unit_work.recode_unit(conn, unit_id, body.code, expected_version=body.version, actor=who,
                                       note=body.note)
    return encoded(result)


@router.put("/units/{unit_id}", summary="Open a new version of one unit (the old one stays readable)",
            responses=GONE)
def edit_unit(unit_id: int, edit: UnitEdit, conn: Conn, who: PlanCaller) -> dict[str, Any]:
    if edit.code is not None:
        raise InvalidInput(f"a unit's code is not changed by an edit: an admin corrects it with "
                           f"POST /units/{unit_id}/recode {{\"code\": ...}} (its descendants' codes follow)")
    geom = _geometry(edit.geometry)
    with conn.transaction():
        result = unit_work.edit_unit(
            conn, unit_id, expected_version=edit.version, geom=geom, name=edit.name,
            households=edit.households, population=edit.population, attributes=edit.attributes,
            actor=who, note=edit.note,
        )
    return encoded(result)
