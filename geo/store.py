"""The versioned store of units.

Every write goes through `write_units`: it checks codes and geometry, finds each
unit's parents (by code when given, else by geometry), checks the unit lies inside
them (0.5 m tolerance) and that existing children still lie inside a changed unit,
then, in the caller's transaction, opens version 1 of new units and closes the
current version of changed ones while opening the next. Nothing is overwritten:
`units_as_of` reads the state at any past time back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

import numpy as np
import psycopg
import shapely

from geo import audit, codes, crs, geometry, levels
from geo.auth import Identity
from geo.errors import Conflict, InvalidInput, NotFound

CONTAINMENT_TOLERANCE_M = 0.5
CHAIN_COLUMNS = ("street_id", "community_id", "grid_id", "compound_id", "neighbourhood_id")
Progress = Callable[[str, int, int], None]


@dataclass
class UnitInput:
    """One unit to write, its geometry in WGS84."""

    level: str
    code: str
    name: str
    geom: object
    households: int | None = None
    population: int | None = None
    attributes: dict = field(default_factory=dict)
    parent_codes: dict[str, str] = field(default_factory=dict)
    label: str = ""
    keep: set[str] = field(default_factory=set)  # fields to keep from the stored version


@dataclass
class WriteSummary:
    change_id: int | None
    created: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "change_id": self.change_id,
            "created": len(self.created),
            "changed": len(self.changed),
            "unchanged": len(self.unchanged),
        }


def _noop(stage: str, done: int, total: int) -> None:
    return None


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def _time_filter(as_of: datetime | None, alias: str = "") -> tuple[str, list]:
    p = f"{alias}." if alias else ""
    if as_of is None:
        return f"{p}valid_to IS NULL", []
    return f"{p}valid_from <= %s AND ({p}valid_to IS NULL OR {p}valid_to > %s)", [as_of, as_of]


_CHAIN_CODES_SQL = ", ".join(
    f"(SELECT p.code FROM unit_version p WHERE p.unit_id = v.{col} AND {{pf}} LIMIT 1) AS {col[:-3]}_code"
    for col in CHAIN_COLUMNS
)


def units_geojson(
    conn: psycopg.Connection,
    level: str,
    *,
    as_of: datetime | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    code: str | None = None,
    parent_id: int | None = None,
    limit: int = 10_000,
    offset: int = 0,
) -> tuple[str, int]:
    """A GeoJSON FeatureCollection (text) of the units at `level`, and how many matched."""
    where, params = _time_filter(as_of, "v")
    clauses = [where, "v.level = %s"]
    params.append(level)
    if bbox is not None:
        clauses.append("v.geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)")
        params.extend(bbox)
    if code is not None:
        clauses.append("v.code = %s")
        params.append(code)
    if parent_id is not None:
        clauses.append("%s IN (" + ", ".join(f"v.{c}" for c in CHAIN_COLUMNS) + ")")
        params.append(parent_id)
    sql_where = " AND ".join(clauses)
    total = conn.execute(f"SELECT count(*) FROM unit_version v WHERE {sql_where}", params).fetchone()[0]
    sql = f"""
        SELECT json_build_object(
            'type', 'FeatureCollection',
            'features', coalesce(json_agg(f.feature ORDER BY f.code), '[]'::json)
        )::text
        FROM (
            SELECT v.code, json_build_object(
                'type', 'Feature',
                'id', v.unit_id,
                'geometry', ST_AsGeoJSON(v.geom, 9)::json,
                'properties', json_build_object(
                    'id', v.unit_id, 'level', v.level, 'code', v.code, 'name', v.name,
                    'version', v.version, 'households', v.households, 'population', v.population,
                    'street_id', v.street_id, 'community_id', v.community_id, 'grid_id', v.grid_id,
                    'compound_id', v.compound_id, 'neighbourhood_id', v.neighbourhood_id,
                    'valid_from', v.valid_from, 'valid_to', v.valid_to,
                    'attributes', v.attributes
                )
            ) AS feature
            FROM unit_version v
            WHERE {sql_where}
            ORDER BY v.code
            LIMIT %s OFFSET %s
        ) f
    """
    text = conn.execute(sql, [*params, limit, offset]).fetchone()[0]
    return text, total


_ROW_COLUMNS = (
    "unit_id", "version", "level", "code", "name", *CHAIN_COLUMNS,
    "households", "population", "attributes", "valid_from", "valid_to",
)


def units_rows(
    conn: psycopg.Connection, level: str, *, as_of: datetime | None = None
) -> list[dict]:
    """Rows (dicts with a shapely `geom` and parent codes) of the units at `level`."""
    where, params = _time_filter(as_of, "v")
    pf, pparams = _time_filter(as_of, "p")
    chain_codes = _CHAIN_CODES_SQL.format(pf=pf)
    cols = ", ".join(f"v.{c}" for c in _ROW_COLUMNS)
    chain_params = pparams * len(CHAIN_COLUMNS)
    rows = conn.execute(
        f"SELECT {cols}, ST_AsBinary(v.geom), {chain_codes} FROM unit_version v "
        f"WHERE {where} AND v.level = %s ORDER BY v.code",
        [*chain_params, *params, level],
    ).fetchall()
    out = []
    for row in rows:
        rec = dict(zip(_ROW_COLUMNS, row[: len(_ROW_COLUMNS)]))
        rec["geom"] = shapely.from_wkb(bytes(row[len(_ROW_COLUMNS)]))
        for col, value in zip(CHAIN_COLUMNS, row[len(_ROW_COLUMNS) + 1:]):
            rec[col[:-3] + "_code"] = value
        out.append(rec)
    return out


def get_unit(conn: psycopg.Connection, unit_id: int, as_of: datetime | None = None) -> dict:
    where, params = _time_filter(as_of)
    row = conn.execute(
        f"SELECT {', '.join(_ROW_COLUMNS)}, ST_AsGeoJSON(geom, 9) FROM unit_version "
        f"WHERE unit_id = %s AND {where}",
        [unit_id, *params],
    ).fetchone()
    if row is None:
        when = f" as of {as_of.isoformat()}" if as_of else ""
        raise NotFound(f"no unit with id {unit_id}{when}")
    rec = dict(zip(_ROW_COLUMNS, row[:-1]))
    rec["geometry"] = json.loads(row[-1])
    return rec


def history(conn: psycopg.Connection, unit_id: int) -> list[dict]:
    rows = conn.execute(
        f"SELECT {', '.join(_ROW_COLUMNS)}, change_id, closed_by, ST_AsGeoJSON(geom, 9) "
        "FROM unit_version WHERE unit_id = %s ORDER BY version",
        [unit_id],
    ).fetchall()
    if not rows:
        raise NotFound(f"no unit with id {unit_id}")
    out = []
    for row in rows:
        rec = dict(zip((*_ROW_COLUMNS, "change_id", "closed_by"), row[:-1]))
        rec["geometry"] = json.loads(row[-1])
        out.append(rec)
    return out


def lineage(conn: psycopg.Connection, unit_id: int) -> dict:
    """Which units this one came from, and which it became."""
    came_from = conn.execute(
        "SELECT from_unit_id, kind, change_id FROM unit_lineage WHERE to_unit_id = %s ORDER BY 1",
        [unit_id],
    ).fetchall()
    became = conn.execute(
        "SELECT to_unit_id, kind, change_id FROM unit_lineage WHERE from_unit_id = %s ORDER BY 1",
        [unit_id],
    ).fetchall()
    return {
        "from": [{"unit_id": r[0], "kind": r[1], "change_id": r[2]} for r in came_from],
        "to": [{"unit_id": r[0], "kind": r[1], "change_id": r[2]} for r in became],
    }


def count_units(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT level, count(*) FROM unit_version WHERE valid_to IS NULL GROUP BY level"
    ).fetchall()
    return {level: n for level, n in rows}


# ---------------------------------------------------------------------------
# Parents and containment
# ---------------------------------------------------------------------------

@dataclass
class _Parents:
    level: str
    ids: np.ndarray
    codes: list[str]
    chains: list[dict]
    geoms_m: np.ndarray  # in the metric CRS of the write
    by_code: dict[str, int]


def _load_parents(conn, level: str, bbox, metric) -> _Parents:
    rows = conn.execute(
        f"SELECT unit_id, code, ST_AsBinary(geom), {', '.join(CHAIN_COLUMNS)} FROM unit_version "
        "WHERE valid_to IS NULL AND level = %s AND geom && ST_Expand(ST_MakeEnvelope(%s, %s, %s, %s, 4326), 0.001)",
        [level, *bbox],
    ).fetchall()
    geoms = np.array([shapely.from_wkb(bytes(r[2])) for r in rows], dtype=object)
    geoms_m = crs.transform(geoms, crs.WGS84, metric) if len(rows) else geoms
    chains = [dict(zip(CHAIN_COLUMNS, r[3:])) for r in rows]
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    codes_ = [r[1] for r in rows]
    return _Parents(level, ids, codes_, chains, geoms_m, {c: i for i, c in enumerate(codes_)})


def _outside_by(child, parent) -> float:
    """How far (m) the child's vertices reach outside the parent."""
    rest = child.difference(parent)
    if rest.is_empty:
        return 0.0
    points = shapely.points(shapely.get_coordinates(rest))
    return float(np.max(shapely.distance(points, parent)))


