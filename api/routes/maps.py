"""/maps: the overview, dispatch and plan maps, their scripts and styles, and the small JSON
endpoints they ask as the user moves, searches and waits for new incidents.

    /maps                   index of the maps and plans
    /maps/overview          every level, households against the band, search
    /maps/dispatch          incidents: clusters, heat, per-grid open/overdue counts, live refresh
    /maps/plan/{id}         a split or merge plan beside the current boundaries, with its metrics
    /maps/static/...        Leaflet, its plugins and gridmap's own script (no CDN)
    /maps/api/...           units with their chain, search, labels, incidents for the dispatch map

Each page route reads its data through geo, takes every URL the page uses from the router,
and hands both to the page in maps/.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.routing import NoMatchFound

from api.deps import Conn, PlanCaller, ReadCaller, encoded
from api.errors import answer, page_answer, status_of
from api.security import require
from geo.coords.points import parse_bbox
from geo.db import maps as map_data
from geo.db import tiles, units
from geo.db.incidents import categories
from geo.errors import InvalidInput, NotFound
from geo.units import levels
from geo.usecases import plan_review, plans
from maps import dispatch, overview, page, plan

# With auth on, a browser without a session is sent to /login (api/security.py).
router = APIRouter(tags=["maps"], dependencies=[require("read")])

_HTML: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": True}
_ID = "__id__"


def _path(request: Request, name: str, **params: str) -> str:
    path: str = request.app.url_path_for(name, **params)
    return path


def _template(request: Request, name: str, param: str) -> str:
    """A route's path with `{id}` where the page puts an id (e.g. /incidents/{id})."""
    return _path(request, name, **{param: _ID}).replace(_ID, "{id}")


def _prefix(request: Request, name: str, param: str) -> str:
    """A route's path up to the id the page appends (e.g. /maps/api/units/)."""
    return _path(request, name, **{param: _ID}).split(_ID)[0]


def _tile_url(request: Request) -> str | None:
    """The vector tiles' URL template, when this app serves them."""
    try:
        return _path(request, "tile", level="{level}", z="{z}", x="{x}", y="{y}")
    except NoMatchFound:
        return None


