"""Units as the maps need them: compact GeoJSON with a label point and the household band,
one unit with its chain of parents, search by name or code, and label points in a box.

Label points are the centres of each unit's largest inscribed circle (the pole of
inaccessibility), so a label sits well inside even an L-shaped grid.
"""

from __future__ import annotations

from geo import levels
from geo.errors import InvalidInput, NotFound

# levels the maps draw, top to bottom
MAP_LEVELS = ("street", "community", "grid", "compound", "neighbourhood", "building")

_LABEL_POINT = ("CASE WHEN GeometryType(v.geom) LIKE '%%POLYGON' "
                "THEN (ST_MaximumInscribedCircle(v.geom)).center ELSE ST_PointOnSurface(v.geom) END")


def band_of(level: str) -> tuple[int, int] | None:
    return levels.HOUSEHOLD_BANDS.get(level)


def _band_sql(level: str) -> tuple[str, list]:
    """SQL for 'below' / 'in' / 'above' the level's household band (null without a band)."""
    band = band_of(level)
    if band is None:
        return "NULL::text", []
    return ("CASE WHEN v.households IS NULL THEN NULL WHEN v.households < %s THEN 'below' "
            "WHEN v.households > %s THEN 'above' ELSE 'in' END"), list(band)


def layer_geojson(conn, level: str) -> str:
    """The current units of one level as a FeatureCollection (text), properties id, code,
    name, level, households, band, `lp`, the label point [lon, lat], and `room`, the width
    and height of the unit's box in degrees (a label shows only where it fits)."""
    band_sql, band_params = _band_sql(level)
    return conn.execute(
        f"""
        SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
            'type', 'Feature', 'id', v.unit_id, 'geometry', ST_AsGeoJSON(v.geom, 7)::json,
            'properties', json_build_object(
                'id', v.unit_id, 'code', v.code, 'name', v.name, 'level', v.level,
                'households', v.households, 'band', {band_sql},
                'lp', json_build_array(round(ST_X(l.p)::numeric, 7), round(ST_Y(l.p)::numeric, 7)),
                'room', json_build_array(round((ST_XMax(v.geom) - ST_XMin(v.geom))::numeric, 6),
                                         round((ST_YMax(v.geom) - ST_YMin(v.geom))::numeric, 6))))
            ORDER BY v.code), '[]'::json))::text
        FROM unit_version v, LATERAL (SELECT {_LABEL_POINT} AS p) l
        WHERE v.valid_to IS NULL AND v.level = %s
        """,
        [*band_params, level],
    ).fetchone()[0]


def extent(conn) -> list[float] | None:
    """[minlon, minlat, maxlon, maxlat] of the current streets (or of every unit)."""
    row = conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e "
        "FROM unit_version WHERE valid_to IS NULL AND level IN ('street', 'community', 'grid')) s"
    ).fetchone()
    return None if row[0] is None else [float(v) for v in row]


def detail(conn, unit_id: int) -> dict:
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
        [list(MAP_LEVELS), unit_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no current unit with id {unit_id}")
    (uid, level, code, name, households, population, version, valid_from, *box, lon, lat, chain) = row
    band = band_of(level)
    status = None
    if band and households is not None:
        status = "below" if households < band[0] else "above" if households > band[1] else "in"
    return {"id": uid, "level": level, "level_zh": levels.LABEL_ZH[level], "code": code, "name": name,
            "households": households, "population": population, "version": version,
            "valid_from": valid_from, "band": status, "band_range": list(band) if band else None,
            "bbox": [float(v) for v in box], "label_point": [float(lon), float(lat)], "chain": chain}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(conn, query: str, limit: int = 20) -> list[dict]:
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
        {"q": text, "prefix": like + "%", "infix": "%" + like + "%", "levels": list(MAP_LEVELS), "limit": limit},
    ).fetchall()
    return [{"id": r[0], "level": r[1], "level_zh": levels.LABEL_ZH[r[1]], "code": r[2], "name": r[3],
             "households": r[4], "bbox": [float(v) for v in r[5:9]], "label_point": [float(r[9]), float(r[10])]}
            for r in rows]


def labels(conn, level: str, bbox: tuple[float, float, float, float], limit: int = 800) -> list[list]:
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
