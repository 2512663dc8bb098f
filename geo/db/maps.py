"""What the maps show, read for them: units as compact GeoJSON with a label point and the
household band, one unit with its chain of parents, search by name or code, label points in
a box, and the incidents of the dispatch map (points, heat, per-grid counts).

Label points are the centres of each unit's largest inscribed circle (the pole of
inaccessibility), so a label sits well inside even an L-shaped grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from geo.db import incidents
from geo.db.rows import band_sql, dicts, one, transaction_time, value
from geo.db.units import latest_names
from geo.errors import InvalidInput, NotFound
from geo.incidents.lifecycle import OPEN_STATES, STATES
from geo.security.identity import Identity
from geo.security.privacy import text_for
from geo.units import levels

_LABEL_POINT = ("CASE WHEN GeometryType(v.geom) LIKE '%%POLYGON' "
                "THEN (ST_MaximumInscribedCircle(v.geom)).center ELSE ST_PointOnSurface(v.geom) END")


def layer_geojson(conn: psycopg.Connection, level: str) -> str:
    """The current units of one level as a FeatureCollection (text), properties id, code,
    name, level, households, band, `lp`, the label point [lon, lat], and `room`, the width
    and height of the unit's box in degrees (a label shows only where it fits)."""
    text: str = value(
        conn,
        f"""
        SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
            'type', 'Feature', 'id', v.unit_id, 'geometry', ST_AsGeoJSON(v.geom, 7)::json,
            'properties', json_build_object(
                'id', v.unit_id, 'code', v.code, 'name', v.name, 'level', v.level,
                'households', v.households, 'band', {band_sql(level)},
                'lp', json_build_array(round(ST_X(l.p)::numeric, 7), round(ST_Y(l.p)::numeric, 7)),
                'room', json_build_array(round((ST_XMax(v.geom) - ST_XMin(v.geom))::numeric, 6),
                                         round((ST_YMax(v.geom) - ST_YMin(v.geom))::numeric, 6))))
            ORDER BY v.code), '[]'::json))::text
        FROM unit_version v, LATERAL (SELECT {_LABEL_POINT} AS p) l
        WHERE v.valid_to IS NULL AND v.level = %s
        """,
        [level],
    )
    return text


def extent(conn: psycopg.Connection) -> list[float] | None:
    """[minlon, minlat, maxlon, maxlat] of the current streets (or of every unit)."""
    row = one(
        conn,
        "SELECT ST_XMin(e) AS minx, ST_YMin(e) AS miny, ST_XMax(e) AS maxx, ST_YMax(e) AS maxy FROM "
        "(SELECT ST_Extent(geom) AS e FROM unit_version WHERE valid_to IS NULL "
        "AND level IN ('street', 'community', 'grid')) s"
    )
    assert row is not None  # an aggregate without GROUP BY returns one row
    return None if row["minx"] is None else [float(row[k]) for k in ("minx", "miny", "maxx", "maxy")]


def detail(conn: psycopg.Connection, unit_id: int) -> dict[str, Any]:
    """One current unit with its household band and its chain of parents (street first)."""
    row = one(
        conn,
        f"""
        SELECT v.unit_id, v.level, v.code, v.name, v.households, v.population, v.version, v.valid_from,
               ST_XMin(v.geom) AS minx, ST_YMin(v.geom) AS miny, ST_XMax(v.geom) AS maxx, ST_YMax(v.geom) AS maxy,
               ST_X(l.p) AS lon, ST_Y(l.p) AS lat,
               (SELECT coalesce(json_agg(json_build_object('level', p.level, 'id', p.unit_id, 'code', p.code,
                                                           'name', p.name)
                                         ORDER BY array_position(%s::text[], p.level)), '[]'::json)
                FROM unit_version p WHERE p.valid_to IS NULL
                  AND p.unit_id IN (v.street_id, v.community_id, v.grid_id, v.compound_id, v.neighbourhood_id))
               AS chain
        FROM unit_version v, LATERAL (SELECT {_LABEL_POINT} AS p) l
        WHERE v.unit_id = %s AND v.valid_to IS NULL
        """,
        [list(levels.LEVELS), unit_id],
    )
    if row is None:
        raise NotFound(f"no current unit with id {unit_id}")
    level, households = row["level"], row["households"]
    band = levels.HOUSEHOLD_BANDS.get(level)
    status = levels.band_status(level, households)
    return {"id": row["unit_id"], "level": level, "level_zh": levels.LABEL_ZH[level], "code": row["code"],
            "name": row["name"], "households": households, "population": row["population"],
            "version": row["version"], "valid_from": row["valid_from"], "band": status,
            "band_range": list(band) if band else None, "bbox": _bbox(row),
            "label_point": [float(row["lon"]), float(row["lat"])], "chain": row["chain"]}


