"""Plans: stored proposals to split or merge units, previewed, compared, edited, committed.

A plan records the units it replaces at the versions it was drawn from. Commit checks
those versions are still current (else Conflict, 409), re-validates the proposed units
(they must tile what they replace, with no gaps or overlaps) and then, in one
transaction, closes the old versions and opens the new units with lineage through
`store.replace_units`. Nothing is overwritten: an edit adds a revision of the proposed
units; a committed or discarded plan stays on record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import psycopg
import shapely

from geo import audit, crs, geometry, levels, partition, plan_quality, store
from geo.auth import Identity
from geo.errors import Conflict, InvalidInput, NotFound
from geo.partition import Feature

NUMERALS = "一二三四五六七八九十"
TILING_TOLERANCE_M2 = 1.0  # gaps or overlaps smaller than this are rounding


@dataclass
class Context:
    """A unit and what lies inside it, in a local metric CRS."""

    unit: dict
    metric: object
    outline: object
    compounds: list[Feature]
    buildings: list[Feature]
    cells: list[Feature]
    roads: list


def _current(conn, unit_id: int) -> dict:
    row = conn.execute(
        "SELECT unit_id, version, level, code, name, households, street_id, community_id, grid_id, "
        "ST_AsBinary(geom) FROM unit_version WHERE unit_id = %s AND valid_to IS NULL",
        [unit_id],
    ).fetchone()
    if row is None:
        raise NotFound(f"no current unit with id {unit_id}")
    keys = ("unit_id", "version", "level", "code", "name", "households", "street_id", "community_id", "grid_id")
    return dict(zip(keys, row[:-1])) | {"geom": shapely.from_wkb(bytes(row[-1]))}


def resolve_unit(conn, ref: str | int) -> int:
    """A unit id from an id or a code."""
    text = str(ref).strip()
    if text.isdigit() and len(text) < 12:
        return int(text)
    row = conn.execute(
        "SELECT unit_id FROM unit_version WHERE code = %s AND valid_to IS NULL ORDER BY level LIMIT 1", [text]
    ).fetchone()
    if row is None:
        raise NotFound(f"no current unit with id or code {text!r}")
    return row[0]


def _features(rows: list[dict], metric, compound_of=None) -> list[Feature]:
    if not rows:
        return []
    geoms = crs.transform(np.array([r["geom"] for r in rows], dtype=object), crs.WGS84, metric)
    return [
        Feature(r["code"], g, int(r["households"] or 0), compound_of(r) if compound_of else None, r["name"])
        for r, g in zip(rows, geoms)
    ]


def load_context(conn, unit_id: int) -> Context:
    unit = _current(conn, unit_id)
    lon, lat = unit["geom"].centroid.coords[0]
    metric = crs.local_metric(lon, lat)
    outline = crs.transform(np.array([unit["geom"]], dtype=object), crs.WGS84, metric)[0]
    col = levels.PARENT_COLUMNS[unit["level"]]
    community_id = unit["unit_id"] if unit["level"] == "community" else unit["community_id"]
    compound_rows = store.units_rows_where(
        conn, "compound", "community_id = %s AND ST_Intersects(geom, ST_GeomFromEWKB(%s))",
        [community_id, _ewkb(unit["geom"])],
    )
    compound_code = {r["unit_id"]: r["code"] for r in compound_rows}
    building_rows = _with_chain(conn, "building", col, unit_id)
    cell_rows = _with_chain(conn, "neighbourhood", col, unit_id)
    compounds = _features(compound_rows, metric)
    buildings = _features(building_rows, metric, lambda r: compound_code.get(r["compound_id"]))
    cells = _features(cell_rows, metric, lambda r: compound_code.get(r["compound_id"]))
    road_rows = conn.execute(
        "SELECT ST_AsBinary(geom) FROM road WHERE geom && ST_Expand(ST_GeomFromEWKB(%s), 0.0005)",
        [_ewkb(unit["geom"])],
    ).fetchall()
    roads = list(crs.transform(
        np.array([shapely.from_wkb(bytes(r[0])) for r in road_rows], dtype=object), crs.WGS84, metric
    )) if road_rows else []
    roads = [g for r in roads for g in shapely.get_parts(r)]
    return Context(unit, metric, outline, compounds, buildings, cells, roads)


def _ewkb(geom) -> bytes:
    return shapely.to_wkb(shapely.set_srid(geom, 4326), include_srid=True)


def _with_chain(conn, level: str, col: str, unit_id: int) -> list[dict]:
    rows = conn.execute(
        f"SELECT unit_id, code, name, households, compound_id, ST_AsBinary(geom) FROM unit_version "
        f"WHERE valid_to IS NULL AND level = %s AND {col} = %s",
        [level, unit_id],
    ).fetchall()
    keys = ("unit_id", "code", "name", "households", "compound_id")
    return [dict(zip(keys, r[:5])) | {"geom": shapely.from_wkb(bytes(r[5]))} for r in rows]


# ---------------------------------------------------------------------------
# Drawing a split
# ---------------------------------------------------------------------------

def parse_band(text: str | None, level: str) -> tuple[int, int]:
    if text is None or str(text).strip() == "":
        if level not in levels.HOUSEHOLD_BANDS:
            raise InvalidInput(f"give a household band for {level} units, e.g. 300-500")
        return levels.HOUSEHOLD_BANDS[level]
    match = re.fullmatch(r"\s*(\d+)\s*[-–,:]\s*(\d+)\s*", str(text))
    if not match:
        raise InvalidInput(f"household band {text!r} is not LOW-HIGH, e.g. 300-500")
    lo, hi = int(match.group(1)), int(match.group(2))
    if not 0 < lo <= hi:
        raise InvalidInput(f"household band {text!r}: the floor must be above 0 and not above the ceiling")
    return lo, hi


def _into(unit_level: str, into: str) -> str:
    into = levels.parse_level(into)
    allowed = {"community": ("community", "grid"), "grid": ("grid", "neighbourhood")}
    if into not in allowed.get(unit_level, ()):
        options = " or ".join(allowed.get(unit_level, ())) or "nothing"
        raise InvalidInput(f"a {unit_level} can be split into {options}, not into {into}")
    return into


def draw_split(conn: psycopg.Connection, unit_id: int, into: str, *, band: tuple[int, int] | None = None,
               parts: int | None = None, seed: int = 0, actor: str | Identity = "gridmap",
               progress=None) -> dict:
    """Draw and store a split plan for one unit; returns the plan (see `get_plan`)."""
    progress = progress or (lambda stage, done, total: None)
    ctx = load_context(conn, unit_id)
    unit = ctx.unit
    into = _into(unit["level"], into)
    band = band or levels.HOUSEHOLD_BANDS[into]
    if parts is not None and not 1 <= parts <= 500:
        raise InvalidInput("parts must be from 1 to 500")
    progress("partitioning", 0, 1)
    try:
        if into == "neighbourhood":
            attrs = _building_attrs(conn, unit_id)
            result_parts, notes = _split_by_compound(ctx, band, seed, attrs)
        else:
            compounds = ctx.compounds
            cells = ctx.cells
            if into == "community":
                compounds = _grid_clusters(conn, unit_id, ctx.metric)
                cells = []
            result = partition.split(ctx.outline, compounds, ctx.buildings if into != "community" else [],
                                     ctx.roads, band, parts=parts, seed=seed, cells=cells)
            result_parts, notes = [(p.geom, p.households, None) for p in result.parts], result.notes
    except partition.Infeasible as exc:
        raise InvalidInput(f"{unit['level']} {unit['code']}: {exc}") from None
    progress("partitioning", 1, 1)
    if into == unit["level"]:
        replaces = [unit]
    else:
        replaces = _replaced_children(conn, into, unit)
    proposed = _name_parts(conn, unit, into, result_parts, replaces)
    metrics = _metrics(conn, ctx, into, band, [p["geom_m"] for p in proposed], [p["households"] for p in proposed])
    kind = "split" if into == unit["level"] or not replaces else "redraw"
    return _store_plan(conn, kind, into, unit, replaces, proposed, ctx.metric, metrics, notes,
                       {"into": into, "band": list(band), "parts": parts, "seed": seed,
                        "parent_version": unit["version"]}, actor)


def _grid_clusters(conn, community_id: int, metric) -> list[Feature]:
    """Whole grids, joined where a compound spans several: new communities are made of
    these, so no grid and no compound is cut."""
    grids = _features(_with_chain(conn, "grid", "community_id", community_id), metric)
    comps = _features(_with_chain(conn, "compound", "community_id", community_id), metric)
    find, join = partition.union_find(len(grids))
    if grids and comps:
        tree = shapely.STRtree(np.array([g.geom for g in grids], dtype=object))
        for c in comps:
            hits = [int(h) for h in tree.query(c.geom, predicate="intersects")
                    if shapely.intersection(grids[int(h)].geom, c.geom).area > 1.0]
            for h in hits[1:]:
                join(h, hits[0])
    groups: dict[int, list[int]] = {}
    for i in range(len(grids)):
        groups.setdefault(find(i), []).append(i)
    return [Feature("+".join(grids[i].code for i in idx),
                    shapely.union_all([grids[i].geom for i in idx], grid_size=partition.NODE_GRID_M),
                    sum(grids[i].households for i in idx))
            for idx in groups.values()]


def _building_attrs(conn, grid_id: int) -> dict[str, dict]:
    return dict(conn.execute(
        "SELECT code, attributes FROM unit_version WHERE valid_to IS NULL AND level = 'building' "
        "AND grid_id = %s", [grid_id]).fetchall())


def _entrance_slices(b: Feature, ceiling: int, attrs: dict[str, dict]):
    """(piece, households) per entrance (单元) of a building above the ceiling, cut across
    its long side; a building at or below the ceiling stays whole."""
    n = int((attrs.get(b.code) or {}).get("entrances") or 0) or int(np.ceil(b.households / ceiling))
    if b.households <= ceiling or n <= 1 or b.geom.geom_type == "Point":
        return [(b.geom, b.households)]
    rect = b.geom.minimum_rotated_rectangle
    xy = np.asarray(rect.exterior.coords)[:4]
    e1, e2 = xy[1] - xy[0], xy[3] - xy[0]
    if np.hypot(*e1) < np.hypot(*e2):
        e1, e2 = e2, e1  # e1 runs along the long side
    origin = xy[0]
    base = b.households // n
    out = []
    for k in range(n):
        a0, a1 = k / n, (k + 1) / n
        quad = shapely.Polygon([origin + a0 * e1, origin + a1 * e1, origin + a1 * e1 + e2, origin + a0 * e1 + e2])
        piece = partition._polygonal(shapely.intersection(b.geom, quad))
        if not piece.is_empty:
            out.append((piece, base + (1 if k < b.households - base * n else 0)))
    return out


def _entrances(buildings: list[Feature], ceiling: int, attrs: dict[str, dict]) -> list[Feature]:
    """Buildings above the ceiling cut into their entrances, so a small neighbourhood can be
    a few entrances of one building (code BUILDING#k for entrance k)."""
    out = []
    for b in buildings:
        slices = _entrance_slices(b, ceiling, attrs)
        if len(slices) == 1:
            out.append(b)
            continue
        out.extend(Feature(f"{b.code}#{k + 1}", piece, hh, b.code, b.name) for k, (piece, hh) in enumerate(slices))
    return out


def _entrance_lines(buildings: list[Feature], ceiling: int, attrs: dict[str, dict]):
    """The lines between the entrances `_entrances` cuts: boundaries may run along them."""
    lines = []
    for b in buildings:
        slices = _entrance_slices(b, ceiling, attrs)
        if len(slices) > 1:
            edges = shapely.union_all([shapely.boundary(p) for p, _ in slices])
            lines.append(shapely.difference(edges, shapely.buffer(b.geom.boundary, 0.01)))
    return shapely.union_all(lines) if lines else shapely.LineString()


def residential_area(ctx: Context):
    """What the small neighbourhoods of a grid tile: its part of every compound that holds
    households (non-residential land has no small neighbourhoods)."""
    pieces = [shapely.intersection(c.geom, ctx.outline) for c in ctx.compounds if (c.households or 0) > 0]
    if not pieces:
        return shapely.Polygon()
    area = shapely.union_all(pieces, grid_size=partition.NODE_GRID_M)
    # open by a few centimetres (mitred, so corners stay put): where a compound wall and the
    # grid's edge differ by rounding, the intersection has hair-thin arms that are not land
    w = 2 * partition.SLIVER_WIDTH_M
    return partition._polygonal(shapely.buffer(shapely.buffer(area, -w, join_style="mitre"), w, join_style="mitre"))


def _outline_for(ctx: Context, into: str):
    return residential_area(ctx) if into == "neighbourhood" else ctx.outline


def _split_by_compound(ctx: Context, band, seed, attrs=None):
    """Small neighbourhoods never cross a compound: each residential compound's part of the
    grid is split on its own, then all parts are noded together so they tile the grid's
    residential area exactly (neighbouring compounds share their walls vertex for vertex)."""
    atoms, notes = [], []
    area = residential_area(ctx)
    for comp in ctx.compounds:
        if (comp.households or 0) <= 0:
            continue
        piece = partition._polygonal(shapely.intersection(comp.geom, area))
        if piece.area < 1.0:
            continue
        inside = [b for b in ctx.buildings if b.compound == comp.code]
        total = sum(b.households for b in inside)
        if total == 0:
            atoms.append(partition.Atom(comp.code, "compound", 0, piece, comp.code))
            notes.append(f"compound {comp.code}: its part of the grid has no households; "
                         "kept as one small neighbourhood")
            continue
        inside = _entrances(inside, band[1], attrs or {})
        try:
            res = partition.split(piece, [], inside, [], band, seed=seed, tries=3)
        except partition.Infeasible:
            atoms.append(partition.Atom(comp.code, "compound", total, piece, comp.code))
            notes.append(f"compound {comp.code} holds {total} households: kept as one small neighbourhood")
            continue
        atoms.extend(partition.Atom(f"{comp.code}/{i}", "unit", p.households, p.geom, comp.code)
                     for i, p in enumerate(res.parts))
        notes.extend(f"compound {comp.code}: {n}" for n in res.notes)
    if not atoms:
        raise partition.Infeasible("it holds no residential compound to cut into small neighbourhoods")
    noded = partition._noded(area, atoms)
    return [(a.territory, a.households, a.compound) for a in noded], notes


def _replaced_children(conn, into: str, unit: dict) -> list[dict]:
    col = levels.PARENT_COLUMNS[unit["level"]]
    rows = conn.execute(
        f"SELECT unit_id, version, code FROM unit_version WHERE valid_to IS NULL AND level = %s AND {col} = %s "
        "ORDER BY code",
        [into, unit["unit_id"]],
    ).fetchall()
    return [{"unit_id": r[0], "version": r[1], "code": r[2]} for r in rows]


def _free_seqs(conn, level: str, prefix: str, width: int, taken_ok: set[str], n: int) -> list[str]:
    """`n` codes prefix+NNN not used by any unit (current or past) except those in taken_ok."""
    used = {r[0] for r in conn.execute(
        "SELECT DISTINCT code FROM unit_version WHERE level = %s AND code LIKE %s", [level, prefix + "%"]
    ).fetchall()} - taken_ok
    out, seq = [], 1
    while len(out) < n:
        code = f"{prefix}{seq:0{width}d}"
        if code not in used:
            out.append(code)
        seq += 1
        if seq >= 10**width:
            raise InvalidInput(f"no free {level} codes left under {prefix}")
    return out


def _name_parts(conn, unit: dict, into: str, parts: list, replaces: list[dict]) -> list[dict]:
    reusable = {r["code"] for r in replaces}
    if into == unit["level"]:
        order = sorted(range(len(parts)), key=lambda i: -parts[i][1])
        if into == "community":
            prefix, width = unit["code"][:9], 3
        else:
            prefix, width = unit["code"][:12], 3
        fresh = iter(_free_seqs(conn, into, prefix, width, set(), len(parts) - 1))
        code_of = {order[0]: unit["code"]}
        for i in order[1:]:
            code_of[i] = next(fresh)
        names = {i: f"{unit['name']}（{NUMERALS[k] if k < 10 else k + 1}）" for k, i in enumerate(order)}
    elif into == "grid":
        code_list = _free_seqs(conn, "grid", unit["code"], 3, reusable, len(parts))
        code_of = dict(enumerate(code_list))
        names = {i: f"{unit['name']}第{int(code_of[i][-3:])}网格" for i in range(len(parts))}
    else:  # neighbourhoods, per compound
        code_of, names = {}, {}
        by_comp: dict[str, list[int]] = {}
        for i, (_, _, comp) in enumerate(parts):
            by_comp.setdefault(comp, []).append(i)
        for comp, idx in by_comp.items():
            fresh = _free_seqs(conn, "neighbourhood", f"{comp}N", 3, reusable, len(idx))
            for i, code in zip(idx, fresh):
                code_of[i] = code
                names[i] = f"{unit['name']}{code[-4:]}邻里"
    return [{"seq": i + 1, "code": code_of[i], "name": names[i], "households": int(parts[i][1]),
             "geom_m": parts[i][0], "grp": 1} for i in range(len(parts))]


def _metrics(conn, ctx: Context, into: str, band, geoms_m: list, households: list[int]) -> dict:
    compounds = ctx.compounds if into != "neighbourhood" else []
    dwellings = None
    if into == "neighbourhood":
        # a small neighbourhood is a run of entrances: it may end between two entrances
        lines = _entrance_lines(ctx.buildings, band[1], _building_attrs(conn, ctx.unit["unit_id"]))
        dwellings = (ctx.buildings, lines)
    m = plan_quality.measure(geoms_m, _outline_for(ctx, into), band, compounds, ctx.buildings, ctx.roads,
                             households=np.array(households), dwellings=dwellings)
    if into == "neighbourhood":
        m["buildings_split"] = []  # counted as cuts through dwellings instead
    m["targets_missed"] = plan_quality.meets_targets(m)
    return m


# ---------------------------------------------------------------------------
# Storing and reading plans
# ---------------------------------------------------------------------------

def _to_wgs84(geoms_m: list, metric) -> list:
    geoms = crs.transform(np.array(geoms_m, dtype=object), metric, crs.WGS84)
    return [geometry.normalise(g, "grid", "planned unit") for g in geoms]


def _store_plan(conn, kind, level, parent, replaces, proposed, metric, metrics, notes, params, actor,
                groups=None) -> dict:
    with conn.transaction():
        plan_id = conn.execute(
            "INSERT INTO plan (kind, level, parent_id, params, metrics, notes, actor) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [kind, level, parent["unit_id"] if parent else None, json.dumps(params),
             json.dumps(metrics, default=_jsonable), json.dumps(notes, ensure_ascii=False), str(actor)],
        ).fetchone()[0]
        for r in replaces:
            conn.execute(
                "INSERT INTO plan_replaces (plan_id, grp, unit_id, version, code) VALUES (%s, %s, %s, %s, %s)",
                [plan_id, r.get("grp", 1), r["unit_id"], r["version"], r["code"]],
            )
        geoms = _to_wgs84([p["geom_m"] for p in proposed], metric) if metric is not None \
            else [p["geom"] for p in proposed]
        _write_units(conn, plan_id, 1, proposed, geoms)
        audit.record(conn, actor, "plan.draw", "plan", [plan_id],
                     before={"units": [{"id": r["unit_id"], "version": r["version"]} for r in replaces]},
                     detail={"kind": kind, "level": level, "parent_id": parent["unit_id"] if parent else None,
                             "parts": len(proposed)})
    return get_plan(conn, plan_id)


