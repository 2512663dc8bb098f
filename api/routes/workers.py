"""/workers: the people who handle incidents (grid workers, grid heads, neighbourhood heads,
community workers), attached to units. A worker's phone comes back masked for callers without
the `contact` permission (the reader in geo/db decides)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Conn, DispatchCaller, ReadCaller, encoded, encoded_rows
from api.security import require
from geo.db import workers
from geo.usecases import incidents as intake

router = APIRouter(tags=["workers"], dependencies=[require("read")])


class WorkerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100)
    role: str = Field(..., description="grid_worker, grid_head, neighbourhood_head, community_worker")
    unit_id: int
    phone: str | None = Field(None, max_length=40)


@router.post("/workers", status_code=201, summary="Attach a worker to a grid, community or neighbourhood")
def add_worker(body: WorkerIn, conn: Conn, who: DispatchCaller) -> dict[str, Any]:
    with conn.transaction():
        return encoded(intake.add_worker(conn, body.name, body.role, body.unit_id, body.phone, who=who))


@router.get("/workers", summary="Workers attached to a unit")
def list_workers(unit_id: int, conn: Conn, who: ReadCaller) -> list[dict[str, Any]]:
    return encoded_rows(workers.of_unit(conn, unit_id, viewer=who))