def _bbox(row: dict[str, Any]) -> list[float]:
    """[minx, miny, maxx, maxy] of a row that has them."""
    return [float(row[k]) for k in ("minx", "miny", "maxx", "maxy")]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(conn: psycopg.Connection, query: str, limit: int = 20) -> list[dict[str, Any]]:
    """Current units whose code is or starts with `query`, or whose name contains it: exact
    codes first, then upper levels before lower ones."""
    text = (query or "").strip()
    if not text:
        return []
    if len(text) > 100:
        raise InvalidInput("a search is at most 100 characters")
    like = _like_escape(text)
    rows = dicts(
        conn,
        f"""
        SELECT v.unit_id, v.level, v.code, v.name, v.households,
               ST_XMin(v.geom) AS minx, ST_YMin(v.geom) AS miny, ST_XMax(v.geom) AS maxx, ST_YMax(v.geom) AS maxy,
               ST_X(l.p) AS lon, ST_Y(l.p) AS lat
        FROM (SELECT * FROM unit_version v
              WHERE v.valid_to IS NULL AND (v.code = %(q)s OR v.code LIKE %(prefix)s OR v.name ILIKE %(infix)s)
              ORDER BY (v.code = %(q)s) DESC, (v.code LIKE %(prefix)s) DESC,
                       array_position(%(levels)s::text[], v.level), v.code
              LIMIT %(limit)s) v,
             LATERAL (SELECT {_LABEL_POINT} AS p) l
        ORDER BY (v.code = %(q)s) DESC, (v.code LIKE %(prefix)s) DESC,
                 array_position(%(levels)s::text[], v.level), v.code
        """,
        {"q": text, "prefix": like + "%", "infix": "%" + like + "%", "levels": list(levels.LEVELS), "limit": limit},
    )
    return [{"id": r["unit_id"], "level": r["level"], "level_zh": levels.LABEL_ZH[r["level"]], "code": r["code"],
             "name": r["name"], "households": r["households"], "bbox": _bbox(r),
             "label_point": [float(r["lon"]), float(r["lat"])]}
            for r in rows]


def labels(conn: psycopg.Connection, level: str, bbox: tuple[float, float, float, float],
           limit: int = 800) -> list[list[Any]]:
    """[lon, lat, code, name, width, height] of the current units of `level` in a box (for
    levels drawn from vector tiles, whose labels the browser asks for as the view moves);
    width and height of each unit's box in degrees."""
    rows = dicts(
        conn,
        f"""
        SELECT round(ST_X(l.p)::numeric, 7) AS lon, round(ST_Y(l.p)::numeric, 7) AS lat, v.code, v.name,
               round((ST_XMax(v.geom) - ST_XMin(v.geom))::numeric, 6) AS width,
               round((ST_YMax(v.geom) - ST_YMin(v.geom))::numeric, 6) AS height
        FROM unit_version v, LATERAL (SELECT {_LABEL_POINT} AS p) l
        WHERE v.valid_to IS NULL AND v.level = %s AND v.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)
        ORDER BY v.code LIMIT %s
        """,
        [level, *bbox, limit],
    )
    return [[float(r["lon"]), float(r["lat"]), r["code"], r["name"], float(r["width"]), float(r["height"])]
            for r in rows]


# ---- the dispatch map --------------------------------------------------------------------

HEAT_CELL_DEG = 0.0004  # ~40 m bins for the heat map
FIELDS = ("id", "lon", "lat", "state", "category", "overdue", "reported_at", "deadline", "street_id",
          "community_id", "grid_id", "worker", "channel", "description", "unassigned")
_OPEN = "i.state = ANY(%(open)s)"
_OVERDUE = "(i.state = ANY(%(open)s) AND now() > i.deadline)"


def _list(text: str | None) -> list[str] | None:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return items or None