def _write_units(conn, plan_id: int, revision: int, proposed: list[dict], geoms: list) -> None:
    with conn.cursor().copy(
        "COPY plan_unit (plan_id, revision, grp, seq, code, name, households, population, geom, attributes) "
        "FROM STDIN"
    ) as copy:
        for p, g in zip(proposed, geoms):
            copy.write_row((plan_id, revision, p.get("grp", 1), p["seq"], p["code"], p["name"], p["households"],
                            p.get("population"),
                            shapely.to_wkb(shapely.set_srid(g, 4326), hex=True, include_srid=True),
                            json.dumps(p.get("attributes") or {}, ensure_ascii=False)))


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


_PLAN_COLUMNS = ("id", "kind", "status", "level", "parent_id", "revision", "params", "metrics", "notes",
                 "actor", "created_at", "updated_at", "closed_at", "change_id")


def get_plan(conn, plan_id: int) -> dict:
    row = conn.execute(f"SELECT {', '.join(_PLAN_COLUMNS)} FROM plan WHERE id = %s", [plan_id]).fetchone()
    if row is None:
        raise NotFound(f"no plan with id {plan_id}")
    plan = dict(zip(_PLAN_COLUMNS, row))
    plan["replaces"] = [
        {"grp": r[0], "unit_id": r[1], "version": r[2], "code": r[3]}
        for r in conn.execute(
            "SELECT grp, unit_id, version, code FROM plan_replaces WHERE plan_id = %s ORDER BY grp, code", [plan_id]
        ).fetchall()
    ]
    plan["units"] = [
        {"grp": r[0], "seq": r[1], "code": r[2], "name": r[3], "households": r[4]}
        for r in conn.execute(
            "SELECT grp, seq, code, name, households FROM plan_unit WHERE plan_id = %s AND revision = %s "
            "ORDER BY seq", [plan_id, plan["revision"]]
        ).fetchall()
    ]
    return plan