def _outside_tolerance(children: np.ndarray, parents_: np.ndarray) -> np.ndarray:
    """True where a child lies inside its parent widened by the 0.5 m tolerance."""
    inside = shapely.covers(parents_, children)
    doubtful = np.flatnonzero(~inside)
    if len(doubtful):
        widened = shapely.buffer(parents_[doubtful], CONTAINMENT_TOLERANCE_M, quad_segs=8)
        ok = shapely.covers(widened, children[doubtful])
        # numerical fuzz along a shared edge: accept less than 1 cm² beyond the widened parent
        late = np.flatnonzero(~ok)
        if len(late):
            spill = shapely.area(shapely.difference(children[doubtful][late], widened[late]))
            ok[late] = spill < 1e-4
        inside[doubtful] = ok
    return inside


def _outside_words(child, parent) -> str:
    """'reaches 12.3 m outside' or, for a child covering a hole of its parent, the area."""
    by = _outside_by(child, parent)
    if by > CONTAINMENT_TOLERANCE_M:
        return f"reaches {by:.1f} m outside"
    area = child.difference(parent).area
    return f"covers {area:,.0f} m² that is not part of"


def _match_parents(children_m: np.ndarray, parents: _Parents, explicit: list[str | None],
                   labels: list[str], child_level: str) -> np.ndarray:
    """Index into `parents` for each child; raise naming the first child that has none."""
    n = len(children_m)
    match = np.full(n, -1, dtype=np.int64)
    for i, code in enumerate(explicit):
        if code:
            j = parents.by_code.get(code)
            if j is None:
                raise InvalidInput(f"{labels[i]}: its {parents.level} {code} is not stored")
            match[i] = j
    todo = np.flatnonzero(match < 0)
    if len(todo) and len(parents.ids):
        tree = shapely.STRtree(parents.geoms_m)
        probes = shapely.point_on_surface(children_m[todo])
        hit_child, hit_parent = tree.query(probes, predicate="intersects")
        counts = np.bincount(hit_child, minlength=len(todo))
        single = counts == 1
        first = np.full(len(todo), -1, dtype=np.int64)
        # the only parent hit, for children whose probe point hit exactly one
        order = np.argsort(hit_child, kind="stable")
        starts = np.searchsorted(hit_child[order], np.arange(len(todo)))
        has = counts > 0
        first[has] = hit_parent[order][starts[has]]
        match[todo[single]] = first[single]
        # ambiguous or missed probes: the parent sharing the most area with the child
        for k in np.flatnonzero(~single):
            i = todo[k]
            cands = tree.query(children_m[i], predicate="intersects")
            if len(cands) == 0:
                continue
            areas = shapely.area(shapely.intersection(parents.geoms_m[cands], children_m[i]))
            if children_m[i].geom_type == "Point":
                match[i] = int(cands[0])
            elif areas.max() > 0:
                match[i] = int(cands[int(np.argmax(areas))])
    missing = np.flatnonzero(match < 0)
    if len(missing):
        i = int(missing[0])
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InvalidInput(
            f"{labels[i]}: lies outside every stored {parents.level}{more}; "
            f"a {child_level} must lie inside its {parents.level}"
        )
    # containment, 0.5 m tolerance
    parent_geoms = parents.geoms_m[match]
    inside = _outside_tolerance(children_m, parent_geoms)
    if not inside.all():
        # a probe point on a shared edge can fall, by rounding, in the wrong neighbour:
        # those children go to the parent sharing the most area with them
        tree = shapely.STRtree(parents.geoms_m)
        for i in np.flatnonzero(~inside):
            if explicit[i] or children_m[i].geom_type == "Point":
                continue
            cands = tree.query(children_m[i], predicate="intersects")
            areas = shapely.area(shapely.intersection(parents.geoms_m[cands], children_m[i]))
            match[i] = int(cands[int(np.argmax(areas))])
        parent_geoms = parents.geoms_m[match]
        inside = _outside_tolerance(children_m, parent_geoms)
    for i in np.flatnonzero(~inside):
        raise InvalidInput(
            f"{labels[i]}: {_outside_words(children_m[i], parent_geoms[i])} its {parents.level} "
            f"{parents.codes[match[i]]} (allowed: {CONTAINMENT_TOLERANCE_M} m); "
            f"a {child_level} must lie inside its {parents.level}"
        )
    return match


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

