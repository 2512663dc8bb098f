"""Reads that may lag go to a streaming replica, when one is set (GRIDMAP_REPLICA_URL).

PostgreSQL's own streaming replication keeps the replica: gridmap only chooses where a read
goes. Reads that may lag a commit by the replica's delay (vector tiles, OGC API Features,
incident statistics) take the replica; so do the point index's reads, but only once the
replica has replayed the boundary generation the primary answered (`at_least`): a lookup
still never answers from boundaries older than the last commit. Writes, dispatch and
anything that must read its own writes stay on the primary (geo/db/pool.py).

When the replica cannot be reached, or has not caught up within REPLICA_CATCH_UP_S, the
read goes to the primary; a replica found down is not asked again for RETRY_S. `read(fn)`
also runs `fn` again on the primary when the replica goes away while it runs, so stopping
the replica under load fails no request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from geo.db import generation, pool
from geo.db.connection import statements

log = logging.getLogger("gridmap.db")
T = TypeVar("T")

REPLICA_WAIT_S = 0.3  # the longest a read waits for a replica connection
REPLICA_CATCH_UP_S = 0.5  # the longest the index waits for the replica to replay a commit
RETRY_S = 5.0  # a replica found down is left alone this long

_pool: ConnectionPool | None = None
_url: str | None = None
_lock = threading.Lock()
_down_until = 0.0
counts = {"replica": 0, "primary": 0, "fell_back": 0}


def _replica_url() -> str | None:
    from geo import settings

    return settings.get().replica_url


def replica_pool() -> ConnectionPool | None:
    """This process's pool over the replica (None: no replica is set)."""
    global _pool, _url
    url = _replica_url()
    if url is None:
        return None
    with _lock:
        if _pool is None or _url != url:
            if _pool is not None:
                _pool.close()
            _pool = ConnectionPool(url, min_size=0, max_size=10, open=True, name="gridmap-replica",
                                   kwargs={"autocommit": False, **statements()}, check=ConnectionPool.check_connection,
                                   timeout=REPLICA_WAIT_S, reconnect_timeout=pool.RECONNECT_S)
            _url = url
        return _pool


def close() -> None:
    global _pool, _url
    with _lock:
        if _pool is not None:
            _pool.close()
        _pool, _url = None, None


def _down(exc: BaseException) -> None:
    global _down_until
    if time.monotonic() >= _down_until:
        log.warning("replica unreachable, reading from the primary for %.0f s: %s", RETRY_S,
                    (str(exc).strip().splitlines() or [type(exc).__name__])[0])
    _down_until = time.monotonic() + RETRY_S


def usable() -> bool:
    return replica_pool() is not None and time.monotonic() >= _down_until


def _caught_up(conn: psycopg.Connection, at_least: int) -> bool:
    deadline = time.monotonic() + REPLICA_CATCH_UP_S
    try:
        while True:
            if generation.current(conn) >= at_least:
                return True
            if time.monotonic() > deadline:
                return False
            conn.rollback()  # a new snapshot for the next look
            time.sleep(0.01)
    finally:
        conn.rollback()  # back to idle: the caller starts its own transaction


@contextmanager
def reading(at_least: int | None = None) -> Iterator[psycopg.Connection]:
    """A connection for reads that may lag: the replica's when it answers (and, with `at_least`,
    has replayed that boundary generation), else the primary's."""
    with ExitStack() as stack:
        conn: psycopg.Connection | None = None
        replicas = replica_pool() if usable() else None
        if replicas is not None:
            try:
                conn = stack.enter_context(replicas.connection(timeout=REPLICA_WAIT_S))
                if at_least is not None and not _caught_up(conn, at_least):
                    conn = None
                    counts["fell_back"] += 1
            except (PoolTimeout, psycopg.OperationalError) as exc:
                _down(exc)
                conn = None
                counts["fell_back"] += 1
        if conn is None:
            conn = stack.enter_context(pool.pool().connection())
            counts["primary"] += 1
        else:
            counts["replica"] += 1
        yield conn


def read(fn: Callable[[psycopg.Connection], T]) -> T:
    """`fn` on a replica connection, or on the primary's when there is no replica, it cannot be
    reached, or it goes away while `fn` runs (then `fn` runs again, on the primary)."""
    replicas = replica_pool() if usable() else None
    if replicas is not None:
        try:
            with replicas.connection(timeout=REPLICA_WAIT_S) as conn:
                counts["replica"] += 1
                return fn(conn)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            _down(exc)
            counts["fell_back"] += 1
    with pool.pool().connection() as conn:
        counts["primary"] += 1
        return fn(conn)


def state() -> dict[str, Any]:
    """For /health: whether a replica is set, answers, and how far behind it is (seconds)."""
    replicas = replica_pool()
    if replicas is None:
        return {"status": "none"}
    try:
        with replicas.connection(timeout=REPLICA_WAIT_S) as conn:
            # caught up (all WAL received is replayed): no lag, however long since the last commit
            row = conn.execute("SELECT pg_is_in_recovery(), CASE WHEN pg_last_wal_receive_lsn() = "
                               "pg_last_wal_replay_lsn() THEN 0 ELSE extract(epoch FROM now() - "
                               "pg_last_xact_replay_timestamp()) END").fetchone()
    except (PoolTimeout, psycopg.OperationalError) as exc:
        _down(exc)
        return {"status": "unreachable", "reads": "primary"}
    assert row is not None
    in_recovery, lag = row
    return {"status": "streaming" if in_recovery else "promoted", "replay_lag_s": None if lag is None else
            round(float(lag), 3), "reads": "replica" if usable() else "primary", "counts": dict(counts)}