def list_plans(conn, status: str | None = None) -> list[dict]:
    if status and status not in ("draft", "committed", "discarded"):
        raise InvalidInput(f"unknown plan status {status!r}: use draft, committed or discarded")
    rows = conn.execute(
        "SELECT id, kind, status, level, parent_id, revision, created_at, "
        "(metrics->>'parts')::int, jsonb_array_length(coalesce(metrics->'targets_missed', '[]'::jsonb)) "
        "FROM plan WHERE %s::text IS NULL OR status = %s ORDER BY id DESC LIMIT 500",
        [status, status],
    ).fetchall()
    keys = ("id", "kind", "status", "level", "parent_id", "revision", "created_at", "parts", "targets_missed")
    return [dict(zip(keys, r)) for r in rows]


def plan_geojson(conn, plan_id: int, revision: int | None = None) -> str:
    plan = get_plan(conn, plan_id)
    rev = revision or plan["revision"]
    pp = plan["metrics"].get("polsby_popper") or []
    text = conn.execute(
        """
        SELECT json_build_object('type', 'FeatureCollection', 'plan', %s::int, 'revision', %s::int,
          'features', coalesce(json_agg(json_build_object(
            'type', 'Feature', 'id', u.seq,
            'geometry', ST_AsGeoJSON(u.geom, 9)::json,
            'properties', json_build_object('seq', u.seq, 'group', u.grp, 'code', u.code, 'name', u.name,
                'households', u.households, 'level', %s::text,
                'area_m2', round(ST_Area(u.geom::geography)::numeric, 1))) ORDER BY u.seq), '[]'::json))::text
        FROM plan_unit u WHERE u.plan_id = %s AND u.revision = %s
        """,
        [plan_id, rev, plan["level"], plan_id, rev],
    ).fetchone()[0]
    if pp:
        data = json.loads(text)
        for f in data["features"]:
            k = f["properties"]["seq"] - 1
            if 0 <= k < len(pp):
                f["properties"]["polsby_popper"] = pp[k]
        text = json.dumps(data, ensure_ascii=False)
    return text


