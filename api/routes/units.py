"""/units: the stored units as GeoJSON, one unit's versions and lineage, and edits."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AsOf, BBoxQuery, Conn, Page, PlanCaller, encoded, encoded_rows, paging
from api.security import require
from geo.db import units
from geo.errors import InvalidInput
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


@router.get("/units/{unit_id}", summary="One unit (now or as of a time)")
def get_unit(unit_id: int, conn: Conn, when: AsOf) -> dict[str, Any]:
    return encoded(units.get_unit(conn, unit_id, when))


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


def _geometry(data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    try:
        return shapely.from_geojson(json.dumps(data))
    except Exception as exc:  # shapely raises GEOSException for bad GeoJSON
        raise InvalidInput(f"geometry is not valid GeoJSON: {exc}") from None


@router.put("/units/{unit_id}", summary="Open a new version of one unit (the old one stays readable)")
def edit_unit(unit_id: int, edit: UnitEdit, conn: Conn, who: PlanCaller) -> dict[str, Any]:
    geom = _geometry(edit.geometry)
    with conn.transaction():
        result = unit_work.edit_unit(
            conn, unit_id, expected_version=edit.version, geom=geom, name=edit.name,
            households=edit.households, population=edit.population, attributes=edit.attributes,
            actor=who, note=edit.note,
        )
    return encoded(result)
