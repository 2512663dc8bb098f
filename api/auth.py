"""Who may call what over HTTP: keys and sessions in, identities out, permissions checked.

Every route names the one permission it needs; geo/auth.py ROLES says which roles hold it.

    routers      APIRouter(dependencies=[require("read")]): every route of the router
    writes       who: Identity = require("plan"): the route's own permission, and the caller
    GET /locate  the plain Starlette route awaits `authorize(request, "read")`

`check_routes(app)` refuses to build an app with a route that names no permission and is
not in PUBLIC, so a new route cannot be left open by mistake.

Credentials: `Authorization: Bearer <key>` or `X-API-Key: <key>`, or, for GET and HEAD
only, the signed session cookie /login sets (so a cookie never authorises a write and a
cross-site form cannot use it). No credentials: 401 with WWW-Authenticate; a browser asking
for a map page is sent to /login instead. The wrong role: 403. Both name what is needed.

Keys are verified against the database once and then kept in memory by each worker for
GRIDMAP_AUTH_CACHE_SECONDS (30 s by default), so /locate pays a hash and a dict look-up,
not a query. A key revoked through this worker is dropped from its cache at once; other
workers (and revocations from the command line) take effect within the TTL. Unknown keys
are cached as refused for the same time, so a flood of bad keys cannot reach the database.

With auth off (GRIDMAP_AUTH=off, the default of `gridmap serve` on a loopback address)
every caller is ANONYMOUS, an admin, and requests that reach the server on any address but
loopback are refused: auth off is for one developer's machine.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from typing import Callable
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api import db
from geo import auth
from geo.auth import ANONYMOUS, PERMISSIONS, Identity
from geo.errors import GridmapError, SetupError

log = logging.getLogger("uvicorn.error")  # printed the way uvicorn prints its own warnings

SESSION_COOKIE = "gridmap_session"
PUBLIC = {"/", "/health", "/login", "/logout", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
SAFE_METHODS = ("GET", "HEAD")
CACHE_MAX = 10_000


# ---------------------------------------------------------------------------
# On or off
# ---------------------------------------------------------------------------

def is_loopback(host: str | None) -> bool:
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_mode(setting: str | None, host: str | None = None) -> bool:
    """Whether auth is on: GRIDMAP_AUTH=on|off; unset, off only when serving on loopback
    (`host` None, an app started without `gridmap serve`, counts as not loopback)."""
    value = (setting or "").strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    if value:
        raise SetupError(f"GRIDMAP_AUTH={setting!r}: use on or off")
    return not (host is not None and is_loopback(host))


_enabled: bool | None = None


def enabled() -> bool:
    global _enabled
    if _enabled is None:
        _enabled = resolve_mode(os.environ.get("GRIDMAP_AUTH"))
    return _enabled


def configure(on: bool | None) -> None:
    """Force auth on or off in this process (tests, benchmarks); None reads GRIDMAP_AUTH again."""
    global _enabled
    _enabled = on


def forget_all() -> None:
    """Empty this worker's key cache."""
    _cache.clear()


def mode() -> str:
    return "on" if enabled() else "off"


def announce() -> None:
    """At startup: say loudly when auth is off, and how to make a key when there is none."""
    if not enabled():
        log.warning("AUTH IS OFF: every request is served as an admin and contacts are shown unmasked. "
                    "This is for a developer's own machine: requests arriving on any address but loopback "
                    "are refused. Set GRIDMAP_AUTH=on to require API keys.")
        return
    try:
        with db.pool().connection() as conn:
            keys = auth.active_keys(conn)
    except Exception:  # the database is down: /health says so, requests will too
        return
    if keys == 0:
        log.warning("auth is on and no API key exists: every request will be refused. "
                    "Create one with: gridmap keys create --role admin --name NAME")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class Unauthorized(GridmapError):
    """No credentials, or a key that is not (or no longer) valid."""

    status = 401

    def __init__(self, message: str, permission: str | None = None, invalid: bool = False):
        super().__init__(message)
        self.permission = permission
        self.invalid = invalid


class Forbidden(GridmapError):
    """Valid credentials whose role does not hold the permission."""

    status = 403

    def __init__(self, message: str, permission: str | None = None):
        super().__init__(message)
        self.permission = permission


def _needs(permission: str | None) -> dict:
    if permission is None:
        return {}
    return {"needs": {"permission": permission, "roles": auth.roles_with(permission),
                      "means": PERMISSIONS[permission]}}


def _wants_page(request: Request) -> bool:
    return request.url.path.startswith("/maps") and "text/html" in request.headers.get("accept", "") \
        and request.method in SAFE_METHODS and not request.url.path.startswith("/maps/api/")