@dataclass
class Filters:
    """What the dispatch map is asked to show: states, categories, the last so many hours."""

    states: list[str] | None
    categories: list[str] | None
    hours: float | None

    @classmethod
    def parse(cls, conn: psycopg.Connection, state: str | None, category: str | None,
              hours: float | None) -> Filters:
        states = _list(state)
        for s in states or ():
            if s not in STATES:
                raise InvalidInput(f"unknown state {s!r}: use one of {', '.join(STATES)}")
        cats = _list(category)
        if cats:
            known = {c["code"] for c in incidents.categories(conn)}
            for c in cats:
                if c not in known:
                    raise InvalidInput(f"unknown category {c!r}: use one of {', '.join(sorted(known))}")
        return cls(states, cats, hours)

    def where(self, start: datetime | None, *, with_state: bool = True) -> tuple[str, dict[str, Any]]:
        """SQL over `incident i` and its named parameters (with `open` and `cell` for the queries)."""
        clauses, params = ["true"], {"open": list(OPEN_STATES), "cell": HEAT_CELL_DEG}
        if start is not None:
            clauses.append("i.reported_at >= %(start)s")
            params["start"] = start
        if self.categories:
            clauses.append("i.category = ANY(%(categories)s)")
            params["categories"] = self.categories
        if with_state and self.states:
            clauses.append("i.state = ANY(%(states)s)")
            params["states"] = self.states
        return " AND ".join(clauses), params


def dispatch_incidents(conn: psycopg.Connection, filters: Filters, limit: int, *, viewer: Identity) -> dict[str, Any]:
    """What the dispatch map shows for these filters, as `viewer` may see it: the points (none
    above `limit`), a heat map binned here, open and overdue counts per grid, the units' names."""
    now = transaction_time(conn)
    start = now - timedelta(hours=filters.hours) if filters.hours else None
    where, params = filters.where(start)
    counts = one(conn, f"SELECT count(*) AS total, count(*) FILTER (WHERE {_OPEN}) AS n_open, "
                       f"count(*) FILTER (WHERE {_OVERDUE}) AS n_overdue FROM incident i WHERE {where}", params)
    assert counts is not None  # an aggregate without GROUP BY returns one row
    total = counts["total"]
    rows: list[dict[str, Any]] = []
    if total <= limit:
        rows = dicts(conn, f"""
            SELECT i.id, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.state, i.category, {_OVERDUE} AS overdue,
                   i.reported_at, i.deadline, i.street_id, i.community_id, i.grid_id, w.name AS worker, i.channel,
                   left(i.description, 140) AS description, i.unassigned
            FROM incident i LEFT JOIN worker w ON w.id = i.worker_id
            WHERE {where} ORDER BY i.id
            """, params)
    heat = conn.execute(
        f"""
        SELECT round(avg(ST_X(i.geom))::numeric, 6)::float8, round(avg(ST_Y(i.geom))::numeric, 6)::float8, count(*)
        FROM incident i WHERE {where}
        GROUP BY floor(ST_X(i.geom) / %(cell)s), floor(ST_Y(i.geom) / %(cell)s)
        """, params).fetchall()
    # per grid: open and overdue whatever the state filter (open is itself a set of states)
    grid_where, grid_params = filters.where(start, with_state=False)
    grids = dicts(conn, f"""
        SELECT i.grid_id, count(*) FILTER (WHERE {_OPEN}) AS n_open, count(*) FILTER (WHERE {_OVERDUE}) AS n_overdue,
               count(*) AS n_total
        FROM incident i WHERE {grid_where} AND i.grid_id IS NOT NULL GROUP BY 1
        """, grid_params)
    unit_ids = ({r[c] for r in rows for c in ("street_id", "community_id", "grid_id") if r[c]}
                | {g["grid_id"] for g in grids})
    names = {uid: [r["level"], r["code"], r["name"]] for uid, r in latest_names(conn, list(unit_ids)).items()}
    return {
        "now": now, "from": start, "total": total, "open": counts["n_open"], "overdue": counts["n_overdue"],
        "limit": limit, "too_many": total > limit, "fields": FIELDS,
        "incidents": [_point(r, viewer) for r in rows],
        "heat": [list(h) for h in heat],
        "grids": {g["grid_id"]: [g["n_open"], g["n_overdue"], g["n_total"]] for g in grids},
        "units": names,
    }


def _point(row: dict[str, Any], viewer: Identity) -> list[Any]:
    """One incident of the dispatch map: its FIELDS in order, as `viewer` may see them."""
    shown = row | {"lon": round(row["lon"], 7), "lat": round(row["lat"], 7),
                   # residents write phone numbers into descriptions
                   "description": text_for(row["description"], viewer)}
    return [shown[f] for f in FIELDS]