def _plan_units(conn, plan_id: int, revision: int) -> list[dict]:
    rows = conn.execute(
        "SELECT grp, seq, code, name, households, population, attributes, ST_AsBinary(geom) FROM plan_unit "
        "WHERE plan_id = %s AND revision = %s ORDER BY seq", [plan_id, revision]
    ).fetchall()
    keys = ("grp", "seq", "code", "name", "households", "population", "attributes")
    return [dict(zip(keys, r[:7])) | {"geom": shapely.from_wkb(bytes(r[7]))} for r in rows]


def compare(conn, plan_id: int) -> dict:
    """The plan against the boundaries it replaces: households that change unit, and for each
    proposed unit where its households come from."""
    plan = get_plan(conn, plan_id)
    units = _plan_units(conn, plan_id, plan["revision"])
    old_ids = [r["unit_id"] for r in plan["replaces"]]
    old_code = {r["unit_id"]: r["code"] for r in plan["replaces"]}
    col = levels.PARENT_COLUMNS.get(plan["level"])
    geoms = np.array([u["geom"] for u in units], dtype=object)
    tree = shapely.STRtree(geoms)
    rows = []
    if old_ids and col:
        rows = conn.execute(
            f"SELECT {col}, households, ST_AsBinary(ST_PointOnSurface(geom)) FROM unit_version "
            f"WHERE valid_to IS NULL AND level = 'building' AND {col} = ANY(%s)", [old_ids]
        ).fetchall()
    if not rows and old_ids:  # levels without buildings beneath by column: whole units by overlap
        rows = conn.execute(
            "SELECT unit_id, households, ST_AsBinary(ST_PointOnSurface(geom)) FROM unit_version "
            "WHERE valid_to IS NULL AND unit_id = ANY(%s)", [old_ids]
        ).fetchall()
    flows: dict[tuple[int, int], int] = {}
    for old, hh, wkb in rows:
        hit = tree.query(shapely.from_wkb(bytes(wkb)), predicate="intersects")
        new = int(hit[0]) if len(hit) else -1
        flows[(new, old)] = flows.get((new, old), 0) + int(hh or 0)
    per_unit, moved = [], 0
    pp = plan["metrics"].get("polsby_popper") or []
    for k, u in enumerate(units):
        sources = {old_code.get(o, str(o)): hh for (n, o), hh in flows.items() if n == k}
        kept = max(sources.values()) if sources else 0
        total = sum(sources.values())
        moved += total - kept
        per_unit.append({"seq": u["seq"], "code": u["code"], "households": u["households"],
                         "polsby_popper": pp[k] if k < len(pp) else None,
                         "from": dict(sorted(sources.items(), key=lambda kv: -kv[1]))})
    outside = sum(hh for (n, _), hh in flows.items() if n < 0)
    return {"plan": plan_id, "revision": plan["revision"], "households_moved": moved,
            "households_outside_plan": outside, "replaced": [r["code"] for r in plan["replaces"]],
            "units": per_unit, "metrics": plan["metrics"]}