async def auth_error(request: Request, exc: GridmapError) -> Response:
    from api.app import ErrorResponse
    from maps import page

    if _wants_page(request):
        if isinstance(exc, Unauthorized):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return HTMLResponse(page.error_page(exc.status, type(exc).__name__, str(exc)), status_code=exc.status)
    headers = None
    if isinstance(exc, Unauthorized):
        challenge = 'Bearer realm="gridmap"'
        if exc.invalid:
            challenge += ', error="invalid_token"'
        headers = {"WWW-Authenticate": challenge}
    body = {"error": type(exc).__name__, "detail": str(exc), **_needs(exc.permission)}
    return ErrorResponse(body, status_code=exc.status, headers=headers)


# ---------------------------------------------------------------------------
# Who is calling
# ---------------------------------------------------------------------------

class _Cache:
    """Verified (and refused) credentials of this worker, each for `ttl` seconds."""

    def __init__(self) -> None:
        self.entries: dict[object, tuple[float, Identity | None]] = {}
        self.lock = threading.Lock()  # revocations come from threadpool handlers

    @staticmethod
    def ttl() -> float:
        return float(os.environ.get("GRIDMAP_AUTH_CACHE_SECONDS", "30"))

    def get(self, key: object) -> tuple[bool, Identity | None]:
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: object, identity: Identity | None) -> None:
        now = time.monotonic()
        with self.lock:
            if len(self.entries) >= CACHE_MAX:
                self.entries = {k: v for k, v in self.entries.items() if v[0] >= now}
                if len(self.entries) >= CACHE_MAX:
                    self.entries.clear()
            self.entries[key] = (now + self.ttl(), identity)

    def forget_key(self, key_id: int) -> None:
        """Drop a revoked key (and sessions naming it) at once in this worker."""
        with self.lock:
            for k, (_, identity) in list(self.entries.items()):
                if identity is not None and identity.key_id == key_id or k == ("session", key_id):
                    del self.entries[k]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


_cache = _Cache()


def forget_key(key_id: int) -> None:
    _cache.forget_key(key_id)


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be `Bearer <key>` (or send the key in X-API-Key)",
                               invalid=True)
        return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key is not None else None


def _lookup_key(key: str) -> Identity | None:
    with db.pool().connection() as conn:
        return auth.verify(conn, key)


def _lookup_session(key_id: int) -> Identity | None:
    with db.pool().connection() as conn:
        return auth.identity_by_id(conn, key_id)


async def _cached(cache_key: object, lookup: Callable[[], Identity | None]) -> Identity | None:
    hit, identity = _cache.get(cache_key)
    if not hit:
        identity = await run_in_threadpool(lookup)
        _cache.put(cache_key, identity)
    return identity


_SCOPE_KEY = "gridmap.identity"


async def identify(request: Request) -> Identity | None:
    """The caller (None when no credentials came), checked once per request."""
    if _SCOPE_KEY in request.scope:
        return request.scope[_SCOPE_KEY]
    if not enabled():
        server = request.scope.get("server")
        if server and not is_loopback(server[0]):
            raise Forbidden("auth is off, so this server answers on loopback only: turn auth on "
                            "(GRIDMAP_AUTH=on) and use an API key")
        identity: Identity | None = ANONYMOUS
    else:
        key = _presented_key(request)
        if key is not None:
            if auth.KEY_PATTERN.fullmatch(key) is None:  # no query, no cache entry for garbage
                raise Unauthorized("this is not a gridmap API key (gm_<prefix>_<secret>)", invalid=True)
            identity = await _cached(("key", auth.digest(key)), lambda: _lookup_key(key))
            if identity is None:
                raise Unauthorized("this API key is not valid (unknown or revoked)", invalid=True)
        elif request.method in SAFE_METHODS and SESSION_COOKIE in request.cookies:
            if _serializer is None:  # the first session: the secret comes from the database
                await run_in_threadpool(_signer)
            key_id = session_key_id(request.cookies[SESSION_COOKIE])
            identity = None
            if key_id is not None:
                identity = await _cached(("session", key_id), lambda: _lookup_session(key_id))
        else:
            identity = None
    request.scope[_SCOPE_KEY] = identity
    return identity


async def authorize(request: Request, permission: str) -> Identity:
    """The caller, if they hold `permission`; else Unauthorized (401) or Forbidden (403)."""
    try:
        identity = await identify(request)
    except Unauthorized as exc:
        exc.permission = exc.permission or _strongest(request, permission)
        raise
    if identity is None:
        permission = _strongest(request, permission)
        raise Unauthorized(f"this needs an API key with the {permission!r} permission "
                           f"(role {' or '.join(auth.roles_with(permission))}): send `Authorization: Bearer <key>` "
                           "or `X-API-Key: <key>`, or log in at /login for the maps", permission)
    if not identity.can(permission):
        raise Forbidden(f"{identity.label} may not do this: it needs the {permission!r} permission, held by "
                        f"{' and '.join(auth.roles_with(permission))}", permission)
    return identity


