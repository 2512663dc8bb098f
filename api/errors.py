"""Errors at the edge: each kind of problem to its HTTP status, and the one error shape.

Every error answer is `{"error": <kind>, "detail": <what is wrong and what to do>}` (plus
`problems` for a request that does not fit the schema, `needs` for a missing permission),
whatever raised it: geo's errors (geo/errors.py), the framework's own, a library's. Under
/open311/ the body is GeoReport v2's list of {code, description} instead. No library
exception reaches a client as a 500: a lost database connection is 503 with Retry-After,
a concurrent change 409, a value the database cannot store 422.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from shapely.errors import GEOSException
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import georeport
from geo.db import pool
from geo.errors import Conflict, Gone, GridmapError, InvalidInput, NotFound, SetupError

log = logging.getLogger("gridmap.api")

OPEN311_PREFIX = "/open311/"  # GeoReport v2 answers errors in its own shape
RETRY_AFTER_S = 5  # what 503 answers tell clients
UNAVAILABLE = "the database is not reachable, or the connection to it was lost; try again"


class Unauthorized(GridmapError):
    """No credentials, or a key that is not (or no longer) valid."""

    def __init__(self, message: str, permission: str | None = None, invalid: bool = False):
        super().__init__(message)
        self.permission = permission
        self.invalid = invalid


class Forbidden(GridmapError):
    """Valid credentials whose role does not hold the permission."""

    def __init__(self, message: str, permission: str | None = None):
        super().__init__(message)
        self.permission = permission


class TooLarge(InvalidInput):
    """A request body (or a batch in it) over the limit."""


class InvalidParameterValue(InvalidInput):
    """A query parameter of an OGC API request is malformed or out of range (400, as the standard asks)."""


# Each kind of problem and its status; a subclass takes the nearest entry up its classes.
STATUS: dict[type[Exception], int] = {
    GridmapError: 400,
    InvalidInput: 422,
    InvalidParameterValue: 400,
    TooLarge: 413,
    NotFound: 404,
    Gone: 410,
    Conflict: 409,
    SetupError: 503,
    Unauthorized: 401,
    Forbidden: 403,
}


def status_of(exc: Exception) -> int:
    """The HTTP status of a gridmap error (the table's entry for its nearest class)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def kind_of(exc: Exception) -> str:
    """The `error` word of the body: the class's name (IllegalTransition, InvalidInput, ...)."""
    return type(exc).__name__


class ErrorResponse(JSONResponse):
    """Errors may quote what the client sent, which need not be valid Unicode: escape it."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def answer(request: Request, body: dict[str, Any], status_code: int,
           headers: dict[str, str] | None = None) -> Response:
    """gridmap's error body; under /open311/ the GeoReport v2 one, [{code, description}] (in XML
    for a path ending .xml)."""
    if request.url.path.startswith(OPEN311_PREFIX) and georeport.format_of(request.url.path) == "xml":
        return georeport.error("xml", status_code, body["detail"], headers)
    if request.url.path.startswith(OPEN311_PREFIX):
        return ErrorResponse([{"code": status_code, "description": body["detail"]}],
                             status_code=status_code, headers=headers)
    return ErrorResponse(body, status_code=status_code, headers=headers)


def wants_page(request: Request) -> bool:
    """A browser asking for a map page (not the maps' own JSON), which gets an HTML answer."""
    return (request.url.path.startswith("/maps") and "text/html" in request.headers.get("accept", "")
            and request.method in ("GET", "HEAD") and not request.url.path.startswith("/maps/api/"))


def page_answer(request: Request, status: int, kind: str, message: str,
                headers: dict[str, str] | None = None) -> HTMLResponse:
    from maps.page import error_page

    return HTMLResponse(error_page(status, kind, message, request.app.url_path_for("maps_index")),
                        status_code=status, headers=headers)


def unavailable(request: Request) -> Response:
    """503 with Retry-After: a page for a browser on the maps, the error body otherwise."""
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if request.url.path.startswith("/maps") and "text/html" in request.headers.get("accept", ""):
        return page_answer(request, 503, "DatabaseUnavailable", UNAVAILABLE, headers)
    return answer(request, {"error": "DatabaseUnavailable", "detail": UNAVAILABLE}, 503, headers)


def _connection_trouble(exc: BaseException) -> bool:
    """Whether the database connection failing is what lies behind `exc` (its causes, and the
    members of an exception group, included)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
        todo += [e.__cause__, e.__context__, *getattr(e, "exceptions", ())]
    return False


async def gridmap_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GridmapError)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if isinstance(exc, SetupError) else None
    # a retired unit's answer shows what it was and where it went (geo/errors.py Gone)
    last = jsonable_encoder(exc.last) if isinstance(exc, Gone) else {}
    return answer(request, {**last, "error": kind_of(exc), "detail": str(exc)}, status_of(exc), headers)


# OperationalError covers the pool's PoolTimeout (no connection within GRIDMAP_DB_WAIT), the
# server going away (AdminShutdown 57P01, CannotConnectNow 57P03, a connection lost mid-query)
# and a failed connection attempt. InterfaceError is psycopg's for a connection or cursor it can
# no longer use.
async def database_down(request: Request, exc: Exception) -> Response:
    if isinstance(exc, psycopg.InterfaceError):
        log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return unavailable(request)


async def unexpected(request: Request, exc: Exception) -> Response:
    """Anything else is a 500, unless a lost database connection lies behind it, or the database
    is unreachable right now: then it is the outage, and the client may try again."""
    if _connection_trouble(exc) or pool.reachability.down:
        return unavailable(request)
    return answer(request, {"error": "InternalError", "detail": "an unexpected error; it has been logged"}, 500)


async def pooler_in_the_way(request: Request, exc: Exception) -> Response:
    """A prepared statement missing, or another's in its place: the connection goes through a
    pooler in transaction mode that gridmap was not told about. Say what to set, not 500."""
    log.error("%s %s: %s: %s: the database URL leads to a pooler in transaction mode (pgbouncer): set "
              "GRIDMAP_PGBOUNCER=on", request.method, request.url.path, type(exc).__name__, exc)
    return answer(request, {"error": "DatabaseUnavailable", "detail": (
        "the database connection goes through a pooler in transaction mode (pgbouncer) that this server "
        "was not told about: its operator sets GRIDMAP_PGBOUNCER=on; try again later")}, 503,
        {"Retry-After": str(RETRY_AFTER_S)})


async def concurrent_change(request: Request, exc: Exception) -> Response:
    return answer(request, {"error": "Conflict", "detail": "another change to the same unit was committed "
                            "at the same time; reload and try again"}, 409)


async def geometry_failed(request: Request, exc: Exception) -> Response:
    """The last safety net for geometry: geo repairs what it can and names the units it cannot
    measure; a GEOS error that still gets here is a flaw in the boundaries involved, not in the
    request's form, so it answers 422 (and is logged, to be handled where it arose)."""
    log.warning("%s %s: GEOS: %s", request.method, request.url.path, exc)
    return answer(request, {"error": "InvalidInput", "detail": (
        f"the boundaries involved could not be processed ({exc}): look for self-touching rings, spikes or "
        "slivers in the units this request touches, or try the plan with another seed")}, 422)


async def bad_value(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, psycopg.errors.DataError)
    message = exc.diag.message_primary or str(exc)
    return answer(request, {"error": "InvalidInput", "detail": f"a value cannot be stored: {message}"}, 422)


HTTP_ERRORS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "TooLarge",
               415: "UnsupportedMediaType"}