MAX_COUNT = 2**31 - 1
MAX_NAME = 200


def _check_text(label: str, what: str, text: str) -> None:
    if "\x00" in text or "\\u0000" in text:
        raise InvalidInput(f"{label}: {what} contains a NUL character, which cannot be stored")


def prepare(units: list[UnitInput], level: str) -> list[UnitInput]:
    """Check codes and geometry of units to write; raise InvalidInput on the first problem."""
    seen: dict[str, str] = {}
    for i, unit in enumerate(units):
        unit.label = unit.label or f"{level} {unit.code or f'#{i + 1}'}"
        unit.code = codes.check(level, unit.code, unit.label)
        if unit.code in seen:
            raise InvalidInput(f"{unit.label}: code {unit.code} appears twice (also {seen[unit.code]})")
        seen[unit.code] = unit.label
        unit.name = (unit.name or "").strip() or unit.code
        if len(unit.name) > MAX_NAME:
            raise InvalidInput(f"{unit.label}: name is longer than {MAX_NAME} characters")
        _check_text(unit.label, "name", unit.name)
        _check_text(unit.label, "attributes", json.dumps(unit.attributes, ensure_ascii=False, default=str))
        for attr in ("households", "population"):
            value = getattr(unit, attr)
            if value is not None and (not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_COUNT):
                raise InvalidInput(f"{unit.label}: {attr} must be a whole number from 0 to {MAX_COUNT}, not {value!r}")
    geoms = np.array([u.geom for u in units], dtype=object)
    missing = [u.label for u in units if u.geom is None or u.geom.is_empty]
    if missing:
        raise InvalidInput(f"{missing[0]}: geometry is missing or empty")
    geometry.check_coordinates(geoms, [u.label for u in units])
    for unit in units:
        unit.geom = geometry.normalise(unit.geom, level, unit.label)
    return units