def _strongest(request: Request, permission: str) -> str:
    """The permission to name to a caller with no key: the route's own (say `plan` for
    PUT /units/{id}) rather than the `read` its router asks for first."""
    route = request.scope.get("route")
    wanted = permissions_of(route) - {"read"} if route is not None else set()
    return min(wanted) if len(wanted) == 1 else permission


# Declared so that /docs shows the schemes and its Authorize button sends a key; the
# headers themselves are read by `identify`.
_BEARER = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer gm_…`")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")


def require(permission: str):
    """A FastAPI dependency: the caller, who must hold `permission`."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def caller(request: Request, _bearer=Depends(_BEARER), _key=Depends(_API_KEY)) -> Identity:
        return await authorize(request, permission)

    caller.permission = permission  # type: ignore[attr-defined]  (check_routes looks for it)
    caller.__name__ = f"require_{permission}"
    return Depends(caller)


def guarded(permission: str):
    """The same for a plain Starlette endpoint (GET /locate)."""
    def wrap(endpoint):
        async def guarded_endpoint(request: Request) -> Response:
            await authorize(request, permission)
            return await endpoint(request)

        guarded_endpoint.permission = permission  # type: ignore[attr-defined]
        return guarded_endpoint
    return wrap


def can_see_contact(identity: Identity) -> bool:
    return identity.can("contact")


# ---------------------------------------------------------------------------
# Session cookies (the maps in a browser)
# ---------------------------------------------------------------------------

_serializer = None


def _signer():
    """Signs session cookies with the secret kept in the database (or GRIDMAP_SECRET).

    itsdangerous (Pallets, what Flask and Starlette's sessions use) gives HMAC signing
    with an issue time checked against a maximum age, rather than hand-rolled crypto."""
    global _serializer
    if _serializer is None:
        from itsdangerous import URLSafeTimedSerializer

        with db.pool().connection() as conn:
            secret = auth.secret(conn)
        _serializer = URLSafeTimedSerializer(secret, salt="gridmap-session")
    return _serializer


def session_seconds() -> int:
    return int(float(os.environ.get("GRIDMAP_SESSION_HOURS", "12")) * 3600)


def session_cookie(identity: Identity) -> str:
    return _signer().dumps({"k": identity.key_id})


def session_key_id(cookie: str) -> int | None:
    """The key a session cookie was made from, if its signature holds and it has not expired."""
    from itsdangerous import BadSignature

    try:
        data = _signer().loads(cookie, max_age=session_seconds())
    except BadSignature:  # also SignatureExpired
        return None
    key_id = data.get("k") if isinstance(data, dict) else None
    return key_id if isinstance(key_id, int) else None


async def verify_key(key: str) -> Identity | None:
    """For /login: the identity of a key typed into the form."""
    if auth.KEY_PATTERN.fullmatch(key) is None:
        return None
    return await _cached(("key", auth.digest(key)), lambda: _lookup_key(key))


# ---------------------------------------------------------------------------
# Wiring
# ---------------------------------------------------------------------------

def permissions_of(route) -> set[str]:
    """The permissions a route (or FastAPI's view of an included one) asks for."""
    found = set()
    dependant = getattr(route, "dependant", None)
    stack = list(dependant.dependencies) if dependant is not None else []
    while stack:
        dep = stack.pop()
        if getattr(dep.call, "permission", None):
            found.add(dep.call.permission)
        stack.extend(dep.dependencies)
    endpoint_permission = getattr(getattr(route, "endpoint", None), "permission", None)
    if endpoint_permission:
        found.add(endpoint_permission)
    return found


def routes(app: FastAPI) -> list:
    """Every route as served, included routers flattened (FastAPI 0.16x keeps them nested)."""
    from fastapi import routing

    flatten = getattr(routing, "iter_route_contexts", None)
    return list(flatten(app.routes)) if flatten else list(app.routes)


def check_routes(app: FastAPI) -> None:
    """Every route names a permission, or is public on purpose."""
    open_routes = [f"{sorted(getattr(r, 'methods', None) or [])} {r.path}" for r in routes(app)
                   if getattr(r, "path", None) not in PUBLIC and not permissions_of(r)]
    if open_routes:
        raise RuntimeError(f"routes without a permission (see api/auth.py): {', '.join(open_routes)}")


def install(app: FastAPI) -> None:
    app.add_exception_handler(Unauthorized, auth_error)
    app.add_exception_handler(Forbidden, auth_error)