# ---------------------------------------------------------------------------
# Editing, committing, discarding
# ---------------------------------------------------------------------------

def _lock_draft(conn, plan_id: int, expected_revision: int | None) -> dict:
    row = conn.execute("SELECT status, revision FROM plan WHERE id = %s FOR UPDATE", [plan_id]).fetchone()
    if row is None:
        raise NotFound(f"no plan with id {plan_id}")
    status, revision = row
    if status != "draft":
        raise Conflict(f"plan {plan_id} is {status}: only a draft plan can change")
    if expected_revision is not None and expected_revision != revision:
        raise Conflict(
            f"plan {plan_id} is at revision {revision}, but the edit was made on revision "
            f"{expected_revision}: reload the plan and edit again"
        )
    return get_plan(conn, plan_id)


def edit_plan(conn, plan_id: int, features: list[dict], *, expected_revision: int | None,
              crs_text: str | None = None, actor: str | Identity = "gridmap") -> dict:
    """A new revision of the plan's units with the uploaded polygons (matched by code)."""
    if not isinstance(features, list) or not features:
        raise InvalidInput("upload a GeoJSON FeatureCollection with at least one feature")
    source = crs.parse(crs_text or "wgs84")
    with conn.transaction():
        plan = _lock_draft(conn, plan_id, expected_revision)
        units = _plan_units(conn, plan_id, plan["revision"])
        by_code = {u["code"]: u for u in units}
        for i, feat in enumerate(features):
            label = f"feature {i + 1}"
            if not isinstance(feat, dict) or not isinstance(feat.get("properties"), dict):
                raise InvalidInput(f"{label}: not a GeoJSON Feature with properties")
            code = str(feat["properties"].get("code") or "").strip()
            if code not in by_code:
                raise InvalidInput(f"{label}: code {code!r} is not a unit of plan {plan_id} "
                                   f"(its codes: {', '.join(sorted(by_code)[:5])}...)")
            try:
                geom = shapely.geometry.shape(feat.get("geometry"))
            except Exception:
                raise InvalidInput(f"{label} ({code}): geometry is not valid GeoJSON") from None
            geom = crs.to_wgs84(np.array([geom], dtype=object), source)[0]
            geometry.check_coordinates(np.array([geom], dtype=object), [f"{label} ({code})"])
            by_code[code]["geom"] = geometry.normalise(geom, plan["level"], f"{label} ({code})")
            if "name" in feat["properties"] and feat["properties"]["name"]:
                by_code[code]["name"] = str(feat["properties"]["name"])[:200]
        revision = plan["revision"] + 1
        metrics = _remeasure(conn, plan, units)
        for u, hh in zip(units, metrics["households"]):
            u["households"] = int(hh)
        _write_units(conn, plan_id, revision, units, [u["geom"] for u in units])
        conn.execute(
            "UPDATE plan SET revision = %s, metrics = %s, updated_at = now(), actor = %s WHERE id = %s",
            [revision, json.dumps(metrics, default=_jsonable), str(actor), plan_id],
        )
        audit.record(conn, actor, "plan.edit", "plan", [plan_id], before={"revision": plan["revision"]},
                     after={"revision": revision}, detail={"codes": [str(f["properties"].get("code")) for f in features]})
    return get_plan(conn, plan_id)


