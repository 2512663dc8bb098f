"""Which database gridmap talks to, and connections to it.

DATABASE_URL points gridmap at any PostGIS. When it is unset, gridmap uses its
embedded cluster (see geo.db.embedded), which `gridmap db start` runs.
"""

from __future__ import annotations

from typing import Any

import psycopg

from geo import settings as config
from geo.db.embedded import default_cluster
from geo.errors import SetupError


def database_url(settings: config.Settings | None = None) -> str:
    """DATABASE_URL, else the embedded cluster's URL (SetupError when neither is there)."""
    settings = settings or config.get()
    if settings.database_url:
        return settings.database_url
    cluster = default_cluster(settings)
    if not cluster.initialised():
        raise SetupError(
            "no database: DATABASE_URL is unset and the embedded cluster is not set up. "
            "Run `gridmap db start` (or `make serve`), or set DATABASE_URL to a PostGIS database."
        )
    return cluster.url()


def statements(eager: bool = False) -> dict[str, Any]:
    """How a connection prepares statements: as psycopg does by default (a query run five times
    on a connection is prepared; `eager`: at once), or never when the URLs lead to pgbouncer in
    transaction mode (GRIDMAP_PGBOUNCER): there a prepared statement belongs to one server
    connection, and the next transaction may be given another (Debian 12's pgbouncer, 1.18,
    does not carry them over)."""
    if config.get().pgbouncer:
        return {"prepare_threshold": None}
    return {"prepare_threshold": 0} if eager else {}


def connect(url: str | None = None, **kwargs: Any) -> psycopg.Connection:
    url = url or database_url()
    try:
        return psycopg.connect(url, **{**statements(), **kwargs})
    except psycopg.OperationalError as exc:
        raise SetupError(
            f"cannot connect to the database at {redact(url)}: {str(exc).strip()}. "
            "Start the embedded cluster with `gridmap db start`, or check DATABASE_URL."
        ) from exc


def redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.split("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url
