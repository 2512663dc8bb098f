"""The statements that change units: change sets, versions closed and opened, lineage.

Each runs in the caller's transaction; the order they run in, and every check before them,
is geo/usecases/boundaries.py's. Nothing is overwritten: a change closes the current version
(valid_to, closed_by) and opens the next.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import shapely

from geo.db.rows import dicts, value, with_geoms
from geo.units.levels import CHAIN_COLUMNS
from geo.units.model import Progress, UnitInput, count, no_progress

VERSION_COLUMNS = ("unit_id", "version", "level", "code", "name", *CHAIN_COLUMNS, "households",
                   "population", "geom", "attributes", "valid_from", "change_id")


def open_change_set(conn: psycopg.Connection, kind: str, actor: object, note: str | None,
                    created_at: datetime | None = None) -> int:
    """A new change set (the id every version it writes or closes carries)."""
    if created_at is None:
        return int(value(conn, "INSERT INTO change_set (kind, actor, note) VALUES (%s, %s, %s) RETURNING id",
                         [kind, str(actor), note]))
    return int(value(conn, "INSERT INTO change_set (kind, actor, note, created_at) VALUES (%s, %s, %s, %s) "
                           "RETURNING id", [kind, str(actor), note, created_at]))



def any_stored(conn: psycopg.Connection, level: str) -> bool:
    return bool(value(conn, "SELECT EXISTS (SELECT 1 FROM unit_version WHERE valid_to IS NULL AND level = %s)",
                      [level]))


def parents_near(conn: psycopg.Connection, level: str, bbox: Sequence[float]) -> list[dict[str, Any]]:
    """The current units of `level` whose box meets `bbox` (widened by ~100 m), with their chains."""
    return with_geoms(dicts(
        conn,
        f"SELECT unit_id, code, ST_AsBinary(geom) AS wkb, {', '.join(CHAIN_COLUMNS)} FROM unit_version "
        "WHERE valid_to IS NULL AND level = %s AND geom && ST_Expand(ST_MakeEnvelope(%s, %s, %s, %s, 4326), 0.001)",
        [level, *bbox],
    ))


def lock_current(conn: psycopg.Connection, level: str, codes: list[str]) -> dict[str, dict[str, Any]]:
    """The current versions of units of `level` with these codes, locked, by code."""
    rows = with_geoms(dicts(
        conn,
        f"SELECT unit_id, code, version, name, households, population, attributes, ST_AsBinary(geom) AS wkb, "
        f"{', '.join(CHAIN_COLUMNS)} FROM unit_version "
        "WHERE valid_to IS NULL AND level = %s AND code = ANY(%s) FOR UPDATE",
        [level, codes],
    ))
    return {r["code"]: r for r in rows}


def lock_current_ids(conn: psycopg.Connection, unit_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The current versions of these units, locked, by unit id (as `lock_current` reads them)."""
    if not unit_ids:
        return {}
    rows = with_geoms(dicts(
        conn,
        f"SELECT unit_id, code, version, name, households, population, attributes, ST_AsBinary(geom) AS wkb, "
        f"{', '.join(CHAIN_COLUMNS)} FROM unit_version WHERE valid_to IS NULL AND unit_id = ANY(%s) FOR UPDATE",
        [unit_ids],
    ))
    return {r["unit_id"]: r for r in rows}


def codes_taken(conn: psycopg.Connection, level: str, prefixes: list[str]) -> dict[str, set[int]]:
    """Every code of `level` ever used (current or retired) that starts with one of `prefixes`,
    with the units that had it."""
    taken: dict[str, set[int]] = {}
    if prefixes:
        for r in dicts(conn, "SELECT DISTINCT code, unit_id FROM unit_version WHERE level = %s "
                             "AND code LIKE ANY(%s)", [level, [_like_prefix(p) for p in prefixes]]):
            taken.setdefault(r["code"], set()).add(r["unit_id"])
    return taken


def holders_of_code(conn: psycopg.Connection, level: str, code: str) -> set[int]:
    """The units of `level` that have ever had this code (current or retired)."""
    return {r["unit_id"] for r in dicts(
        conn, "SELECT DISTINCT unit_id FROM unit_version WHERE level = %s AND code = %s", [level, code])}


