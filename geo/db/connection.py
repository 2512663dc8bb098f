"""Which database gridmap talks to, and connections to it.

DATABASE_URL points gridmap at any PostGIS. When it is unset, gridmap uses its
embedded cluster (see geo.db.embedded), which `gridmap db start` runs.
"""

from __future__ import annotations

import os

import psycopg

from geo.errors import SetupError


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from geo.db.embedded import default_cluster

    cluster = default_cluster()
    if not cluster.initialised():
        raise SetupError(
            "no database: DATABASE_URL is unset and the embedded cluster is not set up. "
            "Run `gridmap db start` (or `make serve`), or set DATABASE_URL to a PostGIS database."
        )
    return cluster.url()


def connect(url: str | None = None, **kwargs) -> psycopg.Connection:
    url = url or database_url()
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.OperationalError as exc:
        raise SetupError(
            f"cannot connect to the database at {_redact(url)}: {str(exc).strip()}. "
            "Start the embedded cluster with `gridmap db start`, or check DATABASE_URL."
        ) from exc


def _redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.split("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url
