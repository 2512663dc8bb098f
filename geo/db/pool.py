"""The connection pool of a serving process: one per process, opened when the app starts.

Outages. When the database stops, restarts or drops a connection, the app must answer
503 quickly and recover by itself:

- every connection is checked (an empty query) before a request gets it, so a connection
  the server closed (a restart, pg_terminate_backend, an idle timeout) is replaced instead
  of failing the request;
- a request waits at most GRIDMAP_DB_WAIT (3 s) for a connection, and only DOWN_WAIT_S while the last
  attempt to connect failed, so clients get a quick 503 (PoolTimeout, an OperationalError,
  see api/errors.py) rather than hanging;
- a failing reconnection gives up after RECONNECT_S and the next request starts a new one
  at once, so the pool is back within a few seconds of the database (psycopg_pool's own
  backoff doubles up to minutes);
- connection attempts time out after CONNECT_TIMEOUT_S (PGCONNECT_TIMEOUT, unless the URL
  or the environment says otherwise), also for /locate's own generation check connection.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Self

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from geo.db.connection import statements

log = logging.getLogger("gridmap.db")

DOWN_WAIT_S = 0.5  # longest a request waits for a connection while the database is known to be unreachable
CONNECT_TIMEOUT_S = 3  # one connection attempt (libpq's minimum is 2)
RECONNECT_S = 5.0  # a reconnection attempt (with backoff) gives up after this


class _Reachability:
    """Whether the last attempt to connect failed, and since when."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down_since: float | None = None

    def failed(self, exc: Exception) -> None:
        with self._lock:
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.warning("database unreachable: %s", (str(exc).strip().splitlines() or [type(exc).__name__])[0])

    def ok(self) -> None:
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is not None:
                log.warning("database reachable again after %.1f s", time.monotonic() - self.down_since)
                self.down_since = None

    @property
    def down(self) -> bool:
        return self.down_since is not None


reachability = _Reachability()


class _Connection(psycopg.Connection):
    """A connection that reports whether connecting worked."""

    @classmethod
    def connect(cls, *args: Any, **kwargs: Any) -> Self:
        try:
            conn = super().connect(*args, **kwargs)
        except psycopg.OperationalError as exc:
            reachability.failed(exc)
            raise
        reachability.ok()
        return conn


class Pool(ConnectionPool):
    """A pool whose requests wait briefly, and hardly at all while the database is down."""

    def getconn(self, timeout: float | None = None) -> Any:
        if timeout is None:
            timeout = min(DOWN_WAIT_S, self.timeout) if reachability.down else self.timeout
        try:
            conn = super().getconn(timeout)
        except PoolTimeout as exc:
            if reachability.down:  # say why, not just that the wait ran out
                raise PoolTimeout(f"the database is unreachable ({exc})") from None
            raise
        reachability.ok()  # it passed the check: the database answers
        return conn


_pool: Pool | None = None
_pool_lock = threading.Lock()


def open_pool(url: str, wait_s: float) -> Pool:
    """This process's pool over `url` (opened at the first call); a request waits at most
    `wait_s` (GRIDMAP_DB_WAIT) for a connection."""
    global _pool
    with _pool_lock:
        if _pool is None:
            # libpq reads it for every connection attempt, the pool's and the generation gate's
            os.environ.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_TIMEOUT_S))
            _pool = Pool(url, min_size=1, max_size=10, open=True, name="gridmap",
                         connection_class=_Connection, kwargs={"autocommit": False, **statements()},
                         check=ConnectionPool.check_connection, timeout=wait_s,
                         reconnect_timeout=RECONNECT_S)
        return _pool


def close_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


def pool() -> Pool:
    """The pool this process opened (the app opens it as it starts)."""
    if _pool is None:
        from geo import settings
        from geo.db.connection import database_url

        return open_pool(database_url(), settings.get().db_wait)
    return _pool
