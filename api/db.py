"""The API's connection pool: one per process, opened when the app starts."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from geo.db.connection import database_url

_pool: ConnectionPool | None = None


def open_pool() -> ConnectionPool:
    global _pool
    if _pool is None:
        _pool = ConnectionPool(database_url(), min_size=1, max_size=10, open=True,
                               kwargs={"autocommit": False})
    return _pool


def close_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.close()
        _pool = None


def pool() -> ConnectionPool:
    return open_pool()
