"""/ (to the docs) and /health: the database reachable, the schema applied, units stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from api import security
from api.deps import Conn
from geo.db import units
from geo.db.migrations import applied

router = APIRouter()


@router.get("/", include_in_schema=False)
def root(request: Request) -> RedirectResponse:
    return RedirectResponse(request.app.docs_url or "/docs")


@router.get("/health", summary="Database reachable, schema applied, units stored")
def health(conn: Conn) -> dict[str, Any]:
    return {"status": "ok", "auth": security.mode(), "migrations": applied(conn), "units": units.count_units(conn)}
