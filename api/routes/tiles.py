"""/tiles: Mapbox vector tiles of one unit level, for city-wide maps (geo/db/tiles.py builds
them; geo/tiles/maths.py has the tile maths)."""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Annotated

import psycopg
from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.deps import AsOf
from api.security import require
from geo import settings
from geo.db import generation, replica, tiles
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
IMMUTABLE = "public, max-age=31536000, immutable"


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
async def tile(
    level: Annotated[str, Path(description=", ".join(levels.LEVELS))],
    z: Annotated[str, Path(description=f"zoom, 0-{maths.MAX_ZOOM}")],
    x: Annotated[str, Path(description="column from the west, 0 to 2^z - 1")],
    y: Annotated[str, Path(description="row from the north, 0 to 2^z - 1")],
    when: AsOf,
    datum: Annotated[str | None, Query(description="wgs84, or gcj02 to overlay Amap/Gaode base tiles")] = "wgs84",
    v: Annotated[str | None, Query(description="the level's state the page was made with (from /maps): "
                                               "a tile URL carrying the current one is cached as immutable")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
    accept_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    """One layer named after the level; each feature's id is the unit id, with properties `id`,
    `code`, `name`, `level`, `households`, `parent_id` (the first direct parent) and, for
    community, grid and neighbourhood, `band` ("below", "in" or "above" the household band).
    Extent 4096, buffer 64. An empty tile answers 204 with no body, and so does a zoom below
    the level's first (street 0, community 10, grid 13, compound and small neighbourhood 14,
    building 15; header `Gridmap-Min-Zoom`). `ETag` changes with every committed change to
    the level; send it back in If-None-Match to get a 304. With `v` equal to the level's
    current state (the maps put it in their tile URLs) the tile is cached as immutable: a
    commit changes the state, so pages made after it ask other URLs. Tiles over 1 KB are
    gzipped for clients that accept it (Content-Encoding: gzip). Each process keeps the
    current tiles it made (64 MB), so a tile asked again costs no query but the state's."""
    lv = levels.parse_level(level)
    zi, xi, yi = maths.parse_tile(z, x, y)
    which = maths.parse_datum(datum)
    if zi < levels.MIN_ZOOM[lv]:  # too many units to read on one tile: coarser levels stand for them
        return Response(status_code=204, headers={"Cache-Control": IMMUTABLE, "Gridmap-Min-Zoom":
                                                  str(levels.MIN_ZOOM[lv])})
    if when is None:  # a tile made since the last commit: no database but the shared generation check
        kept = _kept(lv, zi, xi, yi, which, await generation.gate().latest())
        if kept is not None:
            state, body = kept
            return _answer(lv, state, when, which, v, if_none_match, accept_encoding, body)
    # a read that may lag: on a streaming replica when there is one (geo/db/replica.py)
    return await run_in_threadpool(replica.read, lambda conn: _tile(conn, lv, zi, xi, yi, when, which, v,
                                                                        if_none_match, accept_encoding))


def _source() -> str:
    return settings.get().database_url or ""


def _kept(lv: str, z: int, x: int, y: int, datum: str, latest: int) -> tuple[str, tuple[bytes, bytes | None]] | None:
    """The tile this process made, if the level's state it was made in is the latest generation's."""
    known = _states.get((_source(), lv))
    if known is None or known[0] != latest:
        return None
    body = _cache.get((_source(), lv, z, x, y, datum, known[1]))
    return None if body is None else (known[1], body)


def _answer(lv: str, state: str, when: datetime | None, which: str, v: str | None, if_none_match: str | None,
            accept_encoding: str | None, body: tuple[bytes, bytes | None]) -> Response:
    past = when is not None and when < datetime.now(UTC) - SETTLED
    headers = {"Cache-Control": PAST_CACHE if past else CURRENT_CACHE, "Vary": "Accept-Encoding"}
    if when is None and v is not None and v == state:  # the URL names the boundaries: it never changes
        headers["Cache-Control"] = IMMUTABLE
    headers["ETag"] = maths.etag(lv, state, as_of=when, datum=which)
    if matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    raw, packed = body
    if not raw:
        return Response(status_code=204, headers=headers)
    if packed is not None and _accepts_gzip(accept_encoding):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type=maths.MEDIA_TYPE, headers=headers)
    return Response(raw, media_type=maths.MEDIA_TYPE, headers=headers)


def _tile(conn: psycopg.Connection, lv: str, zi: int, xi: int, yi: int, when: datetime | None, which: str,
          v: str | None, if_none_match: str | None, accept_encoding: str | None) -> Response:
    seen, state = tiles.level_state_at(conn, lv)  # the generation is read before the state is counted
    key = (_source(), lv, zi, xi, yi, which, state) if when is None else None
    body = _cache.get(key) if key else None
    if body is None:
        etag = maths.etag(lv, state, as_of=when, datum=which)
        if matches(if_none_match, etag):  # the client has it: no need to make it
            return _answer(lv, state, when, which, v, if_none_match, accept_encoding, (b"", None))
        raw = tiles.render(conn, lv, zi, xi, yi, as_of=when, datum=which)
        # a 1.3 MB tile: 0.45 MB in 12 ms
        body = (raw, gzip.compress(raw, compresslevel=1, mtime=0) if len(raw) >= GZIP_FROM else None)
        if key:
            _cache.put(key, body)
    if when is None:
        _states[(_source(), lv)] = (seen, state)
    return _answer(lv, state, when, which, v, if_none_match, accept_encoding, body)


class _Tiles:
    """Current tiles each process keeps, keyed by the level's state (so a commit makes new
    keys and the old entries age out), bounded by bytes: the least recently used go first."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.used = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[object, ...], tuple[bytes, bytes | None]] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> tuple[bytes, bytes | None] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[object, ...], value: tuple[bytes, bytes | None]) -> None:
        size = len(value[0]) + len(value[1] or b"")
        if size > self.limit // 4:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = value
            self.used += size
            while self.used > self.limit:
                _, (raw, packed) = self._entries.popitem(last=False)
                self.used -= len(raw) + len(packed or b"")


_cache = _Tiles(64 * 1024 * 1024)
_states: dict[tuple[str, str], tuple[int, str]] = {}  # (database, level) -> (generation, the level's state then)


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