def _layers(request: Request, conn: Conn, wanted: tuple[str, ...], threshold: int,
            shown: tuple[str, ...]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    counts = units.count_units(conn)
    states = {level: tiles.level_state(conn, level) for level in wanted if counts.get(level, 0) > threshold}
    configs = overview.layer_configs(counts, wanted, _tile_url(request), threshold, shown, states)
    return configs, {level: map_data.layer_geojson(conn, level) for level in overview.embedded(configs)}


@router.get("/maps", summary="Index of the maps and of the stored plans", **_HTML)
def maps_index(request: Request, conn: Conn, who: ReadCaller) -> HTMLResponse:
    links = {"overview": _path(request, "overview_map"), "dispatch": _path(request, "dispatch_map"),
             "plan": _template(request, "plan_map", "plan_id")}
    with_plans = who.can("plan")
    return HTMLResponse(plan.index_page(plans.list_plans(conn) if with_plans else [], links, with_plans))


@router.get("/maps/overview", summary="Map of every level, coloured by households against the band", **_HTML)
def overview_map(
    request: Request,
    conn: Conn,
    base: Annotated[str | None, Query(description="base map: osm (default), amap, amap_satellite")] = None,
    colour: Annotated[str, Query(description="level coloured by households: community, grid, neighbourhood, "
                                             "none")] = "grid",
    tiles_above: Annotated[int, Query(ge=0, description="levels with more current units than this come as "
                                                        "vector tiles")] = overview.TILE_THRESHOLD,
) -> HTMLResponse:
    colour_by = overview.colour_level(colour)
    configs, data = _layers(request, conn, levels.LEVELS, tiles_above, overview.SHOWN + (colour_by,))
    api = {"unit": _prefix(request, "unit_detail", "unit_id"), "search": _path(request, "search"),
           "labels": _path(request, "labels"), "units": _prefix(request, "get_unit", "unit_id"),
           "history": _template(request, "unit_history", "unit_id")}
    return HTMLResponse(overview.render(configs, data, map_data.extent(conn), colour_by, api, base=base))


@router.get("/maps/dispatch", summary="Incidents map for dispatchers, refreshing in place", **_HTML)
def dispatch_map(
    request: Request,
    conn: Conn,
    base: Annotated[str | None, Query(description="base map: osm (default), amap, amap_satellite")] = None,
    refresh: Annotated[int, Query(ge=1, le=3600, description="seconds between refreshes")] = dispatch.REFRESH_S,
    max_markers: Annotated[int, Query(ge=0, le=100_000, description="above this many incidents only the heat map "
                                                                    "and grid counts show")] = dispatch.MAX_MARKERS,
    tiles_above: Annotated[int, Query(ge=0)] = overview.TILE_THRESHOLD,
) -> HTMLResponse:
    configs, data = _layers(request, conn, dispatch.LEVELS, tiles_above, dispatch.LEVELS)
    api = {"incidents": _path(request, "incidents"), "incident": _prefix(request, "get_incident", "incident_id"),
           "unit": _prefix(request, "unit_detail", "unit_id")}
    return HTMLResponse(dispatch.render(configs, data, map_data.extent(conn), categories(conn), api, base=base,
                                        refresh=refresh, max_markers=max_markers))


@router.get("/maps/plan/{plan_id}", summary="A plan's proposed units beside the current ones, with metrics",
            **_HTML, responses={404: {"description": "no such plan"}})
def plan_map(request: Request, plan_id: int, conn: Conn, who: PlanCaller,
             base: Annotated[str | None, Query(description="base map: osm (default), amap, amap_satellite")] = None
             ) -> Response:
    try:
        data = plan_review.review(conn, plan_id)
    except NotFound as exc:  # a page for a browser, the API's usual JSON for anything else
        if "text/html" in request.headers.get("accept", ""):
            return page_answer(request, status_of(exc), type(exc).__name__, str(exc))
        return answer(request, {"error": type(exc).__name__, "detail": str(exc)}, status_of(exc))
    api = {"plan": _path(request, "get_plan", plan_id=str(plan_id)),
           "compare": _path(request, "compare", plan_id=str(plan_id)),
           "units": _path(request, "plan_units", plan_id=str(plan_id)),
           "unit": _prefix(request, "get_unit", "unit_id"), "maps": _path(request, "maps_index")}
    return HTMLResponse(plan.render(data, api, base=base))


@router.get("/maps/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    root = page.STATIC_DIR
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise NotFound(f"no map asset {path!r}")
    return FileResponse(target, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/maps/api/units/{unit_id}", summary="One current unit with its band and chain of parents")
def unit_detail(unit_id: int, conn: Conn) -> dict[str, Any]:
    return encoded(map_data.detail(conn, unit_id))


@router.get("/maps/api/search", summary="Current units by name (contains) or code (starts with)")
def search(conn: Conn, q: Annotated[str, Query(max_length=100)],
           limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[dict[str, Any]]:
    return map_data.search(conn, q, limit)


@router.get("/maps/api/labels", summary="Label points [lon, lat, code, name, width, height] of one level in a box")
def labels(conn: Conn, level: Annotated[str, Query()],
           bbox: Annotated[str, Query(description="minlon,minlat,maxlon,maxlat")]) -> list[list[Any]]:
    lv = levels.parse_level(level)
    box = parse_bbox(bbox, required=True)
    assert box is not None
    if (box[2] - box[0]) * (box[3] - box[1]) > 0.05:
        raise InvalidInput("bbox is too large for labels: zoom in")
    return map_data.labels(conn, lv, box)


@router.get("/maps/api/incidents", summary="Incidents for the dispatch map: points, heat, per-grid counts")
def incidents(
    conn: Conn,
    who: ReadCaller,
    state: Annotated[str | None, Query(description="comma-separated states (default: all)")] = None,
    category: Annotated[str | None, Query(description="comma-separated categories (default: all)")] = None,
    hours: Annotated[float | None, Query(gt=0, le=24 * 3660, description="only reported in the last N hours")] = None,
    limit: Annotated[int, Query(ge=0, le=100_000, description="above this many matching incidents, no points "
                                                              "(heat and counts only)")] = dispatch.MAX_MARKERS,
) -> dict[str, Any]:
    filters = map_data.Filters.parse(conn, state, category, hours)
    return encoded(map_data.dispatch_incidents(conn, filters, limit, viewer=who))
