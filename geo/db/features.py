"""The queries behind the OGC API - Features collections (api/routes/ogc.py): one collection per
unit level and one of incidents, read a page at a time in id order.

A page is one SQL statement. PostgreSQL builds the features as GeoJSON text and, in the
same statement, says whether features lie before and after the page and how many match
(counted up to COUNT_CAP; above it the count is left out rather than scanning on).
Paging is by key (`after` or `before` an id), not by offset: a page deep in a collection
costs what the first one does, and a walk through the pages never skips or repeats a
feature while units are edited or incidents come in.

Incidents never carry the reporter's contact, description, photos or external id: they
are the residents' words and details, and only their category, state, times and units go
out (masking by role is its own issue).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from geo.db import generation
from geo.db.rows import dicts, one
from geo.errors import NotFound
from geo.incidents.lifecycle import OPEN_STATES
from geo.units import levels

INCIDENTS = "incidents"
COLLECTIONS: tuple[str, ...] = (*levels.LEVELS, INCIDENTS)
COUNT_CAP = 100_000  # numberMatched is given up to this many; above it, left out


@dataclass
class Selection:
    """Which features a page holds: filters, and where the page starts."""

    bbox: tuple[float, float, float, float] | None = None
    as_of: datetime | None = None   # units: the versions valid then (None: the current ones)
    start: datetime | None = None   # incidents: reported at or after
    end: datetime | None = None     # incidents: reported at or before
    after: int | None = None        # ids above this one, ascending
    before: int | None = None       # ids below this one (the page before), still ascending
    limit: int = 100


@dataclass
class Page:
    features: str           # a JSON array of GeoJSON features, in id order
    returned: int
    matched: int | None     # None when more than COUNT_CAP match
    first_id: int | None
    last_id: int | None
    more_after: bool
    more_before: bool
    time: datetime          # the database's time of the answer


@dataclass
class Extent:
    bbox: tuple[float, float, float, float]
    start: datetime | None
    end: datetime | None     # units: None while a version is current


@dataclass
class _Source:
    """A collection as SQL: the rows that match (with their id as `fid`) and the feature of a row."""

    matched: str
    feature: str
    params: dict[str, Any] = field(default_factory=dict)


def _code_of(column: str) -> str:
    """SQL for the code of the unit whose id is in `column` (a unit keeps its code for life)."""
    return (f"(SELECT p.code FROM unit_version p WHERE p.unit_id = {column} "
            "ORDER BY p.version DESC LIMIT 1)")


def _bbox_clause(alias: str, bbox: tuple[float, float, float, float] | None, params: dict[str, Any]) -> list[str]:
    """Features whose geometry meets the box, as the standard asks (not only their own box):
    ST_Intersects starts with the index-backed `&&` and tests exactly only what passes it."""
    if bbox is None:
        return []
    params.update(zip(("minx", "miny", "maxx", "maxy"), bbox, strict=True))
    return [f"ST_Intersects({alias}.geom, ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4326))"]


def _units(level: str, sel: Selection) -> _Source:
    params: dict[str, Any] = {"level": level}
    clauses = ["v.level = %(level)s"]
    if sel.as_of is None:
        clauses.append("v.valid_to IS NULL")
    else:
        clauses.append("v.valid_from <= %(as_of)s AND (v.valid_to IS NULL OR v.valid_to > %(as_of)s)")
        params["as_of"] = sel.as_of
    clauses += _bbox_clause("v", sel.bbox, params)
    parents = levels.PARENTS[level]
    parent = f"v.{levels.PARENT_COLUMNS[parents[0]]}" if parents else "NULL::bigint"
    chain = "".join(f", '{lv}_code', {_code_of('v.' + levels.PARENT_COLUMNS[lv])}"
                    for lv in levels.ancestors(level))
    feature = f"""json_build_object(
        'type', 'Feature', 'id', v.unit_id, 'geometry', ST_AsGeoJSON(v.geom, 9)::json,
        'properties', json_build_object(
            'id', v.unit_id, 'code', v.code, 'name', v.name, 'level', v.level, 'version', v.version,
            'valid_from', v.valid_from, 'valid_to', v.valid_to, 'households', v.households,
            'population', v.population, 'parent_id', {parent}{chain}, 'attributes', v.attributes))"""
    matched = f"SELECT v.unit_id AS fid, v.* FROM unit_version v WHERE {' AND '.join(clauses)}"
    return _Source(matched, feature, params)


def _incidents(sel: Selection) -> _Source:
    params: dict[str, Any] = {"open_states": list(OPEN_STATES)}
    clauses = ["true"]
    if sel.start is not None:
        clauses.append("i.reported_at >= %(start)s")
        params["start"] = sel.start
    if sel.end is not None:
        clauses.append("i.reported_at <= %(end)s")
        params["end"] = sel.end
    clauses += _bbox_clause("i", sel.bbox, params)
    chain = "".join(f", '{lv}_code', {_code_of(f'v.{lv}_id')}" for lv in ("street", "community", "grid"))
    feature = f"""json_build_object(
        'type', 'Feature', 'id', v.id, 'geometry', ST_AsGeoJSON(v.geom, 9)::json,
        'properties', json_build_object(
            'id', v.id, 'category', v.category,
            'category_zh', (SELECT c.name_zh FROM incident_category c WHERE c.code = v.category),
            'state', v.state, 'channel', v.channel, 'reported_at', v.reported_at, 'deadline', v.deadline,
            'overdue', (v.state = ANY(%(open_states)s) AND now() > v.deadline)
                       OR coalesce(coalesce(v.resolved_at, v.closed_at) > v.deadline, false),
            'resolved_at', v.resolved_at, 'closed_at', v.closed_at, 'unassigned', v.unassigned,
            'handled_at_level', v.handled_at_level{chain}))"""
    matched = f"SELECT i.id AS fid, i.* FROM incident i WHERE {' AND '.join(clauses)}"
    return _Source(matched, feature, params)


def _source(collection: str, sel: Selection) -> _Source:
    if collection == INCIDENTS:
        return _incidents(sel)
    return _units(collection, sel)


def page(conn: psycopg.Connection, collection: str, sel: Selection) -> Page:
    """One page of a collection, in ascending id order, in one statement."""
    src = _source(collection, sel)
    backward = sel.before is not None
    anchor = sel.before if backward else sel.after
    params = {**src.params, "limit": sel.limit, "cap": COUNT_CAP, "anchor": anchor}
    if anchor is None:
        step, behind = "true", "false"
    elif backward:
        step, behind = "fid < %(anchor)s", "EXISTS (SELECT 1 FROM matched WHERE fid >= %(anchor)s)"
    else:
        step, behind = "fid > %(anchor)s", "EXISTS (SELECT 1 FROM matched WHERE fid <= %(anchor)s)"
    order = "DESC" if backward else "ASC"
    row = one(
        conn,
        f"""
        WITH matched AS NOT MATERIALIZED ({src.matched}),
        ahead AS MATERIALIZED (
            SELECT * FROM matched WHERE {step} ORDER BY fid {order} LIMIT %(limit)s + 1
        ),
        kept AS MATERIALIZED (SELECT * FROM ahead ORDER BY fid {order} LIMIT %(limit)s)
        SELECT
            (SELECT coalesce(json_agg({src.feature} ORDER BY v.fid), '[]'::json) FROM kept v)::text AS features,
            (SELECT count(*) FROM kept) AS returned, (SELECT min(fid) FROM kept) AS first_id,
            (SELECT max(fid) FROM kept) AS last_id,
            (SELECT count(*) FROM ahead) > %(limit)s AS more_ahead, {behind} AS more_behind,
            (SELECT count(*) FROM (SELECT 1 FROM matched LIMIT %(cap)s + 1) c) AS matched, now() AS now
        """,
        params,
    )
    assert row is not None  # a SELECT without FROM returns one row
    more_ahead, more_behind = row["more_ahead"], row["more_behind"]
    return Page(
        features=row["features"], returned=row["returned"],
        matched=row["matched"] if row["matched"] <= COUNT_CAP else None,
        first_id=row["first_id"], last_id=row["last_id"],
        more_after=more_behind if backward else more_ahead,
        more_before=more_ahead if backward else more_behind,
        time=row["now"],
    )


def feature(conn: psycopg.Connection, collection: str, feature_id: int, as_of: datetime | None = None) -> str:
    """One feature (GeoJSON text) of a collection; NotFound when the collection has no such id."""
    src = _source(collection, Selection(as_of=as_of))
    row = one(
        conn,
        f"SELECT {src.feature}::text AS feature FROM ({src.matched}) v WHERE v.fid = %(fid)s",
        {**src.params, "fid": feature_id},
    )
    if row is None:
        what = "incident" if collection == INCIDENTS else collection
        when = f" as of {as_of.isoformat()}" if as_of is not None else ""
        raise NotFound(f"no {what} with id {feature_id}{when} in collection {collection!r}")
    text: str = row["feature"]
    return text


def unit_extents(conn: psycopg.Connection) -> dict[str, Extent]:
    """Per level, the bbox of every version and the span of their validity (open while a
    version is current)."""
    rows = dicts(
        conn,
        """
        SELECT level, ST_XMin(e) AS minx, ST_YMin(e) AS miny, ST_XMax(e) AS maxx, ST_YMax(e) AS maxy, first,
               CASE WHEN current THEN NULL ELSE last END AS last
        FROM (SELECT level, ST_Extent(geom) AS e, min(valid_from) AS first, max(valid_to) AS last,
                     bool_or(valid_to IS NULL) AS current
              FROM unit_version GROUP BY level) x
        """
    )
    return {r["level"]: Extent((r["minx"], r["miny"], r["maxx"], r["maxy"]), r["first"], r["last"]) for r in rows}


# The units' extents change only with the boundary generation: each process keeps them until
# it moves. The incidents' are read on each request (one scan of the incident table).
_unit_extents: generation.Cache[dict[str, Extent]] = generation.Cache()


def extents(conn: psycopg.Connection, collections: tuple[str, ...]) -> dict[str, Extent | None]:
    """The extent of each collection asked for (None for one that holds nothing)."""
    units = _unit_extents.get(conn, "units", lambda: unit_extents(conn))
    out: dict[str, Extent | None] = {cid: units.get(cid) for cid in collections if cid != INCIDENTS}
    if INCIDENTS in collections:
        out[INCIDENTS] = incident_extent(conn)
    return out


def incident_extent(conn: psycopg.Connection) -> Extent | None:
    """The bbox of every incident and the span of their report times (None when there are none)."""
    row = one(
        conn,
        "SELECT ST_XMin(e) AS minx, ST_YMin(e) AS miny, ST_XMax(e) AS maxx, ST_YMax(e) AS maxy, first, last FROM "
        "(SELECT ST_Extent(geom) AS e, min(reported_at) AS first, max(reported_at) AS last FROM incident) x"
    )
    assert row is not None  # an aggregate without GROUP BY returns one row
    if row["minx"] is None:
        return None
    return Extent((row["minx"], row["miny"], row["maxx"], row["maxy"]), row["first"], row["last"])
