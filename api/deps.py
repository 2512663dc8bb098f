"""What routes share, as FastAPI dependencies: the caller, a pooled connection, and one
parser each for a bbox, an as-of time and a time window. A route states what it needs in
its signature (`who: PlanCaller`, `conn: Conn`, `as_of: AsOf`) and gets it checked. And
`encoded`/`encoded_rows`: what geo returns, as JSON-ready data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Query
from fastapi.encoders import jsonable_encoder
from psycopg_pool import PoolTimeout

from api.security import require
from geo import settings
from geo.coords.points import BBox, parse_bbox
from geo.db import pool
from geo.errors import InvalidInput
from geo.security.identity import Identity
from geo.times import parse_time

ReadCaller = Annotated[Identity, require("read")]
ReportCaller = Annotated[Identity, require("report")]
DispatchCaller = Annotated[Identity, require("dispatch")]
PlanCaller = Annotated[Identity, require("plan")]
AdminCaller = Annotated[Identity, require("admin")]


def connection() -> Iterator[psycopg.Connection]:
    """A pooled connection for the request: committed when the route returns, rolled back
    when it raises."""
    with pool.pool().connection() as conn:
        yield conn


def spare_connection() -> Iterator[psycopg.Connection | None]:
    """A second connection, only if one is free right now (waiting for it while holding the
    first could starve the pool): work that can run in parallel uses it when it is there."""
    connections = pool.pool()
    try:
        conn = connections.getconn(timeout=0.05)
    except PoolTimeout:
        yield None
        return
    try:
        yield conn
    finally:
        connections.putconn(conn)


# scope="function": the connection goes back to the pool (its transaction committed, or rolled
# back) when the route returns and before the answer is sent, so a commit that fails (the
# database went away) is the request's error (503), not a broken connection after a 200.
Conn = Annotated[psycopg.Connection, Depends(connection, scope="function")]


def time_of(text: str | None) -> datetime | None:
    """An ISO 8601 time sent in a URL, in GRIDMAP_TZ when it names no zone. A URL's `+` arrives
    as a space: a time with a space where its zone's sign was gets told how to send it."""
    try:
        return parse_time(text, settings.get().tz)
    except InvalidInput as exc:
        raw = str(text).strip()
        if " " in raw and raw[:4].isdigit():
            raise InvalidInput(f"{exc} (in a URL, write + as %2B)") from None
        raise


def as_of(as_of: Annotated[str | None, Query(description="the state valid at this time (ISO 8601; "
                                                          "without a zone, Asia/Shanghai)")] = None) -> datetime | None:
    return time_of(as_of)


def bbox(bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")] = None) -> BBox | None:
    return parse_bbox(bbox)


AsOf = Annotated[datetime | None, Depends(as_of)]
BBoxQuery = Annotated[BBox | None, Depends(bbox)]


def encoded(value: object) -> dict[str, Any]:
    """A record (or any JSON object) as JSON-ready data: FastAPI's jsonable_encoder, whose
    result is typed Any, typed as what the route answers."""
    data: dict[str, Any] = jsonable_encoder(value)
    return data


def encoded_rows(value: object) -> list[dict[str, Any]]:
    """Records (a list of JSON objects) as JSON-ready data, like `encoded`."""
    rows: list[dict[str, Any]] = jsonable_encoder(value)
    return rows


@dataclass(frozen=True)
class Page:
    """Which slice of a list a request asks for."""

    limit: int
    offset: int


def paging(default: int, maximum: int) -> Any:
    """A dependency for `limit` (1..maximum, default) and `offset` (0..): one parser for every
    list that pages by offset. (OGC API collections page by id instead: api/routes/ogc.py.)"""

    def page(limit: int = default, offset: int = 0) -> Page:
        return Page(limit, offset)

    # the bounds are this call's: given as objects, since this module's annotations are strings
    page.__annotations__ = {"limit": Annotated[int, Query(ge=1, le=maximum)],
                            "offset": Annotated[int, Query(ge=0)], "return": Page}
    return Depends(page)