def write_units(
    conn: psycopg.Connection,
    level: str,
    units: list[UnitInput],
    *,
    kind: str = "load",
    actor: str | Identity = "gridmap",
    note: str | None = None,
    check_codes: bool = True,
    progress: Progress = _noop,
    change_id: int | None = None,
    valid_from: datetime | None = None,
) -> WriteSummary:
    """Create or change the given units at `level`, in the caller's transaction.

    `valid_from` backdates new units (for a first load of boundaries that were already in
    force); it is refused when the write would change stored units."""
    level = levels.parse_level(level)
    if not units:
        return WriteSummary(change_id)
    prepare(units, level)
    n = len(units)
    labels = [u.label for u in units]
    geoms = np.array([u.geom for u in units], dtype=object)
    geoms_m, metric = crs.to_metric(geoms)
    bbox = tuple(shapely.total_bounds(geoms))

    # parents
    chains: list[dict] = [dict.fromkeys(CHAIN_COLUMNS) for _ in range(n)]
    for p_level in levels.PARENTS[level]:
        progress(f"finding {p_level}s", 0, n)
        parents = _load_parents(conn, p_level, bbox, metric)
        if not len(parents.ids):
            stored = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM unit_version WHERE valid_to IS NULL AND level = %s)", [p_level]
            ).fetchone()[0]
            if not stored:
                raise InvalidInput(
                    f"no {p_level} is stored: load the {p_level} level first "
                    f"(a {level} must lie inside its {p_level})"
                )
            more = f" (and {n - 1} more)" if n > 1 else ""
            raise InvalidInput(
                f"{labels[0]}: lies outside every stored {p_level}{more}; "
                f"a {level} must lie inside its {p_level}"
            )
        explicit = [u.parent_codes.get(p_level) for u in units]
        match = _match_parents(geoms_m, parents, explicit, labels, level)
        col = levels.PARENT_COLUMNS[p_level]
        for i in range(n):
            j = match[i]
            p_chain = parents.chains[j]
            if check_codes:
                implied = codes.implied_parent(level, units[i].code, p_level)
                if implied and implied != parents.codes[j]:
                    raise InvalidInput(
                        f"{labels[i]}: lies in {p_level} {parents.codes[j]}, but its code says "
                        f"{p_level} {implied}: fix the code or the boundary"
                    )
            for c in CHAIN_COLUMNS:
                if p_chain[c] is None:
                    continue
                if chains[i][c] is not None and chains[i][c] != p_chain[c]:
                    raise InvalidInput(
                        f"{labels[i]}: its {' and its '.join(levels.PARENTS[level])} lie in different "
                        f"{c[:-3]}s; a {level} must lie in one {c[:-3]}"
                    )
                chains[i][c] = p_chain[c]
            chains[i][col] = int(parents.ids[j])
        progress(f"finding {p_level}s", n, n)

    # existing units with the same codes
    existing = {
        r[1]: r for r in conn.execute(
            f"SELECT unit_id, code, version, name, households, population, attributes, "
            f"ST_AsBinary(geom), {', '.join(CHAIN_COLUMNS)} FROM unit_version "
            "WHERE valid_to IS NULL AND level = %s AND code = ANY(%s) FOR UPDATE",
            [level, [u.code for u in units]],
        ).fetchall()
    }
    summary = WriteSummary(change_id)
    new_idx, changed_idx = [], []
    for i, unit in enumerate(units):
        row = existing.get(unit.code)
        if row is None:
            new_idx.append(i)
            continue
        if "households" in unit.keep:
            unit.households = row[4]
        if "population" in unit.keep:
            unit.population = row[5]
        old_geom = shapely.from_wkb(bytes(row[7]))
        same = (
            row[3] == unit.name and row[4] == _int(unit.households) and row[5] == _int(unit.population)
            and row[6] == unit.attributes
            and dict(zip(CHAIN_COLUMNS, row[8:])) == chains[i]
            and _same_shape(old_geom, unit.geom)
        )
        (summary.unchanged if same else changed_idx).append(row[0] if same else i)
    if not new_idx and not changed_idx:
        return summary

    # a changed unit must still hold its children
    if changed_idx:
        _check_children_inside(conn, level, [existing[units[i].code][0] for i in changed_idx],
                               geoms_m[changed_idx], [labels[i] for i in changed_idx], metric)

    if summary.change_id is None:
        summary.change_id = conn.execute(
            "INSERT INTO change_set (kind, actor, note) VALUES (%s, %s, %s) RETURNING id",
            [kind, str(actor), note],
        ).fetchone()[0]
    now = conn.execute("SELECT now()").fetchone()[0]
    if valid_from is not None:
        if changed_idx:
            raise InvalidInput("a backdated load can only create units, and some of these are stored already")
        if valid_from > now:
            raise InvalidInput("valid_from is in the future")
        now = valid_from

    unit_ids = [0] * n
    versions = [1] * n
    if new_idx:
        ids = conn.execute(
            "SELECT nextval('unit_id_seq') FROM generate_series(1, %s)", [len(new_idx)]
        ).fetchall()
        with conn.cursor().copy("COPY unit (id, level, created_at) FROM STDIN") as copy:
            for i, (uid,) in zip(new_idx, ids):
                unit_ids[i] = uid
                copy.write_row((uid, level, now))
        summary.created = [unit_ids[i] for i in new_idx]
    if changed_idx:
        old_ids = []
        for i in changed_idx:
            row = existing[units[i].code]
            unit_ids[i] = row[0]
            versions[i] = row[2] + 1
            old_ids.append(row[0])
        conn.execute(
            "UPDATE unit_version SET valid_to = %s, closed_by = %s "
            "WHERE unit_id = ANY(%s) AND valid_to IS NULL",
            [now, summary.change_id, old_ids],
        )
        summary.changed = old_ids
    write = new_idx + changed_idx
    hexes = shapely.to_wkb(shapely.set_srid(geoms[write], 4326), hex=True, include_srid=True)
    columns = ("unit_id", "version", "level", "code", "name", *CHAIN_COLUMNS, "households",
               "population", "geom", "attributes", "valid_from", "change_id")
    total = len(write)
    with conn.cursor().copy(f"COPY unit_version ({', '.join(columns)}) FROM STDIN") as copy:
        for k, (i, hexwkb) in enumerate(zip(write, hexes)):
            unit = units[i]
            copy.write_row((
                unit_ids[i], versions[i], level, unit.code, unit.name,
                *(chains[i][c] for c in CHAIN_COLUMNS),
                _int(unit.households), _int(unit.population), hexwkb,
                json.dumps(unit.attributes, ensure_ascii=False, default=str), now, summary.change_id,
            ))
            if k % 2000 == 0:
                progress("writing", k, total)
    progress("writing", total, total)
    if changed_idx:
        _after_change(conn, summary.change_id)
    return summary