def ancestors(conn: psycopg.Connection, unit_ids: list[int]) -> set[int]:
    """Every unit these units came from by lineage, however many changes back."""
    return {r["unit_id"] for r in dicts(conn, """
        WITH RECURSIVE up(unit_id) AS (
            SELECT from_unit_id FROM unit_lineage WHERE to_unit_id = ANY(%s)
            UNION SELECT l.from_unit_id FROM unit_lineage l JOIN up ON l.to_unit_id = up.unit_id)
        SELECT unit_id FROM up""", [unit_ids])}


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def lock_units(conn: psycopg.Connection, unit_ids: list[int]) -> list[dict[str, Any]]:
    """The current versions of these units (id, level, code, version), locked."""
    return dicts(conn, "SELECT unit_id, level, code, version FROM unit_version "
                       "WHERE unit_id = ANY(%s) AND valid_to IS NULL FOR UPDATE", [unit_ids])


def new_units(conn: psycopg.Connection, level: str, n: int, created_at: datetime) -> list[int]:
    """Ids for n new units of `level` (their unit rows written)."""
    ids = [int(r[0]) for r in conn.execute("SELECT nextval('unit_id_seq') FROM generate_series(1, %s)", [n])]
    with conn.cursor().copy("COPY unit (id, level, created_at) FROM STDIN") as copy:
        for uid in ids:
            copy.write_row((uid, level, created_at))
    return ids


def close_versions(conn: psycopg.Connection, unit_ids: list[int], at: datetime | None, change_id: int) -> None:
    """Close the current versions of these units at `at` (None: the transaction's time)."""
    if at is None:
        conn.execute("UPDATE unit_version SET valid_to = now(), closed_by = %s "
                     "WHERE unit_id = ANY(%s) AND valid_to IS NULL", [change_id, unit_ids])
    else:
        conn.execute("UPDATE unit_version SET valid_to = %s, closed_by = %s "
                     "WHERE unit_id = ANY(%s) AND valid_to IS NULL", [at, change_id, unit_ids])


def open_versions(conn: psycopg.Connection, level: str, units: list[UnitInput], unit_ids: list[int],
                  versions: list[int], chains: list[dict[str, int | None]], valid_from: datetime,
                  change_id: int, progress: Progress = no_progress) -> None:
    """Write one new version per unit (COPY), valid from `valid_from`."""
    hexes = shapely.to_wkb(shapely.set_srid(np.array([u.geom for u in units], dtype=object), 4326),
                           hex=True, include_srid=True)
    total = len(units)
    with conn.cursor().copy(f"COPY unit_version ({', '.join(VERSION_COLUMNS)}) FROM STDIN") as copy:
        for k, (unit, uid, version, chain, hexwkb) in enumerate(
                zip(units, unit_ids, versions, chains, hexes, strict=True)):
            copy.write_row((
                uid, version, level, unit.code, unit.name,
                *(chain[c] for c in CHAIN_COLUMNS),
                count(unit.households), count(unit.population), hexwkb,
                json.dumps(unit.attributes, ensure_ascii=False, default=str), valid_from, change_id,
            ))
            if k % 2000 == 0:
                progress("writing", k, total)
    progress("writing", total, total)


def record_lineage(conn: psycopg.Connection, change_id: int, kind: str, old_ids: list[int],
                   new_ids: list[int]) -> None:
    """Lineage from each unit the change closed to each new one it overlaps."""
    conn.execute(
        """
        INSERT INTO unit_lineage (change_id, from_unit_id, to_unit_id, kind)
        SELECT %s, o.unit_id, n.unit_id, %s
        FROM unit_version o JOIN unit_version n
          ON n.valid_to IS NULL AND n.unit_id = ANY(%s)
         AND ST_Intersects(o.geom, n.geom)
         AND ST_Area(ST_Intersection(o.geom, n.geom)) > 1e-12
        WHERE o.unit_id = ANY(%s) AND o.closed_by = %s
        """,
        [change_id, kind, new_ids, old_ids, change_id],
    )


def lock_one(conn: psycopg.Connection, unit_id: int) -> dict[str, Any] | None:
    """The current version of one unit, locked, with its geometry (None when there is none)."""
    rows = with_geoms(dicts(
        conn,
        "SELECT level, code, name, version, households, population, attributes, ST_AsBinary(geom) AS wkb "
        "FROM unit_version WHERE unit_id = %s AND valid_to IS NULL FOR UPDATE",
        [unit_id],
    ))
    return rows[0] if rows else None
