"""/workers: the people who handle incidents (grid workers, grid heads, neighbourhood heads,
community workers), attached to units. A worker's phone comes back masked for callers without
the `contact` permission (the readers in geo/db decide). Reads need `read`; adding, changing
and deactivating need `dispatch`. A worker is never deleted: DELETE deactivates, and the open
incidents handed to the worker go back to the dispatch queue (geo/usecases/workers.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Conn, DispatchCaller, Page, ReadCaller, encoded, encoded_rows, paging
from api.security import require
from geo.db import workers
from geo.errors import NotFound
from geo.usecases import workers as staff

router = APIRouter(tags=["workers"], dependencies=[require("read")])


class WorkerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100)
    role: str = Field(..., description="grid_worker, grid_head, neighbourhood_head, community_worker")
    unit_id: int
    phone: str | None = Field(None, max_length=40)


class WorkerChange(BaseModel):
    """The fields to change; those not sent keep their value (phone null clears it)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=100)
    role: str | None = Field(None, description="grid_worker, grid_head, neighbourhood_head, community_worker")
    unit_id: int | None = Field(None, description="a current unit of the role's level")
    phone: str | None = Field(None, max_length=40)
    active: bool | None = Field(None, description="false deactivates (as DELETE does), true reactivates")


@router.post("/workers", status_code=201, summary="Attach a worker to a grid, community or neighbourhood")
def add_worker(body: WorkerIn, conn: Conn, who: DispatchCaller) -> dict[str, Any]:
    return encoded(staff.add_worker(conn, body.name, body.role, body.unit_id, body.phone, who=who))


@router.get("/workers", summary="Workers, by id: of a unit and every unit under it, unplaced, active")
def list_workers(
    response: Response,
    conn: Conn,
    who: ReadCaller,
    page: Annotated[Page, paging(100, 1000)],
    unit_id: Annotated[int | None, Query(description="only workers of this unit and of every unit under it")] = None,
    unplaced: Annotated[bool | None, Query(description="true: only workers left on a retired unit by a "
                                                       "boundary change, who need a unit")] = None,
    active: Annotated[bool | None, Query()] = None,
) -> list[dict[str, Any]]:
    if unit_id is not None and not workers.unit_known(conn, unit_id):
        raise NotFound(f"no unit with id {unit_id}")
    total, items = workers.page(conn, viewer=who, unit_id=unit_id, unplaced=unplaced, active=active,
                                limit=page.limit, offset=page.offset)
    response.headers["X-Total-Count"] = str(total)
    return encoded_rows(items)


@router.get("/workers/{worker_id}", summary="One worker with their unit and history")
def get_worker(worker_id: int, conn: Conn, who: ReadCaller) -> dict[str, Any]:
    return encoded(workers.read(conn, worker_id, viewer=who))


@router.put("/workers/{worker_id}", summary="Change a worker's name, phone, role, unit or activity")
def change_worker(worker_id: int, body: WorkerChange, conn: Conn, who: DispatchCaller) -> dict[str, Any]:
    return encoded(staff.update_worker(conn, worker_id, body.model_dump(exclude_unset=True), who=who))


@router.delete("/workers/{worker_id}", summary="Deactivate a worker; their open incidents go back to the queue")
def deactivate_worker(worker_id: int, conn: Conn, who: DispatchCaller) -> dict[str, Any]:
    return encoded(staff.deactivate_worker(conn, worker_id, who=who))
