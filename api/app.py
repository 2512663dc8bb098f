"""The gridmap HTTP API: the app, its error handling, and the routers it serves.

    api/units.py    /units: read units as GeoJSON, history, lineage, edits
    api/locate.py   /locate: which units hold a point (the point-in-grid API)
    api/incidents.py /incidents, /workers, /stats: reports, dispatch, lifecycle, counts
    api/open311.py  /open311/v2: the GeoReport v2 facade for civic-reporting clients
    api/ogc.py      /ogc: OGC API - Features over units and incidents (QGIS, GDAL)
    api/tiles.py    /tiles/{level}/{z}/{x}/{y}.mvt: Mapbox vector tiles of one level
    api/maps.py     /maps: overview, dispatch and plan maps (Leaflet, every asset served here)
    api/admin.py    /keys, /audit (admins) and /whoami
    api/login.py    /login, /logout: a session cookie for the maps in a browser
    api/auth.py     who may call what: keys, sessions, the permission each route needs
    api/limits.py   the request body size limit (413)
    api/openapi.py  the OpenAPI document, with the one error shape every error answer has
    api/db.py       the connection pool
    api/locators.py the in-memory boundary index each worker keeps for /locate
"""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from api import admin, auth, db, incidents, limits, locate, login, maps, ogc, open311, openapi, plans, tiles, units
from geo import store
from geo.db.migrations import applied
from geo.errors import GridmapError, SetupError

log = logging.getLogger("gridmap.api")


@asynccontextmanager
async def lifespan(app: FastAPI):
    db.open_pool()
    auth.announce()
    yield
    db.close_pool()


app = FastAPI(
    title="gridmap",
    description="Nested, versioned grid-governance units (street, community, grid, compound, "
                "small neighbourhood, building) on PostGIS.",
    version="0.1.0",
    lifespan=lifespan,
)


class ErrorResponse(JSONResponse):
    """Errors may quote what the client sent, which need not be valid Unicode: escape it."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_answer(request: Request, body: dict, status_code: int, headers: dict | None = None) -> JSONResponse:
    """gridmap's error body; under /open311/ the GeoReport v2 one, [{code, description}]."""
    if request.url.path.startswith("/open311/"):
        return ErrorResponse([{"code": status_code, "description": body["detail"]}],
                             status_code=status_code, headers=headers)
    return ErrorResponse(body, status_code=status_code, headers=headers)


@app.exception_handler(GridmapError)
async def gridmap_error(request: Request, exc: GridmapError) -> JSONResponse:
    headers = {"Retry-After": str(db.RETRY_AFTER_S)} if isinstance(exc, SetupError) else None
    return error_answer(request, {"error": type(exc).__name__, "detail": str(exc)}, status_code=exc.status,
                        headers=headers)


UNAVAILABLE = "the database is not reachable, or the connection to it was lost; try again"


def _unavailable(request: Request) -> Response:
    """503 with Retry-After: a page for a browser on the maps, the API's error body otherwise."""
    headers = {"Retry-After": str(db.RETRY_AFTER_S)}
    if request.url.path.startswith("/maps") and "text/html" in request.headers.get("accept", ""):
        from maps.page import error_page

        return HTMLResponse(error_page(503, "DatabaseUnavailable", UNAVAILABLE), status_code=503, headers=headers)
    return error_answer(request, {"error": "DatabaseUnavailable", "detail": UNAVAILABLE}, status_code=503, headers=headers)


def _connection_trouble(exc: BaseException) -> bool:
    """Whether the database connection failing is what lies behind `exc` (its causes, and the
    members of an exception group, included)."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
        todo += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]
    return False


# OperationalError covers the pool's PoolTimeout (no connection within api.db.WAIT_S), the
# server going away (AdminShutdown 57P01, CannotConnectNow 57P03, a connection lost mid-query)
# and a failed connection attempt. InterfaceError is psycopg's for a connection or cursor it can
# no longer use.
@app.exception_handler(psycopg.OperationalError)
@app.exception_handler(psycopg.InterfaceError)
async def database_down(request: Request, exc: psycopg.Error) -> Response:
    if isinstance(exc, psycopg.InterfaceError):
        log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return _unavailable(request)


@app.exception_handler(Exception)
async def unexpected(request: Request, exc: Exception) -> Response:
    """Anything else is a 500, unless a lost database connection lies behind it, or the database
    is unreachable right now: then it is the outage, and the client may try again."""
    if _connection_trouble(exc) or db.reachability.down:
        return _unavailable(request)
    return error_answer(request, {"error": "InternalError", "detail": "an unexpected error; it has been logged"},
                        status_code=500)


@app.exception_handler(psycopg.errors.UniqueViolation)
@app.exception_handler(psycopg.errors.ExclusionViolation)
async def concurrent_change(request: Request, exc: psycopg.Error) -> JSONResponse:
    return error_answer(request, {"error": "Conflict", "detail": "another change to the same unit was committed "
                         "at the same time; reload and try again"}, status_code=409)


@app.exception_handler(psycopg.errors.DataError)
async def bad_value(request: Request, exc: psycopg.errors.DataError) -> JSONResponse:
    message = exc.diag.message_primary or str(exc)
    return error_answer(request, {"error": "InvalidInput", "detail": f"a value cannot be stored: {message}"},
                        status_code=422)


HTTP_ERRORS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "TooLarge",
               415: "UnsupportedMediaType"}


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Errors raised by the framework itself (an unknown route, a body that is not JSON) in
    the same shape as gridmap's own."""
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(jsonable_encoder(exc.detail))
    if exc.status_code == 400 and "parsing the body" in detail:
        detail = "the request body is not valid JSON (UTF-8): check quoting and the Content-Type"
    elif exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}: see /docs for the API"
    return error_answer(request, {"error": HTTP_ERRORS.get(exc.status_code, "HTTPError"), "detail": detail},
                         status_code=exc.status_code, headers=getattr(exc, "headers", None))


@app.exception_handler(RequestValidationError)
async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where}: {err.get('msg')}" if where else err.get("msg"))
    return error_answer(request, {"error": "InvalidInput", "detail": "; ".join(problems),
                         "problems": [_short(e) for e in jsonable_encoder(exc.errors())]}, status_code=422)


def _short(problem: dict, keep: int = 200) -> dict:
    """A problem without a long echo of what was sent (a client's megabyte string stays theirs)."""
    value = problem.get("input")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > keep:
        problem = {**problem, "input": text[:keep] + f"… ({len(text):,} characters)"}
    return problem




@app.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/docs")


@app.get("/health", summary="Database reachable, schema applied, units stored")
def health() -> dict:
    with db.pool().connection() as conn:
        return {
            "status": "ok",
            "auth": auth.mode(),
            "migrations": applied(conn),
            "units": store.count_units(conn),
        }


app.include_router(units.router)
app.include_router(locate.router)
app.include_router(incidents.router)
app.include_router(open311.router)
app.include_router(plans.router)
app.include_router(ogc.router)
app.include_router(tiles.router)
app.include_router(maps.router)
app.include_router(admin.router)
app.include_router(login.router)
openapi.install(app)
app.add_middleware(limits.BodyLimit)
# GET /locate is answered by a plain Starlette route placed first (see api/locate.py);
# the FastAPI declaration above stays for the OpenAPI docs.
app.router.routes.insert(0, Route("/locate", locate.locate_fast, methods=["GET"], include_in_schema=False))
auth.install(app)
auth.check_routes(app)  # every route names the permission it needs (api/auth.py)
