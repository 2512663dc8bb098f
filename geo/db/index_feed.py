"""What a process that keeps an index of the boundaries reads to keep it current.

Migration 0008 logs, at each boundary generation, the units a statement wrote or closed
(`unit_change`), and names the database's history (`epoch`). From these a process learns
what changed since the generation its index was built at (`changes_since`), reads only the
units around those changes (`rows_in`), and reads, for lookups in the past, only the units
around the points asked about (`rows_near`). Each read is one snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.pq import TransactionStatus

from geo.db.rows import dicts, one, with_geoms
from geo.locate.layered import Change
from geo.units import levels
from geo.units.levels import CHAIN_COLUMNS

_COLUMNS = f"v.level, v.unit_id, v.code, v.name, v.version, {', '.join('v.' + c for c in CHAIN_COLUMNS)}"
_AT = {None: "v.valid_to IS NULL"}
_AT_TIME = "v.valid_from <= %(t)s AND (v.valid_to IS NULL OR v.valid_to > %(t)s)"


@dataclass(frozen=True)
class History:
    """The database's history (`epoch`), its boundary generation, and the first generation
    from which every change is logged (an index older than that is built again)."""

    epoch: str
    generation: int
    complete_from: int
    database: str  # its name and oid: a database dropped and made again under the name is another

    @property
    def key(self) -> str:
        return f"{self.database}-{self.epoch}"

    def reaches(self, generation: int) -> bool:
        """Whether an index at `generation` can be brought up to now from the log."""
        return self.complete_from <= generation <= self.generation


@dataclass(frozen=True)
class Changes:
    history: History
    change: Change
    boxes: np.ndarray  # (n, 4): where the moved units were and are


def history(conn: psycopg.Connection) -> History:
    row = one(conn, "SELECT epoch::text AS epoch, generation, complete_from, "
                    "(SELECT datname || '-' || oid FROM pg_database WHERE datname = current_database()) AS db "
                    "FROM boundary_generation")
    assert row is not None  # migration 0001 inserts the one row
    return History(row["epoch"], int(row["generation"]), int(row["complete_from"]), row["db"])


def snapshot_read(conn: psycopg.Connection) -> Any:
    """A transaction whose reads all see one snapshot (REPEATABLE READ when it starts one)."""
    idle = conn.info.transaction_status == TransactionStatus.IDLE
    tx = conn.transaction()
    if idle:
        class _Repeatable:
            def __enter__(self) -> Any:
                tx.__enter__()
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                return tx

            def __exit__(self, *exc: Any) -> Any:
                return tx.__exit__(*exc)
        return _Repeatable()
    return tx


def changes_since(conn: psycopg.Connection, since: int) -> Changes | None:
    """What changed after generation `since` (None: the log does not reach back that far,
    or another history). Call inside `snapshot_read` together with `rows_in`."""
    now = history(conn)
    if since < now.complete_from:
        return None
    rows = dicts(conn, """
        SELECT unit_id, level, count(*) FILTER (WHERE same_place) AS kept,
               count(*) FILTER (WHERE NOT same_place) AS other,
               min(x0) AS x0, min(y0) AS y0, max(x1) AS x1, max(y1) AS y1
        FROM unit_change WHERE generation > %s AND generation <= %s GROUP BY unit_id, level""",
                 [since, now.generation])
    moved: dict[str, list[int]] = {}
    renamed: dict[str, list[int]] = {}
    boxes = []
    for r in rows:
        if r["kept"] >= 1 and r["other"] == r["kept"]:  # each opened version at the same place as the closed one
            renamed.setdefault(r["level"], []).append(r["unit_id"])
        else:
            moved.setdefault(r["level"], []).append(r["unit_id"])
            boxes.append((r["x0"], r["y0"], r["x1"], r["y1"]))
    relabelled: dict[str, dict[int, tuple[str, int]]] = {}
    ids = [u for group in renamed.values() for u in group]
    if ids:
        for r in dicts(conn, "SELECT level, unit_id, name, version FROM unit_version "
                             "WHERE unit_id = ANY(%s) AND valid_to IS NULL", [ids]):
            relabelled.setdefault(r["level"], {})[r["unit_id"]] = (r["name"], r["version"])
    change = Change({lv: np.array(sorted(v), dtype=np.int64) for lv, v in moved.items()}, relabelled)
    return Changes(now, change, np.array(boxes, dtype=float).reshape(-1, 4))


def _by_level(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {level: [] for level in levels.LEVELS}
    for rec in with_geoms(rows):
        out[rec.pop("level")].append(rec)
    return out


def _with_parents(conn: psycopg.Connection, rows: list[dict[str, Any]], when: datetime | None) -> list[dict[str, Any]]:
    """`rows` and the versions of their parents not among them (valid at the same time)."""
    have = {r["unit_id"] for r in rows}
    wanted = {r[c] for r in rows for c in CHAIN_COLUMNS if r.get(c)} - have
    if wanted:
        rows = rows + dicts(conn, f"SELECT {_COLUMNS}, ST_AsBinary(v.geom) AS wkb FROM unit_version v "
                                  f"WHERE v.unit_id = ANY(%(ids)s) AND {_AT_TIME if when else _AT[None]}",
                            {"ids": sorted(wanted), "t": when})
    return rows


def rows_in(conn: psycopg.Connection, boxes: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """The current units meeting any of the boxes (n, 4), and their parents, by level."""
    if len(boxes) == 0:
        return _by_level([])
    rows = dicts(conn, f"""
        SELECT DISTINCT ON (v.id) {_COLUMNS}, ST_AsBinary(v.geom) AS wkb
        FROM unnest(%(x0)s::float8[], %(y0)s::float8[], %(x1)s::float8[], %(y1)s::float8[]) b(x0, y0, x1, y1)
        JOIN unit_version v ON v.geom && ST_MakeEnvelope(b.x0, b.y0, b.x1, b.y1, 4326) AND v.valid_to IS NULL
        ORDER BY v.id""", {"x0": boxes[:, 0].tolist(), "y0": boxes[:, 1].tolist(),
                           "x1": boxes[:, 2].tolist(), "y1": boxes[:, 3].tolist()})
    return _by_level(_with_parents(conn, rows, None))


def rows_near(conn: psycopg.Connection, x: np.ndarray, y: np.ndarray, pad_deg: float,
              when: datetime | None) -> dict[str, list[dict[str, Any]]]:
    """The units valid at `when` (None: now) whose box comes within `pad_deg` of a point,
    and their parents: all an index needs to answer for those points."""
    rows = dicts(conn, f"""
        SELECT DISTINCT ON (v.id) {_COLUMNS}, ST_AsBinary(v.geom) AS wkb
        FROM unnest(%(x)s::float8[], %(y)s::float8[]) p(x, y)
        JOIN unit_version v ON v.geom && ST_MakeEnvelope(p.x - %(d)s, p.y - %(d)s, p.x + %(d)s, p.y + %(d)s, 4326)
         AND {_AT_TIME if when else _AT[None]}
        ORDER BY v.id""", {"x": np.asarray(x, float).tolist(), "y": np.asarray(y, float).tolist(), "d": pad_deg,
                           "t": when})
    return _by_level(_with_parents(conn, rows, when))


def any_streets(conn: psycopg.Connection, when: datetime | None) -> bool:
    """Whether any street was valid at `when` (None: now)."""
    row = one(conn, f"SELECT EXISTS (SELECT 1 FROM unit_version v WHERE v.level = 'street' AND "
                    f"{_AT_TIME if when else _AT[None]}) AS found", {"t": when})
    return bool(row and row["found"])


def prune(conn: psycopg.Connection, before: int) -> int:
    """Forget the changes logged up to generation `before` (an index older than that is
    built again: `complete_from` moves up). Returns the rows deleted.

    Only on a primary, on a connection in no transaction, and only if the generation's row can be
    locked within half a second: intakes hold it shared while they store a report, and a
    process building a snapshot may be one they wait for; pruning is never worth a wait."""
    if before <= 0 or conn.info.transaction_status != TransactionStatus.IDLE:
        return 0
    row = one(conn, "SELECT pg_is_in_recovery() AS standby")
    conn.rollback()
    if row is None or row["standby"]:
        return 0
    try:
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '500ms'")
            conn.execute("UPDATE boundary_generation SET complete_from = greatest(complete_from, %s)", [before])
            deleted = conn.execute("DELETE FROM unit_change WHERE generation <= %s", [before]).rowcount
    except psycopg.errors.LockNotAvailable:
        return 0
    return int(deleted or 0)
