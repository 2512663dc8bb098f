"""The boundary index each API worker keeps in memory for /locate.

`current()` checks the boundary generation (a counter every committed change to units
bumps, see migration 0001) on each call and rebuilds the index when it moved, so a lookup
never answers from boundaries older than the last commit. Indexes of past times (as_of)
are built on demand and kept for the few most recent states asked for.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections import OrderedDict
from datetime import datetime

import psycopg

from api import db
from geo.db.connection import database_url
from geo import locate
from geo.locate import Locator

PAST_STATES_KEPT = 2

_lock = threading.Lock()
_current: Locator | None = None
_past: "OrderedDict[tuple, Locator]" = OrderedDict()


def _generation() -> int:
    """The boundary generation now (a pooled connection: threads do not each keep one)."""
    with db.pool().connection() as conn:
        generation = conn.execute("SELECT generation FROM boundary_generation").fetchone()[0]
        conn.commit()
        return generation


class GenerationGate:
    """The latest boundary generation for async handlers, with one query serving many requests.

    Strict: every caller gets the result of a query that *started after it asked*, so a
    change committed before the request arrived is always seen. Callers that ask while no
    query has started yet share the next one, so under load one round trip serves many.
    """

    def __init__(self) -> None:
        self._conn = None
        self._next: asyncio.Future | None = None
        self._running: asyncio.Task | None = None

    async def latest(self) -> int:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._running is None or self._running.done():
                self._running = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._next)

    async def _run(self) -> None:
        while self._next is not None:
            waiting, self._next = self._next, None  # later callers wait for the next query
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        database_url(), autocommit=True, prepare_threshold=0)
                cur = await self._conn.execute("SELECT generation FROM boundary_generation")
                row = await cur.fetchone()
                waiting.set_result(row[0])
            except Exception as exc:  # the database is down: every waiter hears it
                self._conn = None
                waiting.set_exception(exc)


_gate: GenerationGate | None = None


async def current_async() -> Locator:
    """`current()` for async handlers: the generation check does not block the event loop."""
    global _gate
    if _gate is None:
        _gate = GenerationGate()
    generation = await _gate.latest()
    index = _current
    if index is not None and index.generation is not None and index.generation >= generation:
        return index
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_rebuild, generation)


def _settle() -> None:
    """Move the index's millions of objects out of the garbage collector's sight: a full
    collection walking them stalls every request for tens of milliseconds."""
    gc.collect()
    gc.freeze()


def _rebuild(generation: int, conn: psycopg.Connection | None = None) -> Locator:
    global _current
    with _lock:
        if _current is None or _current.generation is None or _current.generation < generation:
            if conn is not None:
                _current = locate.load(conn)
            else:
                with db.pool().connection() as own:
                    _current = locate.load(own)
            _settle()
        return _current


def current(conn: psycopg.Connection | None = None) -> Locator:
    """The index of the boundaries stored now, rebuilt if any committed change is newer.

    With `conn` (a request's own connection, possibly inside its transaction) the check and
    any rebuild use it: a request never holds one pooled connection while waiting for a
    second, which under load starves the pool."""
    if conn is not None:
        generation = conn.execute("SELECT generation FROM boundary_generation").fetchone()[0]
    else:
        generation = _generation()
    index = _current
    if index is not None and index.generation is not None and index.generation >= generation:
        return index
    return _rebuild(generation, conn)


_building: dict[tuple, threading.Lock] = {}


def as_of(when: datetime, conn: psycopg.Connection | None = None) -> Locator:
    """The index of the boundaries valid at `when`: one build per state, however many ask
    (with `conn`, on that connection, as for `current`)."""
    if conn is not None:
        return _as_of(when, conn)
    with db.pool().connection() as own:
        index = _as_of(when, own)
        own.commit()
        return index


def _as_of(when: datetime, conn: psycopg.Connection) -> Locator:
    key = conn.execute(
        "SELECT coalesce(max(id), 0), count(*) FROM change_set WHERE created_at <= %s", [when]
    ).fetchone()
    with _lock:
        if key in _past:
            _past.move_to_end(key)
            return _past[key]
        building = _building.setdefault(key, threading.Lock())
    with building:  # the first asker builds; the others wait for it and take its index
        with _lock:
            if key in _past:
                return _past[key]
        index = locate.load(conn, as_of=when)
        with _lock:
            _past[key] = index
            _building.pop(key, None)
            while len(_past) > PAST_STATES_KEPT:
                _past.popitem(last=False)
        return index


def reset() -> None:
    global _current
    with _lock:
        _current = None
        _past.clear()
