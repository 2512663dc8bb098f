"""/tiles: Mapbox vector tiles of one unit level, for city-wide maps (geo/db/tiles.py builds
them; geo/tiles/maths.py has the tile maths)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from api.deps import AsOf, Conn
from api.security import require
from geo.db import tiles
from geo.tiles import maths
from geo.units import levels

router = APIRouter(tags=["tiles"], dependencies=[require("read")])

# Current tiles: keep, but ask again each time (a 304 costs one small query), so a boundary
# commit shows at once. A state an hour old changes only if a backdated load adds units; a more
# recent one can still change, as a version's valid_from is the start of the transaction
# that wrote it, which may commit later.
CURRENT_CACHE = "public, no-cache"
PAST_CACHE = "public, max-age=3600"
SETTLED = timedelta(hours=1)
GZIP_FROM = 1024  # bytes: smaller tiles go as they are


@router.get(
    "/tiles/{level}/{z}/{x}/{y}.mvt",
    summary="A Mapbox vector tile of one unit level (XYZ, web mercator)",
    response_class=Response,
    responses={
        200: {"content": {maths.MEDIA_TYPE: {}}, "description": "the tile"},
        204: {"description": "no unit reaches this tile: no body"},
        304: {"description": "unchanged since the ETag sent in If-None-Match"},
        422: {"description": "unknown level, z/x/y out of range, bad as_of or datum"},
    },
)
def tile(
    level: Annotated[str, Path(description=", ".join(levels.LEVELS))],
    z: Annotated[str, Path(description=f"zoom, 0-{maths.MAX_ZOOM}")],
    x: Annotated[str, Path(description="column from the west, 0 to 2^z - 1")],
    y: Annotated[str, Path(description="row from the north, 0 to 2^z - 1")],
    conn: Conn,
    when: AsOf,
    datum: Annotated[str | None, Query(description="wgs84, or gcj02 to overlay Amap/Gaode base tiles")] = "wgs84",
    if_none_match: Annotated[str | None, Header()] = None,
    accept_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    """One layer named after the level; each feature's id is the unit id, with properties `id`,
    `code`, `name`, `level`, `households`, `parent_id` (the first direct parent) and, for
    community, grid and neighbourhood, `band` ("below", "in" or "above" the household band).
    Extent 4096, buffer 64. An empty tile answers 204 with no body. `ETag` changes with every
    committed change to the level; send it back in If-None-Match to get a 304. Tiles over 1 KB
    are gzipped for clients that accept it (Content-Encoding: gzip)."""
    lv = levels.parse_level(level)
    zi, xi, yi = maths.parse_tile(z, x, y)
    which = maths.parse_datum(datum)
    past = when is not None and when < datetime.now(UTC) - SETTLED
    headers = {"Cache-Control": PAST_CACHE if past else CURRENT_CACHE, "Vary": "Accept-Encoding"}
    headers["ETag"] = maths.etag(lv, tiles.level_state(conn, lv), as_of=when, datum=which)
    if matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    body = tiles.render(conn, lv, zi, xi, yi, as_of=when, datum=which)
    if not body:
        return Response(status_code=204, headers=headers)
    if len(body) >= GZIP_FROM and _accepts_gzip(accept_encoding):
        body = gzip.compress(body, compresslevel=1, mtime=0)  # a 1.3 MB tile: 0.45 MB in 12 ms
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=maths.MEDIA_TYPE, headers=headers)


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether an If-None-Match header names `tag` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    bare = tag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == bare:
            return True
    return False


def _accepts_gzip(header: str | None) -> bool:
    for part in (header or "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False
