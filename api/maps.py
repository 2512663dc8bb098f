"""/maps: the overview, dispatch and plan maps, their scripts and styles, and the small JSON
endpoints they ask as the user moves, searches and waits for new incidents.

    /maps                   index of the maps and plans
    /maps/overview          every level, households against the band, search
    /maps/dispatch          incidents: clusters, heat, per-grid open/overdue counts, live refresh
    /maps/plan/{id}         a split or merge plan beside the current boundaries, with its metrics
    /maps/static/...        Leaflet, its plugins and gridmap's own script (no CDN)
    /maps/api/...           units with their chain, search, labels, incidents for the dispatch map
"""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from api import auth, db
from api.units import parse_bbox
from geo import levels, privacy
from geo.auth import Identity
from geo.errors import GridmapError, InvalidInput, NotFound
from maps import dispatch, overview, page, plan, units

# With auth on, a browser without a session is sent to /login (api/auth.py).
router = APIRouter(tags=["maps"], dependencies=[auth.require("read")])

_HTML = {"response_class": HTMLResponse, "include_in_schema": True}


def _tiles_available(request: Request) -> bool:
    """Whether this app serves the vector tiles the maps ask for (the tiles router)."""
    return overview.TILE_URL in request.app.openapi().get("paths", {})


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _error(request: Request, exc: GridmapError):
    """An error as a page for a browser, as the API's usual JSON for anything else."""
    if _wants_html(request):
        return HTMLResponse(page.error_page(exc.status, type(exc).__name__, str(exc)), status_code=exc.status)
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=exc.status)


@router.get("/maps", summary="Index of the maps and of the stored plans", **_HTML)
def index(who: Identity = auth.require("read")) -> HTMLResponse:
    with db.pool().connection() as conn:
        return HTMLResponse(plan.index_page(conn, with_plans=who.can("plan")))


@router.get("/maps/overview", summary="Map of every level, coloured by households against the band", **_HTML)
def overview_map(
    request: Request,
    base: Optional[str] = Query(None, description="base map: osm (default), amap, amap_satellite"),
    colour: str = Query("grid", description="level coloured by households: community, grid, neighbourhood, none"),
    tiles_above: int = Query(overview.TILE_THRESHOLD, ge=0,
                             description="levels with more current units than this come as vector tiles"),
) -> HTMLResponse:
    with db.pool().connection() as conn:
        return HTMLResponse(overview.render(conn, base=base, tiles_available=_tiles_available(request),
                                            threshold=tiles_above, colour_by=colour))


@router.get("/maps/dispatch", summary="Incidents map for dispatchers, refreshing in place", **_HTML)
def dispatch_map(
    request: Request,
    base: Optional[str] = Query(None, description="base map: osm (default), amap, amap_satellite"),
    refresh: int = Query(dispatch.REFRESH_S, ge=1, le=3600, description="seconds between refreshes"),
    max_markers: int = Query(dispatch.MAX_MARKERS, ge=0, le=100_000,
                             description="above this many incidents only the heat map and grid counts show"),
    tiles_above: int = Query(overview.TILE_THRESHOLD, ge=0),
) -> HTMLResponse:
    with db.pool().connection() as conn:
        return HTMLResponse(dispatch.render(conn, base=base, refresh=refresh, max_markers=max_markers,
                                            tiles_available=_tiles_available(request), threshold=tiles_above))


@router.get("/maps/plan/{plan_id}", summary="A plan's proposed units beside the current ones, with metrics",
            **_HTML, responses={404: {"description": "no such plan"}})
def plan_map(request: Request, plan_id: int,
             base: Optional[str] = Query(None, description="base map: osm (default), amap, amap_satellite"),
             who: Identity = auth.require("plan")):
    try:
        with db.pool().connection() as conn:
            return HTMLResponse(plan.render(conn, plan_id, base=base))
    except NotFound as exc:
        return _error(request, exc)


@router.get("/maps/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    root = page.STATIC_DIR
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise NotFound(f"no map asset {path!r}")
    return FileResponse(target, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/maps/api/units/{unit_id}", summary="One current unit with its band and chain of parents")
def unit_detail(unit_id: int) -> dict:
    with db.pool().connection() as conn:
        return jsonable_encoder(units.detail(conn, unit_id))


@router.get("/maps/api/search", summary="Current units by name (contains) or code (starts with)")
def search(q: str = Query(..., max_length=100), limit: int = Query(20, ge=1, le=100)) -> list[dict]:
    with db.pool().connection() as conn:
        return units.search(conn, q, limit)


@router.get("/maps/api/labels", summary="Label points [lon, lat, code, name, width, height] of one level in a box")
def labels(level: str = Query(...), bbox: str = Query(..., description="minlon,minlat,maxlon,maxlat")) -> list:
    lv = levels.parse_level(level)
    box = parse_bbox(bbox, required=True)
    if (box[2] - box[0]) * (box[3] - box[1]) > 0.05:
        raise InvalidInput("bbox is too large for labels: zoom in")
    with db.pool().connection() as conn:
        return units.labels(conn, lv, box)


@router.get("/maps/api/incidents", summary="Incidents for the dispatch map: points, heat, per-grid counts")
def incidents(
    state: Optional[str] = Query(None, description="comma-separated states (default: all)"),
    category: Optional[str] = Query(None, description="comma-separated categories (default: all)"),
    hours: Optional[float] = Query(None, gt=0, le=24 * 3660, description="only reported in the last N hours"),
    limit: int = Query(dispatch.MAX_MARKERS, ge=0, le=100_000,
                       description="above this many matching incidents, no points (heat and counts only)"),
    who: Identity = auth.require("read"),
) -> dict:
    with db.pool().connection() as conn:
        filters = dispatch.Filters.parse(conn, state, category, hours)
        found = dispatch.incidents(conn, filters, limit)
    if not who.can("contact"):  # residents write phone numbers into descriptions
        k = dispatch.FIELDS.index("description")
        found["incidents"] = [[*row[:k], privacy.mask_text(row[k]), *row[k + 1:]] for row in found["incidents"]]
    return jsonable_encoder(found)
