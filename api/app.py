"""The gridmap HTTP API: the app factory, and the app uvicorn serves (`api.app:app`).

    api/routes/units.py      /units: read units as GeoJSON, history, lineage, edits
    api/routes/locate.py     /locate: which units hold a point (the point-in-grid API)
    api/routes/incidents.py  /incidents, /stats: reports, dispatch, lifecycle, counts
    api/routes/workers.py    /workers: the people incidents are dispatched to
    api/routes/open311.py    /open311/v2: the GeoReport v2 facade for civic-reporting clients
    api/routes/plans.py      /plans, /validate: draw, compare, edit, commit plans; check units
    api/routes/ogc.py        /ogc: OGC API - Features over units and incidents (QGIS, GDAL)
    api/routes/tiles.py      /tiles/{level}/{z}/{x}/{y}.mvt: Mapbox vector tiles of one level
    api/routes/maps.py       /maps: overview, dispatch and plan maps (Leaflet, every asset served here)
    api/routes/admin.py      /keys, /audit (admins) and /whoami
    api/routes/login.py      /login, /logout: a session cookie for the maps in a browser
    api/routes/evaluate.py   /evaluate/{token}: the reporter rates the result (回访/民评)
    api/routes/health.py     /, /health
    api/security.py          who may call what: keys, sessions, the permission each route needs
    api/errors.py            each kind of error to its status, and the one error shape
    api/deps.py              what routes share: the caller, a connection, bbox, as-of
    api/answers.py           heavy answers shared by callers asking the same at once (/stats)
    api/georeport.py         Open311 GeoReport answers and errors, JSON or XML
    api/limits.py            the request body size limit (413)
    api/openapi.py           the OpenAPI document, with the one error shape every error answer has

A route parses its request, calls geo (a use case, or a reader in geo/db), and renders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from starlette.routing import Route

from api import errors, limits, openapi, security
from api.routes import (
    admin,
    evaluate,
    health,
    incidents,
    locate,
    login,
    maps,
    ogc,
    open311,
    plans,
    tiles,
    units,
    workers,
)
from geo import settings as config
from geo.db import incident_months, pool, replica
from geo.db.connection import connect, database_url
from geo.usecases import incidents as intake


def create_app(settings: config.Settings | None = None) -> FastAPI:
    """The app over the database the settings name, with every route, handler and check."""
    settings = settings or config.get()
    security.configure(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open_pool(database_url(settings), settings.db_wait)
        security.announce()
        rounds = [asyncio.create_task(_keep_months()), asyncio.create_task(_close_unevaluated())]
        yield
        for task in rounds:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        replica.close()
        pool.close_pool()

    app = FastAPI(
        title="gridmap",
        description="Nested, versioned grid-governance units (street, community, grid, compound, "
                    "small neighbourhood, building) on PostGIS.",
        version="0.1.0",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (health, units, locate, incidents, workers, open311, plans, ogc, tiles, maps, admin, login,
                   evaluate):
        app.include_router(module.router)
    # GET /locate carries other services' load: a plain Starlette route, placed first, without
    # FastAPI's per-request machinery; api/routes/locate.py describes it to OpenAPI.
    app.router.routes.insert(0, Route("/locate", locate.locate_fast, methods=["GET"], include_in_schema=False))
    openapi.install(app, documented=[locate.DOCUMENTATION])
    app.add_middleware(limits.BodyLimit, limit=limits.max_body_bytes(settings.max_body_mb))
    security.install(app)
    security.check_routes(app)  # every route names the permission it needs (api/security.py)
    return app


MONTHS_ROUND_S = 24 * 3600  # how often a running server makes the incident months ahead
MONTHS_RETRY_S = 600  # and how soon it tries again when that failed (database down, table busy)


async def _keep_months() -> None:
    """The months incidents are partitioned by, made ahead of time: at start and once a day
    (geo/db/incident_months.py). A failure is logged and tried again; it never stops the app:
    a report for a month without its partition is stored all the same (incident_default)."""
    log = logging.getLogger("gridmap.months")

    def keep() -> list[str]:
        with pool.pool().connection() as conn:
            return incident_months.keep(conn)

    while True:
        try:
            made = await asyncio.to_thread(keep)
            if made:
                log.info("incident months made: %s", ", ".join(made))
            wait = MONTHS_ROUND_S
        except Exception as exc:  # noqa: BLE001 - any failure waits for the next round
            log.warning("incident months not made (tried again in %d s): %s", MONTHS_RETRY_S, exc)
            wait = MONTHS_RETRY_S
        await asyncio.sleep(wait)


EVALUATION_ROUND_S = 600  # how often a running server closes what its reporters did not rate in time


async def _close_unevaluated() -> None:
    """Resolved incidents their reporters did not rate within GRIDMAP_EVALUATION_HOURS are closed
    as not evaluated, every EVALUATION_ROUND_S (each worker; each incident once, by its version)."""
    log = logging.getLogger("gridmap.evaluation")
    hours = config.get().evaluation_hours

    def close() -> list[int]:
        with connect(database_url(), autocommit=True) as conn:  # each incident its own transaction
            return intake.close_unevaluated(conn, hours)

    while True:
        try:
            closed = await asyncio.to_thread(close)
            if closed:
                log.info("closed as not evaluated: %d incident(s)", len(closed))
        except Exception as exc:  # noqa: BLE001 - any failure waits for the next round
            log.warning("not-evaluated incidents not closed (tried again in %d s): %s", EVALUATION_ROUND_S, exc)
        await asyncio.sleep(EVALUATION_ROUND_S)


app = create_app()
