"""Small pieces every query module uses: rows as dicts, geometries in and out, time filters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
import shapely
from psycopg.rows import dict_row

from geo.units.levels import HOUSEHOLD_BANDS

Params = Sequence[Any] | dict[str, Any] | None


def dicts(conn: psycopg.Connection, sql: str, params: Params = None) -> list[dict[str, Any]]:
    """Every row of a query, each a dict keyed by column name."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def one(conn: psycopg.Connection, sql: str, params: Params = None) -> dict[str, Any] | None:
    """The first row of a query as a dict (None when there is none)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchone()


def value(conn: psycopg.Connection, sql: str, params: Params = None) -> Any:
    """The single value a query returns (its first row's first column)."""
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def transaction_time(conn: psycopg.Connection) -> datetime:
    """The transaction's time (now()): every row one change writes carries the same."""
    at: datetime = value(conn, "SELECT now()")
    return at


def geom(wkb: bytes | memoryview | None) -> Any:
    """A shapely geometry from WKB as PostGIS returns it."""
    return None if wkb is None else shapely.from_wkb(bytes(wkb))


def with_geoms(rows: list[dict[str, Any]], column: str = "wkb", into: str = "geom") -> list[dict[str, Any]]:
    """Rows whose WKB column is replaced by a shapely geometry (in bulk)."""
    if rows:
        for row, g in zip(rows, shapely.from_wkb([bytes(r.pop(column)) for r in rows]), strict=True):
            row[into] = g
    return rows


def ewkb(g: Any) -> bytes:
    """A WGS84 geometry as EWKB, for ST_GeomFromEWKB."""
    out: bytes = shapely.to_wkb(shapely.set_srid(g, 4326), include_srid=True)
    return out


def hex_ewkb(g: Any) -> str:
    """A WGS84 geometry as hex EWKB, for COPY."""
    out: str = shapely.to_wkb(shapely.set_srid(g, 4326), hex=True, include_srid=True)
    return out


def valid_at(as_of: datetime | None, alias: str = "") -> tuple[str, list[Any]]:
    """SQL (and its parameters) for the versions valid at `as_of` (None: the current ones)."""
    p = f"{alias}." if alias else ""
    if as_of is None:
        return f"{p}valid_to IS NULL", []
    return f"{p}valid_from <= %s AND ({p}valid_to IS NULL OR {p}valid_to > %s)", [as_of, as_of]


def band_sql(level: str, alias: str = "v") -> str:
    """SQL for 'below', 'in' or 'above' the level's household band (NULL without a count or a
    band): the same words as geo/units/levels.py band_status, for queries that build JSON or tiles."""
    band = HOUSEHOLD_BANDS.get(level)
    if band is None:
        return "NULL::text"
    low, high = int(band[0]), int(band[1])
    return (f"CASE WHEN {alias}.households < {low} THEN 'below' WHEN {alias}.households > {high} THEN 'above' "
            f"WHEN {alias}.households IS NOT NULL THEN 'in' END")
