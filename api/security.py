"""Who may call what over HTTP: keys and sessions in, identities out, permissions checked.

Every route names the one permission it needs; geo/security/identity.py ROLES says which
roles hold it.

    routers      APIRouter(dependencies=[require("read")]): every route of the router
    writes       who: Caller("plan") (api/deps.py): the route's own permission, and the caller
    GET /locate  the plain Starlette route awaits `authorize(request, "read")`

`check_routes(app)` refuses to build an app with a route that names no permission and is
not in PUBLIC, so a new route cannot be left open by mistake.

Credentials: `Authorization: Bearer <key>` or `X-API-Key: <key>` (on /open311 also the
GeoReport `api_key` field or parameter), or, for GET and HEAD
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
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import RedirectResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.errors import Forbidden, Unauthorized, answer, kind_of, page_answer, status_of, wants_page
from geo import settings as config
from geo.db import keys, pool
from geo.security.identity import ANONYMOUS, PERMISSIONS, Identity, roles_with
from geo.security.keys import KEY_PATTERN, digest

log = logging.getLogger("uvicorn.error")  # printed the way uvicorn prints its own warnings

SESSION_COOKIE = "gridmap_session"
# (/evaluate/{token}: the token in the path is the credential, one incident's)
PUBLIC = {"/", "/health", "/login", "/logout", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
          "/evaluate/{token}"}
SAFE_METHODS = ("GET", "HEAD")
CACHE_MAX = 10_000


# ---------------------------------------------------------------------------
# On or off, and the settings this module reads
# ---------------------------------------------------------------------------

def is_loopback(host: str | None) -> bool:
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_mode(setting: bool | None, host: str | None = None) -> bool:
    """Whether auth is on: GRIDMAP_AUTH on or off; unset, off only when serving on loopback
    (`host` None, an app started without `gridmap serve`, counts as not loopback)."""
    if setting is not None:
        return setting
    return not (host is not None and is_loopback(host))


@dataclass(frozen=True)
class Policy:
    """What this module takes from the settings (geo/settings.py)."""

    on: bool
    cache_seconds: float = 30.0
    session_hours: float = 12.0
    cookie_secure: bool = False
    secret: str | None = None

    @classmethod
    def of(cls, settings: config.Settings, on: bool | None = None) -> Policy:
        return cls(resolve_mode(settings.auth) if on is None else on, settings.auth_cache_seconds,
                   settings.session_hours, settings.cookie_secure, settings.secret)


_policy: Policy | None = None


def policy() -> Policy:
    global _policy
    if _policy is None:
        _policy = Policy.of(config.get())
    return _policy


def configure(settings: config.Settings | None = None, *, on: bool | None = None) -> None:
    """Take the settings (the app does as it is built); `on` forces auth on or off in this
    process (tests, benchmarks); configure() alone reads the environment again at next use."""
    global _policy, _serializer
    if settings is None and on is None:
        _policy = None  # read again at next use
    else:
        _policy = Policy.of(settings or config.get(), on)
    _serializer = None


def enabled() -> bool:
    return policy().on


def mode() -> str:
    return "on" if enabled() else "off"


def forget_all() -> None:
    """Empty this worker's key cache."""
    _cache.clear()


def announce() -> None:
    """At startup: say loudly when auth is off, and how to make a key when there is none."""
    if not enabled():
        log.warning("AUTH IS OFF: every request is served as an admin and contacts are shown unmasked. "
                    "This is for a developer's own machine: requests arriving on any address but loopback "
                    "are refused. Set GRIDMAP_AUTH=on to require API keys.")
        return
    try:
        with pool.pool().connection() as conn:
            count = keys.active_count(conn)
    except Exception:  # the database is down: /health says so, requests will too
        return
    if count == 0:
        log.warning("auth is on and no API key exists: every request will be refused. "
                    "Create one with: gridmap keys create --role admin --name NAME")


# ---------------------------------------------------------------------------
# Errors: 401 and 403, with what is needed
# ---------------------------------------------------------------------------

def _needs(permission: str | None) -> dict[str, Any]:
    if permission is None:
        return {}
    return {"needs": {"permission": permission, "roles": roles_with(permission), "means": PERMISSIONS[permission]}}


async def auth_error(request: Request, exc: Exception) -> Response:
    """401/403 in the error shape, naming what is needed; a browser on a map page is sent to
    /login (401) or shown an error page (403)."""
    assert isinstance(exc, (Unauthorized, Forbidden))
    if wants_page(request):
        if isinstance(exc, Unauthorized):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            login = request.app.url_path_for("login_form")
            return RedirectResponse(f"{login}?next={quote(target, safe='')}", status_code=303)
        return page_answer(request, status_of(exc), kind_of(exc), str(exc))
    headers = None
    if isinstance(exc, Unauthorized):
        challenge = 'Bearer realm="gridmap"'
        if exc.invalid:
            challenge += ', error="invalid_token"'
        headers = {"WWW-Authenticate": challenge}
    body = {"error": kind_of(exc), "detail": str(exc), **_needs(exc.permission)}
    return answer(request, body, status_of(exc), headers)  # (GeoReport's shape under /open311/)


# ---------------------------------------------------------------------------
# Who is calling
# ---------------------------------------------------------------------------

class _Cache:
    """Verified (and refused) credentials of this worker, each for the policy's TTL."""

    def __init__(self) -> None:
        self.entries: dict[object, tuple[float, Identity | None]] = {}
        self.lock = threading.Lock()  # revocations come from threadpool handlers

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
            self.entries[key] = (now + policy().cache_seconds, identity)

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


