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
from geo.db.rows import band_sql, value
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
    return conn.execute(
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
    ).fetchone()[0]


def extent(conn: psycopg.Connection) -> list[float] | None:
    """[minlon, minlat, maxlon, maxlat] of the current streets (or of every unit)."""
    row = conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e "
        "FROM unit_version WHERE valid_to IS NULL AND level IN ('street', 'community', 'grid')) s"
    ).fetchone()
    return None if row[0] is None else [float(v) for v in row]


def detail(conn: psycopg.Connection, unit_id: int) -> dict[str, Any]:
    """One current unit with its household band and its chain of parents (street first)."""
    row = conn.execute(
        f"""
        SELECT v.unit_id, v.level, v.code, v.name, v.households, v.population, v.version, v.valid_from,
               ST_XMin(v.geom), ST_YMin(v.geom), ST_XMax(v.geom), ST_YMax(v.geom),
               ST_X(l.p), ST_Y(l.p),
               (SELECT coalesce(json_agg(json_build_object('level', p.level, 'id', p.unit_id, 'code', p.code,
                                                           'name', p.name)
                                         ORDER BY array_position(%s::text[], p.level)), '[]'::json)
                FROM unit_version p WHERE p.valid_to IS NULL
                  AND p.unit_id IN (v.street_id, v.community_id, v.grid_id, v.compound_id, v.neighbourhood_id))
        FROM unit_version v, LATERAL (SELECT {_LABEL_POINT} AS p) l
        WHERE v.unit_id = %s AND v.valid_to IS NULL
        """,
        [list(levels.LEVELS), unit_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no current unit with id {unit_id}")
    (uid, level, code, name, households, population, version, valid_from, *box, lon, lat, chain) = row
    band = levels.HOUSEHOLD_BANDS.get(level)
    status = levels.band_status(level, households)
    return {"id": uid, "level": level, "level_zh": levels.LABEL_ZH[level], "code": code, "name": name,
            "households": households, "population": population, "version": version,
            "valid_from": valid_from, "band": status, "band_range": list(band) if band else None,
            "bbox": [float(v) for v in box], "label_point": [float(lon), float(lat)], "chain": chain}


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
    rows = conn.execute(
        f"""
        SELECT v.unit_id, v.level, v.code, v.name, v.households,
               ST_XMin(v.geom), ST_YMin(v.geom), ST_XMax(v.geom), ST_YMax(v.geom), ST_X(l.p), ST_Y(l.p)
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
    ).fetchall()
    return [{"id": r[0], "level": r[1], "level_zh": levels.LABEL_ZH[r[1]], "code": r[2], "name": r[3],
             "households": r[4], "bbox": [float(v) for v in r[5:9]], "label_point": [float(r[9]), float(r[10])]}
            for r in rows]


def labels(conn: psycopg.Connection, level: str, bbox: tuple[float, float, float, float],
           limit: int = 800) -> list[list[Any]]:
    """[lon, lat, code, name, width, height] of the current units of `level` in a box (for
    levels drawn from vector tiles, whose labels the browser asks for as the view moves);
    width and height of each unit's box in degrees."""
    rows = conn.execute(
        f"""
        SELECT round(ST_X(l.p)::numeric, 7), round(ST_Y(l.p)::numeric, 7), v.code, v.name,
               round((ST_XMax(v.geom) - ST_XMin(v.geom))::numeric, 6), round((ST_YMax(v.geom) - ST_YMin(v.geom))::numeric, 6)
        FROM unit_version v, LATERAL (SELECT {_LABEL_POINT} AS p) l
        WHERE v.valid_to IS NULL AND v.level = %s AND v.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)
        ORDER BY v.code LIMIT %s
        """,
        [level, *bbox, limit],
    ).fetchall()
    return [[float(r[0]), float(r[1]), r[2], r[3], float(r[4]), float(r[5])] for r in rows]


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
    now = value(conn, "SELECT now()")
    start = now - timedelta(hours=filters.hours) if filters.hours else None
    where, params = filters.where(start)
    total, n_open, n_overdue = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {_OPEN}), count(*) FILTER (WHERE {_OVERDUE}) "
        f"FROM incident i WHERE {where}", params).fetchone()
    rows = []
    if total <= limit:
        rows = conn.execute(
            f"""
            SELECT i.id, ST_X(i.geom), ST_Y(i.geom), i.state, i.category, {_OVERDUE}, i.reported_at, i.deadline,
                   i.street_id, i.community_id, i.grid_id, w.name, i.channel, left(i.description, 140), i.unassigned
            FROM incident i LEFT JOIN worker w ON w.id = i.worker_id
            WHERE {where} ORDER BY i.id
            """, params).fetchall()
    heat = conn.execute(
        f"""
        SELECT round(avg(ST_X(i.geom))::numeric, 6)::float8, round(avg(ST_Y(i.geom))::numeric, 6)::float8, count(*)
        FROM incident i WHERE {where}
        GROUP BY floor(ST_X(i.geom) / %(cell)s), floor(ST_Y(i.geom) / %(cell)s)
        """, params).fetchall()
    # per grid: open and overdue whatever the state filter (open is itself a set of states)
    grid_where, grid_params = filters.where(start, with_state=False)
    grids = conn.execute(
        f"""
        SELECT i.grid_id, count(*) FILTER (WHERE {_OPEN}), count(*) FILTER (WHERE {_OVERDUE}), count(*)
        FROM incident i WHERE {grid_where} AND i.grid_id IS NOT NULL GROUP BY 1
        """, grid_params).fetchall()
    unit_ids = {u for r in rows for u in r[8:11] if u} | {g[0] for g in grids}
    names = {uid: [r["level"], r["code"], r["name"]] for uid, r in latest_names(conn, list(unit_ids)).items()}
    k = FIELDS.index("description")  # residents write phone numbers into descriptions
    return {
        "now": now, "from": start, "total": total, "open": n_open, "overdue": n_overdue, "limit": limit,
        "too_many": total > limit, "fields": FIELDS,
        "incidents": [[r[0], round(r[1], 7), round(r[2], 7), *r[3:k], text_for(r[k], viewer), *r[k + 1:]]
                      for r in rows],
        "heat": [list(h) for h in heat],
        "grids": {g[0]: list(g[1:]) for g in grids},
        "units": names,
    }
