"""Every setting gridmap reads from its environment, in one typed object, read once.

    DATABASE_URL                 the PostGIS to use; unset: the embedded cluster under GRIDMAP_HOME
    GRIDMAP_HOME                 where the embedded cluster lives (default: <project>/.gridmap)
    GRIDMAP_PG_PORT              the embedded cluster's port when it is first set up (54329)
    GRIDMAP_PG_BIN               the folder of initdb, pg_ctl, pg_dump and pg_restore to use
    GRIDMAP_AUTH                 on or off; unset: off only when `gridmap serve` binds a loopback address
    GRIDMAP_AUTH_CACHE_SECONDS   how long a worker trusts a verified API key (30)
    GRIDMAP_SESSION_HOURS        how long a map session cookie lasts (12)
    GRIDMAP_COOKIE_SECURE        send session cookies with Secure even over plain HTTP (off)
    GRIDMAP_SECRET               the key that signs session cookies (default: one kept in the database)
    GRIDMAP_BOUNDS               the plausible area, minlon,minlat,maxlon,maxlat (default: China)
    GRIDMAP_TZ                   the zone of times given without one (Asia/Shanghai)
    GRIDMAP_MAX_BODY_MB          the largest request body the API reads (8)
    GRIDMAP_DB_WAIT              the longest a request waits for a pooled connection, seconds (3)
    GRIDMAP_INDEX_DIR            where point-index snapshots are kept (default: GRIDMAP_HOME/index)
    GRIDMAP_REPLICA_URL          a streaming replica for reads that may lag (tiles, OGC, statistics, index loads)
    GRIDMAP_REPLICA_PORT         the embedded replica's port when it is first made (the primary's + 1)
    GRIDMAP_PGBOUNCER            the database URLs lead to pgbouncer in transaction mode: prepare no statements (off)
    GRIDMAP_EVALUATION_HOURS     how long a resolved incident waits for its reporter's rating before it closes (72)
    GRIDMAP_REOPEN_UNSATISFIED   an "unsatisfied" rating reopens the incident (on)
    GRIDMAP_STATS_CACHE_SECONDS  how long a worker keeps a /stats answer for the same question (0: not kept)

Every yes/no setting takes one rule: 1, true, on, yes (or 0, false, off, no), any case.

`load()` reads the environment and says, naming the variable, what is wrong with a value.
`get()` is the process's settings, read at the first call; the entry points (the app, the
command line) call it, and what lies below them is handed the values it needs. The pure
core (units, coordinates, locating, planning) never reads settings: it takes arguments.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from geo.coords.points import CHINA, Area
from geo.errors import SetupError


def _area(value: Any) -> Any:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if len(parts) != 4:
            raise ValueError("not minlon,minlat,maxlon,maxlat")
        return tuple(float(p) for p in parts)
    return value


def _on_off(value: Any) -> Any:
    """One truthy rule for every yes/no setting (pydantic's own words, plus on/off)."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in ("1", "true", "on", "yes"):
            return True
        if key in ("0", "false", "off", "no"):
            return False
        raise ValueError("use on or off")
    return value


OnOff = Annotated[bool, BeforeValidator(_on_off)]


class Settings(BaseSettings):
    """gridmap's settings (see the module docstring for each one's variable)."""

    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", env_ignore_empty=True, extra="ignore",
                                      frozen=True, validate_default=False, populate_by_name=True)

    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    home: Path | None = None
    pg_port: int = Field(54329, ge=1, le=65535)
    pg_bin: Path | None = None
    auth: OnOff | None = None
    auth_cache_seconds: float = Field(30.0, ge=0)
    session_hours: float = Field(12.0, gt=0)
    cookie_secure: OnOff = False
    secret: str | None = Field(None, min_length=32)
    bounds: Annotated[Area, NoDecode, BeforeValidator(_area)] = CHINA
    tz: str = "Asia/Shanghai"
    max_body_mb: float = Field(8.0, gt=0)
    db_wait: float = Field(3.0, gt=0)
    index_dir: Path | None = None
    replica_url: str | None = None
    replica_port: int | None = Field(None, ge=1, le=65535)
    pgbouncer: OnOff = False
    evaluation_hours: float = Field(72.0, gt=0, le=24 * 90)
    reopen_unsatisfied: OnOff = True
    stats_cache_seconds: float = Field(0.0, ge=0, le=3600)


_HINTS = {
    "auth": "use on or off",
    "cookie_secure": "use on or off",
    "secret": "it must be at least 32 characters (e.g. `openssl rand -hex 32`)",
    "bounds": "it is minlon,minlat,maxlon,maxlat",
    "pg_port": "give a free TCP port",
}


def _variable(field: str) -> str:
    return "DATABASE_URL" if field == "database_url" else f"GRIDMAP_{field.upper()}"


def load(**overrides: Any) -> Settings:
    """The settings in the environment now (with `overrides` on top, for tests and tools), or
    SetupError naming the variable that is wrong and how to write it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err.get("loc") else "?"
            hint = _HINTS.get(field) or str(err.get("msg", "")).removeprefix("Value error, ")
            problems.append(f"{_variable(field)}={err.get('input')!r}: {hint}")
        raise SetupError("; ".join(problems)) from None


@lru_cache(maxsize=1)
def get() -> Settings:
    """This process's settings, read from the environment at the first call."""
    return load()


def reset() -> None:
    """Read the environment again at the next `get()` (tests that change it in-process)."""
    get.cache_clear()