def _after_change(conn, change_id: int) -> None:
    """What else must follow a boundary change in the same transaction: open incidents in
    the closed units move to the units that now hold them."""
    from geo import incidents

    incidents.reassign_after_change(conn, change_id)


def _same_shape(a, b) -> bool:
    """Equal to ~0.1 mm, whatever the ring orientation or starting vertex."""
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), 1e-9))


def _int(value) -> int | None:
    return None if value is None else int(value)


def _check_children_inside(conn, level, unit_ids, geoms_m, labels, metric) -> None:
    for child_level in levels.children(level):
        col = levels.PARENT_COLUMNS[level]
        rows = conn.execute(
            f"SELECT {col}, code, ST_AsBinary(geom) FROM unit_version "
            f"WHERE valid_to IS NULL AND level = %s AND {col} = ANY(%s)",
            [child_level, unit_ids],
        ).fetchall()
        if not rows:
            continue
        position = {uid: k for k, uid in enumerate(unit_ids)}
        child_geoms = crs.transform(
            np.array([shapely.from_wkb(bytes(r[2])) for r in rows], dtype=object), crs.WGS84, metric
        )
        parent_geoms = geoms_m[[position[r[0]] for r in rows]]
        inside = _outside_tolerance(child_geoms, parent_geoms)
        bad = np.flatnonzero(~inside)
        if len(bad):
            k = int(bad[0])
            words = _outside_words(child_geoms[k], parent_geoms[k]).replace(" that is not part of", "")
            raise InvalidInput(
                f"{labels[position[rows[k][0]]]}: the new boundary leaves its {child_level} "
                f"{rows[k][1]} outside ({words}; {len(bad)} {child_level} unit(s) outside); "
                f"change the {child_level} units first or draw the {level} around them"
            )


