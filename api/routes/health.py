"""/ (to the docs) and /health: the database reachable, the schema applied, units stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from api import security
from api.deps import Conn
from geo.db import replica, units
from geo.db.migrations import applied

router = APIRouter()


@router.get("/", include_in_schema=False)
def root(request: Request) -> RedirectResponse:
    return RedirectResponse(request.app.docs_url or "/docs")


@router.get("/health", summary="Database reachable, schema applied, units stored, replica streaming")
def health(conn: Conn) -> dict[str, Any]:
    """The units are counted once per boundary generation, not per call. `replica`: `none`, or
    whether the streaming replica answers (`streaming`, its replay lag in seconds), `unreachable`
    (reads go to the primary) or `promoted`."""
    return {"status": "ok", "auth": security.mode(), "migrations": applied(conn), "units": units.count_units(conn),
            "replica": replica.state()}
