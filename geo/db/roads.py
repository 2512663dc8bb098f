"""Road centre lines: loaded with a district, read by the planner (boundaries follow roads)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import psycopg
import shapely

from geo.db.rows import ewkb, hex_ewkb


def load_roads(conn: psycopg.Connection, roads: Iterable[dict[str, Any]], change_id: int | None = None) -> int:
    """Add road centre lines; a road whose code is already stored is replaced."""
    rows = list(roads)
    conn.execute("DELETE FROM road WHERE code = ANY(%s)", [[r["code"] for r in rows]])
    with conn.cursor().copy("COPY road (code, name, kind, geom, attributes, change_id) FROM STDIN") as copy:
        for r in rows:
            copy.write_row((
                r["code"], r["name"], r["kind"], hex_ewkb(r["geom"]),
                json.dumps(r.get("attributes") or {}, ensure_ascii=False, default=str), change_id,
            ))
    return len(rows)


def roads_near(conn: psycopg.Connection, geom: Any, margin_deg: float = 0.0005) -> list[Any]:
    """Road centre lines whose box meets the geometry's, widened (shapely, WGS84)."""
    rows = conn.execute("SELECT ST_AsBinary(geom) FROM road WHERE geom && ST_Expand(ST_GeomFromEWKB(%s), %s)",
                        [ewkb(geom), margin_deg]).fetchall()
    return [shapely.from_wkb(bytes(r[0])) for r in rows]