def edit_unit(
    conn: psycopg.Connection,
    unit_id: int,
    *,
    expected_version: int,
    geom=None,
    name: str | None = None,
    households: int | None = None,
    population: int | None = None,
    attributes: dict | None = None,
    actor: str | Identity = "gridmap",
    note: str | None = None,
) -> dict:
    """Open a new version of one unit; refuse (Conflict) if it changed since `expected_version`.
    The edit is recorded in the audit log, in the same transaction."""
    row = conn.execute(
        "SELECT level, code, name, version, households, population, attributes, ST_AsBinary(geom) "
        "FROM unit_version WHERE unit_id = %s AND valid_to IS NULL FOR UPDATE",
        [unit_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no current unit with id {unit_id}")
    level, code, old_name, version = row[:4]
    if version != expected_version:
        raise Conflict(
            f"{level} {code} is at version {version}, but the edit was made on version "
            f"{expected_version}: reload the unit and make the edit again"
        )
    unit = UnitInput(
        level=level, code=code,
        name=old_name if name is None else name,
        geom=shapely.from_wkb(bytes(row[7])) if geom is None else geom,
        households=row[4] if households is None else households,
        population=row[5] if population is None else population,
        attributes=row[6] if attributes is None else attributes,
        label=f"{level} {code}",
    )
    summary = write_units(conn, level, [unit], kind="edit", actor=actor, note=note)
    result = get_unit(conn, unit_id)
    if summary.change_id is not None:  # an edit that changes nothing opens no version
        given = {"geometry": geom, "name": name, "households": households, "population": population,
                 "attributes": attributes}
        audit.record(conn, actor, "unit.edit", "unit", [unit_id], change_id=summary.change_id,
                     before={"version": version}, after={"version": result["version"]},
                     detail={"level": level, "code": code, "fields": [k for k, v in given.items() if v is not None],
                             "note": note})
    return result | {"change_id": summary.change_id}


def replace_units(
    conn: psycopg.Connection,
    old_unit_ids: Iterable[int],
    new_units: list[UnitInput],
    *,
    kind: str,
    actor: str | Identity = "gridmap",
    note: str | None = None,
) -> WriteSummary:
    """Retire units and open new ones in their place (a split or a merge), recording lineage.

    Descendants of the retired units are re-assigned, by geometry, to the new units
    (each gets a new version); anything that no longer fits is refused.
    """
    if kind not in ("split", "merge", "redraw"):
        raise InvalidInput(f"unknown replacement kind {kind!r}")
    old_ids = sorted(set(old_unit_ids))
    rows = conn.execute(
        "SELECT unit_id, level, code FROM unit_version WHERE unit_id = ANY(%s) AND valid_to IS NULL FOR UPDATE",
        [old_ids],
    ).fetchall()
    found = {r[0] for r in rows}
    if missing := [u for u in old_ids if u not in found]:
        raise Conflict(f"units {missing} are not current any more: reload and plan again")
    level_set = {r[1] for r in rows}
    if len(level_set) != 1 or any(u.level != rows[0][1] for u in new_units):
        raise InvalidInput("a split or merge replaces units of one level with units of the same level")
    level = rows[0][1]
    change_id = conn.execute(
        "INSERT INTO change_set (kind, actor, note) VALUES (%s, %s, %s) RETURNING id",
        [kind, str(actor), note],
    ).fetchone()[0]
    retired_codes = {r[2] for r in rows}
    conn.execute(
        "UPDATE unit_version SET valid_to = now(), closed_by = %s WHERE unit_id = ANY(%s) AND valid_to IS NULL",
        [change_id, old_ids],
    )
    # new units may reuse a retired code only as a new unit
    for unit in new_units:
        if unit.code in retired_codes:
            unit.label = unit.label or f"{level} {unit.code}"
    summary = write_units(conn, level, new_units, kind=kind, actor=actor, note=note, change_id=change_id)
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
        [change_id, kind, summary.created, old_ids, change_id],
    )
    _reassign_descendants(conn, level, old_ids, change_id, actor)
    _after_change(conn, change_id)
    return summary


def _reassign_descendants(conn, level: str, old_ids: list[int], change_id: int, actor: str | Identity) -> None:
    col = levels.PARENT_COLUMNS.get(level)
    if col is None:
        return
    for child_level in levels.LEVELS[levels.LEVELS.index(level) + 1:]:
        if level not in levels.ancestors(child_level):
            continue
        rows = units_rows_where(conn, child_level, f"{col} = ANY(%s)", [old_ids])
        if not rows:
            continue
        units = [
            UnitInput(
                level=child_level, code=r["code"], name=r["name"], geom=r["geom"],
                households=r["households"], population=r["population"], attributes=r["attributes"],
                label=f"{child_level} {r['code']}",
            )
            for r in rows
        ]
        write_units(conn, child_level, units, kind="edit", actor=actor, check_codes=False,
                    change_id=change_id)


def units_rows_where(conn, level: str, where: str, params: list) -> list[dict]:
    rows = conn.execute(
        f"SELECT unit_id, code, name, households, population, attributes, ST_AsBinary(geom) "
        f"FROM unit_version WHERE valid_to IS NULL AND level = %s AND {where}",
        [level, *params],
    ).fetchall()
    keys = ("unit_id", "code", "name", "households", "population", "attributes")
    return [dict(zip(keys, r[:6])) | {"geom": shapely.from_wkb(bytes(r[6]))} for r in rows]


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time; without a zone it is read in GRIDMAP_TZ (default Asia/Shanghai)."""
    if text is None or str(text).strip() == "":
        return None
    import os
    from zoneinfo import ZoneInfo

    raw = str(text).strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        hint = " (in a URL, write + as %2B)" if " " in raw and raw[:4].isdigit() else ""
        raise InvalidInput(
            f"time {raw!r} is not ISO 8601 (e.g. 2026-01-31 or 2026-01-31T08:00:00+08:00){hint}"
        ) from None
    if value.tzinfo is None:
        zone = os.environ.get("GRIDMAP_TZ", "Asia/Shanghai")
        try:
            value = value.replace(tzinfo=ZoneInfo(zone))
        except (KeyError, ValueError):
            from geo.errors import SetupError

            raise SetupError(f"GRIDMAP_TZ={zone!r} is not a time zone; use e.g. Asia/Shanghai") from None
    return value


def load_roads(conn, rows: list[dict], change_id: int | None = None) -> int:
    """Add road centre lines; a road whose code is already stored is replaced."""
    conn.execute("DELETE FROM road WHERE code = ANY(%s)", [[r["code"] for r in rows]])
    with conn.cursor().copy(
        "COPY road (code, name, kind, geom, attributes, change_id) FROM STDIN"
    ) as copy:
        for r in rows:
            geom = shapely.set_srid(r["geom"], 4326)
            copy.write_row((
                r["code"], r["name"], r["kind"], shapely.to_wkb(geom, hex=True, include_srid=True),
                json.dumps(r.get("attributes") or {}, ensure_ascii=False, default=str), change_id,
            ))
    return len(rows)
