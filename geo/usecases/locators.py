"""The boundary index each serving process keeps in memory for /locate and for intake.

`current()` checks the boundary generation (geo/db/generation.py) on each call and rebuilds
the index when it moved, so a lookup never answers from boundaries older than the last
commit. Indexes of past times (as_of) are built on demand and kept for the few most recent
states asked for.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from datetime import datetime

import anyio.to_thread
import psycopg

from geo.db import generation, pool, units
from geo.db.connection import database_url
from geo.locate.locator import Locator

PAST_STATES_KEPT = 2

_lock = threading.Lock()
_current: Locator | None = None
_past: OrderedDict[tuple[int, int], Locator] = OrderedDict()
_building: dict[tuple[int, int], threading.Lock] = {}
_gate: generation.Gate | None = None


def _fresh(generation_now: int) -> Locator | None:
    index = _current
    if index is not None and index.generation is not None and index.generation >= generation_now:
        return index
    return None


def _generation() -> int:
    """The boundary generation now (a pooled connection: threads do not each keep one)."""
    with pool.pool().connection() as conn:
        now = generation.current(conn)
        conn.commit()
        return now


async def current_async() -> Locator:
    """`current()` for async handlers: the generation check does not block the event loop, and
    many requests share one check (generation.Gate)."""
    global _gate
    if _gate is None:
        _gate = generation.Gate(database_url)
    latest = await _gate.latest()
    index = _fresh(latest)
    if index is None:
        # built in the worker threads requests run in (anyio's, which the web framework shares)
        index = await anyio.to_thread.run_sync(_rebuild, latest)
    return index


def _settle() -> None:
    """Move the index's millions of objects out of the garbage collector's sight: a full
    collection walking them stalls every request for tens of milliseconds."""
    gc.collect()
    gc.freeze()


def _rebuild(generation_now: int, conn: psycopg.Connection | None = None) -> Locator:
    global _current
    with _lock:
        if _fresh(generation_now) is None:
            if conn is not None:
                _current = units.locator(conn)
            else:
                with pool.pool().connection() as own:
                    _current = units.locator(own)
            _settle()
        assert _current is not None
        return _current


def current(conn: psycopg.Connection | None = None) -> Locator:
    """The index of the boundaries stored now, rebuilt if any committed change is newer.

    With `conn` (a request's own connection, possibly inside its transaction) the check and
    any rebuild use it: a request never holds one pooled connection while waiting for a
    second, which under load starves the pool."""
    now = generation.current(conn) if conn is not None else _generation()
    return _fresh(now) or _rebuild(now, conn)


def as_of(when: datetime, conn: psycopg.Connection | None = None) -> Locator:
    """The index of the boundaries valid at `when`: one build per state, however many ask
    (with `conn`, on that connection, as for `current`)."""
    if conn is not None:
        return _as_of(when, conn)
    with pool.pool().connection() as own:
        index = _as_of(when, own)
        own.commit()
        return index


def _as_of(when: datetime, conn: psycopg.Connection) -> Locator:
    key = units.state_at(conn, when)
    with _lock:
        if key in _past:
            _past.move_to_end(key)
            return _past[key]
        building = _building.setdefault(key, threading.Lock())
    with building:  # the first asker builds; the others wait for it and take its index
        with _lock:
            if key in _past:
                return _past[key]
        index = units.locator(conn, as_of=when)
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
