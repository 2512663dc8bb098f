"""/locate: which street, community, grid, compound, small neighbourhood and building hold
a point, in any coordinate system users send (WGS84, GCJ-02 from WeChat/Amap, BD-09 from
Baidu, CGCS2000, any EPSG code).

GET answers one point with the whole chain; POST answers up to 100,000 points in order.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
import orjson
import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from api.deps import time_of
from api.errors import TooLarge
from api.security import guarded, require
from geo import settings
from geo.coords import points
from geo.errors import InvalidInput
from geo.locate.layered import Column, Layered
from geo.locate.locator import Locator
from geo.units import levels
from geo.usecases import locators

router = APIRouter(tags=["locate"], dependencies=[require("read")])
MAX_POINTS = 100_000
MAX_BODY = 20 * 1024 * 1024
MAX_NEAR_M = 500
BODY_TOO_LARGE = f"request body over {MAX_BODY // (1024 * 1024)} MB: send at most {MAX_POINTS:,} points a request"


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json")


def _levels(text: str | None) -> tuple[str, ...]:
    if text is None:
        return levels.LEVELS
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise InvalidInput(f"levels={text!r} names no level: use e.g. levels=grid,community")
    wanted = {levels.parse_level(part) for part in parts}
    return tuple(lv for lv in levels.LEVELS if lv in wanted)


Index = Locator | Layered


def _index(as_of: str | None, x: np.ndarray, y: np.ndarray, near: float) -> tuple[Index, str | None]:
    when = time_of(as_of)
    if when is None:
        return locators.current(), None
    return locators.around(when, x, y, near), when.isoformat()


async def _index_async(as_of: str | None, x: np.ndarray, y: np.ndarray, near: float) -> tuple[Index, str | None]:
    when = time_of(as_of)
    if when is None:
        return await locators.current_async(), None
    return await run_in_threadpool(locators.around, when, x, y, near), when.isoformat()


async def _checked_index(as_of: str | None, x: np.ndarray, y: np.ndarray, near: float) -> tuple[Index, str | None]:
    """`_index_async`, but a failed boundary-generation check is tried once more before it counts
    as an outage (503): the check's connection may be one the server has since closed (a restart,
    a terminated backend), and the second check opens a new one. While the database is down, the
    index is not used: nothing could show it is not older than the last commit."""
    try:
        return await _index_async(as_of, x, y, near)
    except psycopg.OperationalError:
        return await _index_async(as_of, x, y, near)


def _locate(index: Index, lon: np.ndarray, lat: np.ndarray,
            near_m: float) -> tuple[dict[str, np.ndarray], np.ndarray, list[list[int]]]:
    found = index.locate(lon, lat)
    grids = index.indexes["grid"]
    distance = grids.distance_to_boundary(lon, lat, found["grid"])
    near = grids.near(lon, lat, near_m, found["grid"]) if near_m > 0 else [[] for _ in range(len(lon))]
    return found, distance, near


def _unit(index: Index, level: str, i: int) -> dict[str, Any] | None:
    if i < 0:
        return None
    units = index.units[level]
    return {"id": int(units.ids[i]), "code": units.codes[i], "name": units.names[i],
            "version": int(units.versions[i])}


async def locate_one(
    lon: Annotated[float, Query(description="longitude (or x in a projected CRS)")],
    lat: Annotated[float, Query(description="latitude (or y in a projected CRS)")],
    crs: Annotated[str, Query(description="wgs84, gcj02 (WeChat, Amap), bd09 (Baidu), cgcs2000 "
                                          "or EPSG:nnnn")] = "wgs84",
    as_of: Annotated[str | None, Query(description="answer with the boundaries valid at this time (ISO 8601)")] = None,
    levels_: Annotated[str | None, Query(alias="levels", description="comma-separated levels to return")] = None,
    near: Annotated[float, Query(ge=0, le=MAX_NEAR_M, description="radius (m) for other grids nearby")] = 20.0,
) -> Response:
    """The whole chain at the point (street, community, grid, compound, neighbourhood, building),
    `inside: false` and nulls when no unit holds it, the distance to the grid's boundary, and
    the other grids within `near` metres (to flag an ambiguous report).

    Served by `locate_fast` below (same parameters, same answers); this declaration documents it."""
    return await _answer_one(lon, lat, crs, as_of, levels_, near)


# GET /locate is served once, by `locate_fast` (api/app.py puts it first). This route object is
# never served: it describes the same parameters and answers to the OpenAPI document.
DOCUMENTATION = APIRoute("/locate", locate_one, methods=["GET"], tags=["locate"], dependencies=[require("read")],
                         summary="The units holding one point, with the distance to its grid's boundary")


def _number(params: Any, name: str, default: float | None = None) -> float:
    text = params.get(name)
    if text is None:
        if default is None:
            raise InvalidInput(f"{name} is required")
        return default
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {text!r}") from None


@guarded("read")
async def locate_fast(request: Request) -> Response:
    """GET /locate without FastAPI's per-request machinery: this route carries the load of
    other services asking "which grid" thousands of times a second."""
    params = request.query_params
    near = _number(params, "near", 20.0)
    if not 0 <= near <= MAX_NEAR_M:
        raise InvalidInput(f"near must be between 0 and {MAX_NEAR_M} metres, not {near}")
    return await _answer_one(_number(params, "lon"), _number(params, "lat"), params.get("crs", "wgs84"),
                             params.get("as_of"), params.get("levels"), near)


async def _answer_one(lon: float, lat: float, crs: str, as_of: str | None, levels_: str | None,
                      near: float) -> Response:
    wanted = _levels(levels_)
    x, y, source = points.to_wgs84([lon], [lat], crs, settings.get().bounds)
    px, py = float(x[0]), float(y[0])
    index, when = await _checked_index(as_of, x, y, near)
    found = index.locate_one(px, py)
    grids = index.indexes["grid"]
    distance = grids.distance_one(px, py, found["grid"])
    body = {
        "inside": any(i >= 0 for i in found.values()),
        "input": {"lon": lon, "lat": lat, "crs": source},
        "wgs84": {"lon": px, "lat": py},
        "as_of": when,
    }
    for level in wanted:
        body[level] = _unit(index, level, found[level])
    body["grid_boundary_distance_m"] = None if math.isnan(distance) else round(distance, 3)
    body["near_grids"] = [_unit(index, "grid", j) for j in grids.near_one(px, py, near, found["grid"])]
    body["near_radius_m"] = near
    return _json(body)


def _parse_points(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    if len(raw) > MAX_BODY:
        raise TooLarge(BODY_TOO_LARGE)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body is not valid JSON: {exc}") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise InvalidInput("FeatureCollection has no features list")
        points: list[Any] = []
        for i, feature in enumerate(features):
            geom = (feature or {}).get("geometry") if isinstance(feature, dict) else None
            if not isinstance(geom, dict) or geom.get("type") != "Point":
                raise InvalidInput(f"feature {i + 1}: geometry must be a Point")
            points.append(geom.get("coordinates"))
    elif isinstance(data, list):
        points = data
    else:
        raise InvalidInput("body must be a JSON array of [lon, lat] pairs or {\"lon\", \"lat\"} objects, "
                           "or a GeoJSON FeatureCollection of Points")
    if len(points) > MAX_POINTS:
        raise TooLarge(f"{len(points):,} points: send at most {MAX_POINTS:,} points a request")
    if points and isinstance(points[0], dict):
        try:
            points = [(p["lon"], p["lat"]) for p in points]
        except (KeyError, TypeError):
            bad = next(i for i, p in enumerate(points) if not (isinstance(p, dict) and "lon" in p and "lat" in p))
            raise InvalidInput(f"point {bad + 1}: needs \"lon\" and \"lat\"") from None
    number = (int, float)
    for i, p in enumerate(points):
        if not (isinstance(p, (list, tuple)) and 2 <= len(p) <= 3
                and type(p[0]) in number and type(p[1]) in number):
            raise InvalidInput(f"point {i + 1}: {p!r} is not [lon, lat] (two numbers)")
    if len(points) == 0:
        return np.zeros(0), np.zeros(0)
    x = np.fromiter((p[0] for p in points), dtype=float, count=len(points))
    y = np.fromiter((p[1] for p in points), dtype=float, count=len(points))
    return x, y


@router.post("/locate", summary="The units holding each of up to 100,000 points, in order")
async def locate_many(
    request: Request,
    crs: Annotated[str, Query(description="wgs84, gcj02, bd09, cgcs2000 or EPSG:nnnn")] = "wgs84",
    as_of: Annotated[str | None, Query()] = None,
    levels_: Annotated[str | None, Query(alias="levels")] = None,
    near: Annotated[float, Query(ge=0, le=MAX_NEAR_M)] = 20.0,
    units: Annotated[bool, Query(description="include the `units` map (code, name, version of each id)")] = True,
) -> Response:
    """Body: `[[lon, lat], ...]`, `[{"lon": .., "lat": ..}, ...]` or a GeoJSON FeatureCollection of
    Points. Answer: `results[i]` for point i (unit ids per level, `inside`, the distance to the
    grid's boundary and nearby grids), and `units[level]`: columns id, code, name and version of
    every unit mentioned (omit with units=false)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise TooLarge(BODY_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge(BODY_TOO_LARGE)
        chunks.append(chunk)
    return await run_in_threadpool(_parse_and_answer, b"".join(chunks), crs, as_of, levels_, near, units)


def _parse_and_answer(raw: bytes, crs: str, as_of: str | None, levels_: str | None, near: float,
                      units: bool) -> Response:
    x, y = _parse_points(raw)
    return _answer_many(x, y, crs, as_of, levels_, near, units)


def _answer_many(x: np.ndarray, y: np.ndarray, crs: str, as_of: str | None, levels_: str | None, near: float,
                 with_units: bool = True) -> Response:
    wanted = _levels(levels_)
    lon, lat, source = points.to_wgs84(x, y, crs, settings.get().bounds)
    index, when = _index(as_of, lon, lat, near)
    found, distance, near_idx = _locate(index, lon, lat, near)
    m = len(lon)
    inside = np.zeros(m, dtype=bool)
    for level in levels.LEVELS:
        inside |= found[level] >= 0
    columns = [inside.tolist()]
    for level in wanted:
        unit_ids = index.units[level].ids
        idx = found[level]
        as_id = unit_ids[np.maximum(idx, 0)] if len(unit_ids) else np.zeros(m, dtype=np.int64)
        columns.append([None if i < 0 else v for i, v in zip(idx.tolist(), as_id.tolist(), strict=True)])
    dist = np.round(distance, 3)
    columns.append([None if d != d else d for d in dist.tolist()])
    grid_ids = index.units["grid"].ids.tolist()
    columns.append([[grid_ids[j] for j in near_j] if near_j else [] for near_j in near_idx])
    keys = ("inside", *wanted, "grid_boundary_distance_m", "near_grids")
    results = [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
    body = {"count": m, "crs": source, "as_of": when, "near_radius_m": near, "results": results}
    if with_units:
        units = {}
        for level in wanted:
            idx = found[level]
            used = idx[idx >= 0]
            if level == "grid" and near > 0:
                used = np.concatenate([used, np.fromiter(
                    (j for near_j in near_idx for j in near_j), dtype=np.int64)])
            units[level] = _unit_table(index, level, np.unique(used))
        body["units"] = units
    return _json(body)


def _unit_table(index: Index, level: str, used: np.ndarray) -> dict[str, list[Any]]:
    """Columns (id, code, name, version) for the units `used` (indexes into the level)."""
    table = index.units[level]
    rows = used.tolist()
    codes, names = table.codes, table.names
    if isinstance(codes, Column) and isinstance(names, Column):  # a Layered's: one call each
        code_of, name_of = list(codes[used]), list(names[used])
    else:
        code_of, name_of = [codes[i] for i in rows], [names[i] for i in rows]
    return {"id": table.ids[used].tolist(), "code": code_of, "name": name_of,
            "version": table.versions[used].tolist()}