def _remeasure(conn, plan: dict, units: list[dict]) -> dict:
    """Metrics of edited units, households counted again from the buildings."""
    parent_id = plan["parent_id"]
    if parent_id is not None and plan["kind"] != "merge":
        ctx = load_context(conn, parent_id)
        geoms_m = list(crs.transform(np.array([u["geom"] for u in units], dtype=object), crs.WGS84, ctx.metric))
        band = tuple(plan["params"].get("band") or levels.HOUSEHOLD_BANDS.get(plan["level"], (1, 10**9)))
        compounds = ctx.compounds if plan["level"] != "neighbourhood" else []
        hh = plan_quality.households_of(np.array(geoms_m, dtype=object), compounds, ctx.buildings)
        if plan["level"] == "community":
            grid_rows = _with_chain(conn, "grid", "community_id", parent_id)
            grids = _features(grid_rows, ctx.metric)
            hh = plan_quality.households_of(np.array(geoms_m, dtype=object), grids, [])
        return _metrics(conn, ctx, plan["level"], band, geoms_m, list(hh))
    metrics = dict(plan["metrics"])
    metrics["households"] = [u["households"] for u in units]
    return metrics


def _check_tiling(conn, plan: dict, units: list[dict]) -> None:
    """Proposed units must cover what they replace (or the parent they redraw; for small
    neighbourhoods, the parent grid's residential area), no gaps, no overlaps."""
    geoms = np.array([u["geom"] for u in units], dtype=object)
    if plan["parent_id"] is not None and plan["kind"] != "merge":
        ctx = load_context(conn, plan["parent_id"])
        metric, target_m = ctx.metric, _outline_for(ctx, plan["level"])
    else:
        rows = conn.execute(
            "SELECT ST_AsBinary(geom) FROM unit_version WHERE unit_id = ANY(%s) AND valid_to IS NULL",
            [[r["unit_id"] for r in plan["replaces"]]],
        ).fetchall()
        target = shapely.union_all([shapely.from_wkb(bytes(r[0])) for r in rows])
        lon, lat = target.centroid.coords[0]
        metric = crs.local_metric(lon, lat)
        target_m = crs.transform(np.array([target], dtype=object), crs.WGS84, metric)[0]
    parts_m = crs.transform(geoms, crs.WGS84, metric)
    union = shapely.union_all(parts_m)
    overlap = float(shapely.area(parts_m).sum() - union.area)
    gap = float(shapely.difference(target_m, union).area)
    spill = float(shapely.difference(union, target_m).area)
    problems = []
    if gap > TILING_TOLERANCE_M2:
        where = shapely.difference(target_m, union).representative_point()
        lon_, lat_ = crs.transform(np.array([where], dtype=object), metric, crs.WGS84)[0].coords[0]
        problems.append(f"leaves a gap of {gap:,.1f} m² (near {lon_:.6f}, {lat_:.6f})")
    if overlap > TILING_TOLERANCE_M2:
        problems.append(f"has units overlapping by {overlap:,.1f} m²")
    if spill > TILING_TOLERANCE_M2:
        problems.append(f"reaches {spill:,.1f} m² beyond what it replaces")
    if problems:
        raise InvalidInput(f"plan {plan['id']} " + " and ".join(problems) + ": edit the plan and commit again")