# A key a facade found in the request itself (Open311 clients send `api_key` as a form field or
# query parameter): api/routes/open311.py puts it here, and it counts as if sent in X-API-Key.
KEY_IN_REQUEST = "gridmap.key_in_request"


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be `Bearer <key>` (or send the key in X-API-Key)",
                               invalid=True)
        return value.strip()
    key = request.headers.get("x-api-key")
    if key is not None:
        return key.strip()
    found = request.scope.get(KEY_IN_REQUEST)
    return str(found).strip() if found else None


def _lookup_key(key: str) -> Identity | None:
    with pool.pool().connection() as conn:
        return keys.verify(conn, key)


def _lookup_session(key_id: int) -> Identity | None:
    with pool.pool().connection() as conn:
        return keys.identity_by_id(conn, key_id)


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
        known: Identity | None = request.scope[_SCOPE_KEY]
        return known
    identity: Identity | None
    if not enabled():
        server = request.scope.get("server")
        if server and not is_loopback(server[0]):
            raise Forbidden("auth is off, so this server answers on loopback only: turn auth on "
                            "(GRIDMAP_AUTH=on) and use an API key")
        identity = ANONYMOUS
    else:
        key = _presented_key(request)
        if key is not None:
            if KEY_PATTERN.fullmatch(key) is None:  # no query, no cache entry for garbage
                raise Unauthorized("this is not a gridmap API key (gm_<prefix>_<secret>)", invalid=True)
            identity = await _cached(("key", digest(key)), lambda: _lookup_key(key))
            if identity is None:
                raise Unauthorized("this API key is not valid (unknown or revoked)", invalid=True)
        elif request.method in SAFE_METHODS and SESSION_COOKIE in request.cookies:
            if _serializer is None:  # the first session: the secret may come from the database
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
                           f"(role {' or '.join(roles_with(permission))}): send `Authorization: Bearer <key>` "
                           "or `X-API-Key: <key>`, or log in at /login for the maps", permission)
    if not identity.can(permission):
        raise Forbidden(f"{identity.label} may not do this: it needs the {permission!r} permission, held by "
                        f"{' and '.join(roles_with(permission))}", permission)
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


def require(permission: str) -> DependsParam:
    """A FastAPI dependency: the caller, who must hold `permission`."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def caller(request: Request, _bearer: Annotated[Any, Depends(_BEARER)],
                     _key: Annotated[Any, Depends(_API_KEY)]) -> Identity:
        return await authorize(request, permission)

    caller.permission = permission  # type: ignore[attr-defined]  # check_routes looks for it
    caller.__name__ = f"require_{permission}"
    dependency: DependsParam = Depends(caller)
    return dependency


Endpoint = Callable[[Request], Awaitable[Response]]


def guarded(permission: str) -> Callable[[Endpoint], Endpoint]:
    """The same for a plain Starlette endpoint (GET /locate)."""
    def wrap(endpoint: Endpoint) -> Endpoint:
        async def guarded_endpoint(request: Request) -> Response:
            await authorize(request, permission)
            return await endpoint(request)

        guarded_endpoint.permission = permission  # type: ignore[attr-defined]
        return guarded_endpoint
    return wrap


# ---------------------------------------------------------------------------
# Session cookies (the maps in a browser)
# ---------------------------------------------------------------------------

_serializer: Any = None


def _signer() -> Any:
    """Signs session cookies with GRIDMAP_SECRET, or the secret kept in the database.

    itsdangerous (Pallets, what Flask and Starlette's sessions use) gives HMAC signing
    with an issue time checked against a maximum age, rather than hand-rolled crypto."""
    global _serializer
    if _serializer is None:
        from itsdangerous import URLSafeTimedSerializer

        secret = policy().secret
        if secret is not None:
            key = secret.encode()
        else:
            with pool.pool().connection() as conn:
                key = keys.stored_secret(conn)
        _serializer = URLSafeTimedSerializer(key, salt="gridmap-session")
    return _serializer


def session_seconds() -> int:
    return int(policy().session_hours * 3600)


def session_cookie(identity: Identity) -> str:
    return str(_signer().dumps({"k": identity.key_id}))


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
    if KEY_PATTERN.fullmatch(key) is None:
        return None
    return await _cached(("key", digest(key)), lambda: _lookup_key(key))


# ---------------------------------------------------------------------------
# Wiring
# ---------------------------------------------------------------------------

def permissions_of(route: Any) -> set[str]:
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


def routes(app: FastAPI) -> list[Any]:
    """Every route as served, included routers flattened (FastAPI 0.16x keeps them nested)."""
    from fastapi import routing

    flatten = getattr(routing, "iter_route_contexts", None)
    return list(flatten(app.routes)) if flatten else list(app.routes)


def check_routes(app: FastAPI) -> None:
    """Every route names a permission, or is public on purpose."""
    open_routes = [f"{sorted(getattr(r, 'methods', None) or [])} {r.path}" for r in routes(app)
                   if getattr(r, "path", None) not in PUBLIC and not permissions_of(r)]
    if open_routes:
        raise RuntimeError(f"routes without a permission (see api/security.py): {', '.join(open_routes)}")


def install(app: FastAPI) -> None:
    app.add_exception_handler(Unauthorized, auth_error)
    app.add_exception_handler(Forbidden, auth_error)
