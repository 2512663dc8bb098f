"""/units: the stored units as GeoJSON, one unit's versions and lineage, and edits."""

from __future__ import annotations

import json
import math
from typing import Any, Optional
from urllib.parse import urlencode

import shapely
from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api import auth, db
from geo import levels, store
from geo.auth import Identity
from geo.errors import InvalidInput

router = APIRouter(tags=["units"], dependencies=[auth.require("read")])


def _level(level: str) -> str:
    return levels.parse_level(level)


def parse_bbox(text: Optional[str], required: bool = False) -> Optional[tuple[float, float, float, float]]:
    """minlon,minlat,maxlon,maxlat in WGS84, or InvalidInput naming what is wrong with it."""
    if not text:
        if required:
            raise InvalidInput("give a bbox: minlon,minlat,maxlon,maxlat")
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInput(f"bbox {text!r} is not minlon,minlat,maxlon,maxlat") from None
    if len(values) != 4 or not all(math.isfinite(v) for v in values) \
            or values[0] > values[2] or values[1] > values[3]:
        raise InvalidInput(f"bbox {text!r} is not minlon,minlat,maxlon,maxlat")
    if any(abs(v) > 180 for v in values[::2]) or any(abs(v) > 90 for v in values[1::2]):
        raise InvalidInput(f"bbox {text!r} is outside lon -180..180, lat -90..90 (lon first)")
    return values  # type: ignore[return-value]


@router.get("/units", summary="Units of one level as GeoJSON",
         response_class=Response, responses={200: {"content": {"application/geo+json": {}}}})
def list_units(
    level: str = Query(..., description="street, community, grid, compound, neighbourhood, building"),
    as_of: Optional[str] = Query(None, description="ISO 8601 time; without a zone, Asia/Shanghai"),
    bbox: Optional[str] = Query(None, description="minlon,minlat,maxlon,maxlat (WGS84)"),
    code: Optional[str] = Query(None, description="only the unit with this code"),
    within: Optional[int] = Query(None, description="only units whose chain of parents holds this unit id"),
    limit: int = Query(10_000, ge=1, le=100_000),
    offset: int = Query(0, ge=0),
) -> Response:
    lv = _level(level)
    when = store.parse_time(as_of)
    with db.pool().connection() as conn:
        body, total = store.units_geojson(conn, lv, as_of=when, bbox=parse_bbox(bbox), code=code,
                                          parent_id=within, limit=limit, offset=offset)
    headers = {"X-Total-Count": str(total)}
    if offset + limit < total:
        params = {"level": lv, "as_of": as_of, "bbox": bbox, "code": code, "within": within,
                  "limit": limit, "offset": offset + limit}
        query = urlencode({k: v for k, v in params.items() if v is not None})
        headers["Link"] = f'</units?{query}>; rel="next"'
    return Response(body, media_type="application/geo+json", headers=headers)


@router.get("/units/{unit_id}", summary="One unit (now or as of a time)")
def get_unit(unit_id: int, as_of: Optional[str] = None) -> dict:
    with db.pool().connection() as conn:
        return jsonable_encoder(store.get_unit(conn, unit_id, store.parse_time(as_of)))


@router.get("/units/{unit_id}/history", summary="Every version of one unit, oldest first")
def unit_history(unit_id: int) -> list[dict]:
    with db.pool().connection() as conn:
        return jsonable_encoder(store.history(conn, unit_id))


@router.get("/units/{unit_id}/lineage", summary="Units this one came from (split/merge) and became")
def unit_lineage(unit_id: int) -> dict:
    with db.pool().connection() as conn:
        store.history(conn, unit_id)  # 404 for a unit that never existed
        return store.lineage(conn, unit_id)


class UnitEdit(BaseModel):
    """A change to one unit. `version` is the version the edit was made on."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(..., ge=1, description="the unit's version the edit is based on (409 if stale)")
    geometry: Optional[dict[str, Any]] = Field(None, description="GeoJSON Polygon/MultiPolygon, WGS84")
    name: Optional[str] = Field(None, min_length=1, max_length=200, pattern=r"\S")
    households: Optional[int] = Field(None, ge=0, le=2**31 - 1)
    population: Optional[int] = Field(None, ge=0, le=2**31 - 1)
    attributes: Optional[dict[str, Any]] = None
    note: Optional[str] = Field(None, max_length=2000)


def _geometry(data: Optional[dict]) -> Any:
    if data is None:
        return None
    try:
        return shapely.from_geojson(json.dumps(data))
    except Exception as exc:  # shapely raises GEOSException for bad GeoJSON
        raise InvalidInput(f"geometry is not valid GeoJSON: {exc}") from None


@router.put("/units/{unit_id}", summary="Open a new version of one unit (the old one stays readable)")
def edit_unit(unit_id: int, edit: UnitEdit, who: Identity = auth.require("plan")) -> dict:
    geom = _geometry(edit.geometry)
    with db.pool().connection() as conn, conn.transaction():
        result = store.edit_unit(
            conn, unit_id, expected_version=edit.version, geom=geom, name=edit.name,
            households=edit.households, population=edit.population, attributes=edit.attributes,
            actor=who, note=edit.note,
        )
    return jsonable_encoder(result)