def commit_plan(conn: psycopg.Connection, plan_id: int, *, expected_revision: int | None = None,
                actor: str | Identity = "gridmap") -> dict:
    """Re-validate and apply the plan in one transaction; Conflict if the units changed since.
    The commit is recorded in the audit log in that transaction."""
    with conn.transaction():
        plan = _lock_draft(conn, plan_id, expected_revision)
        ids = [r["unit_id"] for r in plan["replaces"]]
        if plan["parent_id"] is not None:
            ids_to_check = ids + [plan["parent_id"]]
        else:
            ids_to_check = ids
        current = {
            r[0]: r[1] for r in conn.execute(
                "SELECT unit_id, version FROM unit_version WHERE unit_id = ANY(%s) AND valid_to IS NULL FOR UPDATE",
                [ids_to_check],
            ).fetchall()
        }
        for r in plan["replaces"]:
            now = current.get(r["unit_id"])
            if now != r["version"]:
                state = "is retired" if now is None else f"is at version {now}"
                raise Conflict(
                    f"{plan['level']} {r['code']} was at version {r['version']} when plan {plan_id} was drawn "
                    f"and {state} now: draw the plan again"
                )
        if plan["parent_id"] is not None and plan["kind"] != "merge":
            want = plan["params"].get("parent_version")
            if want is not None and current.get(plan["parent_id"]) != want:
                raise Conflict(f"the unit plan {plan_id} redraws has changed since it was drawn: draw the plan again")
            # units added under the parent since the plan was drawn would be left behind
            parent = _current(conn, plan["parent_id"])
            stored = set(ids)
            if plan["level"] != parent["level"]:
                stored = {r["unit_id"] for r in _replaced_children(conn, plan["level"], parent)}
            if stored - set(ids):
                raise Conflict(f"{len(stored - set(ids))} {plan['level']} unit(s) were added since plan {plan_id} "
                               "was drawn: draw the plan again")
        units = _plan_units(conn, plan_id, plan["revision"])
        if plan["kind"] != "merge":
            _check_tiling(conn, plan, units)
        change_ids, created = [], []
        for grp in sorted({u["grp"] for u in units}):
            old = [r["unit_id"] for r in plan["replaces"] if r["grp"] == grp]
            new = [store.UnitInput(level=plan["level"], code=u["code"], name=u["name"], geom=u["geom"],
                                   households=u["households"], population=u["population"],
                                   attributes=u["attributes"] or {}, label=f"{plan['level']} {u['code']} (plan {plan_id})")
                   for u in units if u["grp"] == grp]
            if plan["kind"] == "merge":
                _check_tiling(conn, plan | {"replaces": [r for r in plan["replaces"] if r["grp"] == grp]},
                              [u for u in units if u["grp"] == grp])
            note = f"plan {plan_id}"
            if old:
                summary = store.replace_units(conn, old, new, kind=plan["kind"], actor=actor, note=note)
            else:
                summary = store.write_units(conn, plan["level"], new, kind="split", actor=actor, note=note)
            change_ids.append(summary.change_id)
            created.extend(summary.created)
        conn.execute(
            "UPDATE plan SET status = 'committed', closed_at = now(), change_id = %s, actor = %s WHERE id = %s",
            [change_ids[-1] if change_ids else None, str(actor), plan_id],
        )
        audit.record(conn, actor, "plan.commit", "plan", [plan_id], change_id=change_ids[-1] if change_ids else None,
                     before={"status": "draft", "revision": plan["revision"],
                             "units": [{"id": r["unit_id"], "code": r["code"], "version": r["version"]}
                                       for r in plan["replaces"]]},
                     after={"status": "committed", "units": created, "change_ids": change_ids},
                     detail={"kind": plan["kind"], "level": plan["level"]})
    return get_plan(conn, plan_id) | {"change_ids": change_ids}


