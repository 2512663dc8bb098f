"""The boundary generation: a counter every committed change to units moves on.

Migration 0001's trigger bumps `boundary_generation.generation` in the transaction of every
change to unit_version, so a process that keeps something derived from the boundaries (the
/locate index, collection extents, tile states) asks one cheap query to know whether it is
still current. This module holds that query, the shared lock intake takes on the same row,
a gate that lets many async requests share one check, and a per-process cache of values
that hold until the generation moves.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import psycopg

from geo.db.connection import statements

GENERATION_SQL = "SELECT generation FROM boundary_generation"
T = TypeVar("T")


def current(conn: psycopg.Connection) -> int:
    """The boundary generation as this connection's transaction sees it."""
    row = conn.execute(GENERATION_SQL).fetchone()
    assert row is not None  # migration 0001 inserts the one row
    return int(row[0])


def hold_commits(conn: psycopg.Connection) -> None:
    """Wait for a boundary commit under way, and keep the next one waiting until this
    transaction ends. A commit holds the row from its first write to its end; reports share
    the lock among themselves, so they are assigned to the boundaries current when stored."""
    conn.execute(GENERATION_SQL + " FOR SHARE")


def move_on(conn: psycopg.Connection, past: int) -> int:
    """Set the generation beyond `past` and the value it holds (after a restore, whose
    counter may have gone backwards), and start a new history (epoch): an index snapshot of
    the database as it was, or of the one the backup came from, is never taken for this
    one. Returns the new generation."""
    has_epoch = conn.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'boundary_generation' "
                             "AND column_name = 'epoch'").fetchone()  # a backup from before migration 0008
    extra = ", epoch = gen_random_uuid(), complete_from = greatest(generation, %(past)s) + 1" if has_epoch else ""
    row = conn.execute("UPDATE boundary_generation SET generation = greatest(generation, %(past)s) + 1"
                       f"{extra} RETURNING generation", {"past": past}).fetchone()
    assert row is not None
    return int(row[0])


class Gate:
    """The latest generation for async handlers, with one query serving many requests.

    Strict: every caller gets the result of a query that *started after it asked*, so a
    change committed before the request arrived is always seen. Callers that ask while no
    query has started yet share the next one, so under load one round trip serves many.
    """

    def __init__(self, url: Callable[[], str]) -> None:
        self._url = url
        self._conn: psycopg.AsyncConnection | None = None
        self._next: asyncio.Future[int] | None = None
        self._running: asyncio.Future[None] | None = None

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
                        self._url(), autocommit=True, **statements(eager=True))
                cur = await self._conn.execute(GENERATION_SQL)
                row = await cur.fetchone()
                assert row is not None
                waiting.set_result(int(row[0]))
            except Exception as exc:  # the database is down: every waiter hears it
                self._conn = None
                waiting.set_exception(exc)


_gate: Gate | None = None


def gate() -> Gate:
    """This process's gate (one connection, shared by /locate and the tiles)."""
    global _gate
    if _gate is None:
        from geo.db.connection import database_url

        _gate = Gate(database_url)
    return _gate


class Cache(Generic[T]):
    """Values kept per process until the boundary generation moves (one per key).

    The generation is read before the value is computed, so a value is never labelled with
    a generation newer than the state it was computed from: at worst it is computed again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[int, T]] = {}

    def get(self, conn: psycopg.Connection, key: Hashable, compute: Callable[[], T]) -> T:
        return self.entry(conn, key, compute)[1]

    def entry(self, conn: psycopg.Connection, key: Hashable, compute: Callable[[], T]) -> tuple[int, T]:
        """`get`, with the generation the value holds for."""
        generation = current(conn)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] == generation:
            return entry
        value = compute()
        with self._lock:
            self._entries[key] = (generation, value)
        return generation, value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