async def http_error(request: Request, exc: Exception) -> Response:
    """Errors raised by the framework itself (an unknown route, a body that is not JSON) in
    the same shape as gridmap's own."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(jsonable_encoder(exc.detail))
    if exc.status_code == 400 and "parsing the body" in detail:
        detail = "the request body is not valid JSON (UTF-8): check quoting and the Content-Type"
    elif exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}: see /docs for the API"
    return answer(request, {"error": HTTP_ERRORS.get(exc.status_code, "HTTPError"), "detail": detail},
                  exc.status_code, getattr(exc, "headers", None))


async def bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where}: {err.get('msg')}" if where else err.get("msg"))
    return answer(request, {"error": "InvalidInput", "detail": "; ".join(problems),
                            "problems": [_short(e) for e in jsonable_encoder(exc.errors())]}, 422)


def _short(problem: dict[str, Any], keep: int = 200) -> dict[str, Any]:
    """A problem without a long echo of what was sent (a client's megabyte string stays theirs)."""
    value = problem.get("input")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > keep:
        problem = {**problem, "input": text[:keep] + f"… ({len(text):,} characters)"}
    return problem


def install(app: FastAPI) -> None:
    """Every handler above, on the app."""
    app.add_exception_handler(GridmapError, gridmap_error)
    app.add_exception_handler(psycopg.OperationalError, database_down)
    app.add_exception_handler(psycopg.InterfaceError, database_down)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(psycopg.errors.UniqueViolation, concurrent_change)
    app.add_exception_handler(psycopg.errors.ExclusionViolation, concurrent_change)
    app.add_exception_handler(psycopg.errors.DataError, bad_value)
    app.add_exception_handler(psycopg.errors.InvalidSqlStatementName, pooler_in_the_way)
    app.add_exception_handler(psycopg.errors.DuplicatePreparedStatement, pooler_in_the_way)
    app.add_exception_handler(GEOSException, geometry_failed)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