def discard_plan(conn, plan_id: int, *, actor: str | Identity = "gridmap") -> dict:
    with conn.transaction():
        plan = _lock_draft(conn, plan_id, None)
        conn.execute("UPDATE plan SET status = 'discarded', closed_at = now(), actor = %s WHERE id = %s",
                     [str(actor), plan_id])
        audit.record(conn, actor, "plan.discard", "plan", [plan_id], before={"status": "draft"},
                     after={"status": "discarded"}, detail={"revision": plan["revision"]})
    return get_plan(conn, plan_id)


def draw_merge(conn, level: str, *, floor: int | None = None, ceiling: int | None = None,
               within: int | None = None, actor: str | Identity = "gridmap") -> dict:
    """Store a plan merging every unit below the floor into its best neighbour (geo/merge.py)."""
    from geo import merge

    level = levels.parse_level(level)
    groups, notes = merge.propose(conn, level, floor, ceiling, within)
    if not groups:
        raise InvalidInput(
            f"no {level} below the floor can be merged" + (f": {notes[0]}" if notes else " (none is below it)")
        )
    replaces, proposed, summary = [], [], []
    for g, grp in enumerate(groups, start=1):
        small, into = grp["small"], grp["into"]
        for r in (small, into):
            replaces.append({"grp": g, "unit_id": r["unit_id"], "version": r["version"], "code": r["code"]})
        geom = merge.merged_geometry(small["geom"], into["geom"], level, f"{level} {into['code']} + {small['code']}")
        pop = (small["population"] or 0) + (into["population"] or 0) if (small["population"] or into["population"]) else None
        proposed.append({"grp": g, "seq": g, "code": into["code"], "name": into["name"],
                         "households": grp["households"], "population": pop,
                         "attributes": into["attributes"] or {}, "geom": geom})
        lon, lat = geom.centroid.coords[0]
        metric = crs.local_metric(lon, lat)
        g_m = crs.transform(np.array([geom], dtype=object), crs.WGS84, metric)[0]
        summary.append({"group": g, "small": small["code"], "into": into["code"],
                        "households": grp["households"], "households_moved": int(small["households"] or 0),
                        "shared_boundary_m": grp["shared_m"],
                        "polsby_popper": round(float(4 * np.pi * g_m.area / g_m.length ** 2), 4)})
    metrics = {"parts": len(proposed), "households": [p["households"] for p in proposed],
               "households_moved": sum(s["households_moved"] for s in summary), "merges": summary,
               "polsby_popper": [s["polsby_popper"] for s in summary], "targets_missed": []}
    floor_used = floor if floor is not None else merge.DEFAULT_FLOOR[level]
    params = {"floor": floor_used, "ceiling": ceiling, "within": within}
    return _store_plan(conn, "merge", level, None, replaces, proposed, None, metrics, notes, params, actor)
