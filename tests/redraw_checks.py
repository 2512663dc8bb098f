"""Invariants of the stored units, incidents and workers that every redraw must keep
(issue 13), for tests/faults/test_redraw_fuzz.py. Each check reads the state (over HTTP
where the API is what is checked, in SQL otherwise) and returns the problems it found,
as `Problem`s: a short signature that names the kind of problem (so a walk reports each
kind once) and a message with an example.

1. `validation`: GET /validate finds nothing but units outside their household band.
2. `chains`: every current unit's code agrees with its chain of parents
   (geo/units/codes.py `implied_parent` against the codes of its parent ids), and the chain
   agrees with itself (a unit's parent carries the same street, community, ... ids).
3. `export_roundtrip`: every level exported (geo/usecases/units.py `export`, what `gridmap
   export` runs) and loaded level by level into an empty migrated database (`load_file`, what
   `gridmap load` runs) gives the same units: codes, names, households, population,
   attributes, parents' codes and geometry (within 1e-9°).
4. `incidents`: every open incident is assigned to current units that hold its point,
   and to no unit of a level where a current unit of that level holds it.
5. `workers`: every active worker is attached to a current unit of the level of their role.
6. `stats`: GET /stats counts every stored incident once: per level, the incidents it counts
   (in total and by state) are those stored with a unit of that level, and the streets' totals
   plus the unassigned ones are all incidents. (Per unit it may roll retired units up into
   their successors, so units are not compared one by one.)
7. (no answer is a 5xx: the walk itself checks every answer.)
8. `plan_record`: a committed plan says so, and what it proposed is what is now current;
   `plan_compare`: its comparison (GET /plans/{id}/compare) stays what it was at commit.
9. `merge_refusals`: a merge that leaves a unit alone for having "no neighbour" within the
   ceiling is right: no sibling shares a boundary (to 1 cm) with it and stays within the ceiling.

The module ends with the walk's own geometry (`Warp`, `damage`): how it moves a boundary point
without breaking coverage itself, so that what the checks find after a change is the app's doing.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import shapely

from geo.db import units as unit_reads
from geo.db.rows import dicts
from geo.errors import GridmapError
from geo.incidents.dispatch import ROLES
from geo.incidents.lifecycle import OPEN_STATES
from geo.units import codes
from geo.units.levels import CHAIN_COLUMNS, LEVELS, PARENT_COLUMNS, PARENTS
from geo.usecases import units as unit_work

TOLERATED_PROBLEMS = {"out_of_band"}  # a band is a planning target, not an invariant
GEOMETRY_TOLERANCE_DEG = 1e-9  # exported and loaded again: the same vertices (about 0.1 mm)
POINT_TOLERANCE_DEG = 1e-7  # about 1 cm: the locator's own tolerance for hairline gaps
EXAMPLES = 3  # examples kept per kind of problem


@dataclass(frozen=True)
class Problem:
    """One kind of problem a check found."""

    invariant: str
    signature: str  # the kind of problem, e.g. "grid code vs community"
    message: str  # how many, and examples


def _grouped(invariant: str, found: dict[str, list[str]]) -> list[Problem]:
    """One Problem per signature: how many times it was seen and a few examples."""
    return [Problem(invariant, sig, f"{len(msgs)}x: " + "; ".join(msgs[:EXAMPLES])
                    + (" ..." if len(msgs) > EXAMPLES else ""))
            for sig, msgs in sorted(found.items())]


# ---- 1. GET /validate ---------------------------------------------------------------------------

def validation(client: httpx.Client) -> list[Problem]:
    answer = client.get("/validate")
    if answer.status_code != 200:
        return [Problem("validate", f"answer {answer.status_code}", answer.text[:500])]
    found: dict[str, list[str]] = defaultdict(list)
    for feature in answer.json()["features"]:
        props = feature["properties"]
        if props["problem"] in TOLERATED_PROBLEMS:
            continue
        found[f"{props['problem']} ({props.get('level')})"].append(props.get("message", ""))
    return _grouped("validate", found)


# ---- 2. codes against chains --------------------------------------------------------------------

def _current_units(conn: psycopg.Connection) -> dict[int, dict[str, Any]]:
    rows = dicts(conn, f"SELECT unit_id, level, code, {', '.join(CHAIN_COLUMNS)} FROM unit_version "
                       "WHERE valid_to IS NULL ORDER BY unit_id")
    return {r["unit_id"]: r for r in rows}


def chains(conn: psycopg.Connection) -> list[Problem]:
    by_id = _current_units(conn)
    found: dict[str, list[str]] = defaultdict(list)
    for r in by_id.values():
        label = f"{r['level']} {r['code']} (id {r['unit_id']})"
        for parent_level in PARENTS[r["level"]]:
            if r[PARENT_COLUMNS[parent_level]] is None:
                found[f"{r['level']} without a {parent_level}"].append(label)
        # the code, and the codes it implies up the chain, against the parents it has
        todo = [(r["level"], r["code"])]
        while todo:
            level, code = todo.pop()
            for parent_level in PARENTS[level]:
                implied = codes.implied_parent(level, code, parent_level)
                if implied is None:
                    continue
                parent = by_id.get(r[PARENT_COLUMNS[parent_level]] or -1)
                if parent is not None and parent["code"] != implied:
                    found[f"{r['level']} code vs its {parent_level}"].append(
                        f"{label} says {parent_level} {implied}, lies in {parent_level} {parent['code']}")
                todo.append((parent_level, implied))
        # the chain against itself: every parent is current, of its level, with the same chain
        for parent_level, col in PARENT_COLUMNS.items():
            if r[col] is None or col == PARENT_COLUMNS.get(r["level"]):
                continue
            parent = by_id.get(r[col])
            if parent is None:
                found[f"{r['level']}'s {parent_level} not current"].append(f"{label}: {col}={r[col]}")
                continue
            if parent["level"] != parent_level:
                found[f"{r['level']}'s {col} is not a {parent_level}"].append(f"{label}: a {parent['level']}")
            for c in CHAIN_COLUMNS:
                if parent[c] is not None and parent[c] != r[c]:
                    found[f"{r['level']}'s {c} vs its {parent_level}'s"].append(
                        f"{label}: {c}={r[c]}, its {parent_level} {parent['code']} has {c}={parent[c]}")
    return _grouped("chain", found)


# ---- 3. export and load again -------------------------------------------------------------------

def _compare_level(level: str, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    old = {r["code"]: r for r in before}
    new = {r["code"]: r for r in after}
    for code in sorted(old.keys() - new.keys()):
        found[f"{level} missing after load"].append(code)
    for code in sorted(new.keys() - old.keys()):
        found[f"{level} appeared after load"].append(code)
    both = sorted(old.keys() & new.keys())
    chain_keys = [f"{c[:-3]}_code" for c in CHAIN_COLUMNS]
    for code in both:
        a, b = old[code], new[code]
        for key in ("name", "households", "population", "attributes"):
            if a[key] != b[key]:
                found[f"{level} {key} differs after load"].append(f"{code}: {a[key]!r} -> {b[key]!r}")
        for key in chain_keys:
            if a.get(key) != b.get(key):
                found[f"{level} {key} differs after load"].append(f"{code}: {a.get(key)} -> {b.get(key)}")
    if both:
        dist = shapely.hausdorff_distance(np.array([old[c]["geom"] for c in both], dtype=object),
                                          np.array([new[c]["geom"] for c in both], dtype=object))
        for code, d in zip(both, dist, strict=True):
            if not d <= GEOMETRY_TOLERANCE_DEG:
                found[f"{level} geometry differs after load"].append(f"{code}: moved {d:.2e} deg")
    return found


def export_roundtrip(conn: psycopg.Connection, empty_url: str, folder: Path) -> list[Problem]:
    """Export every level, load the files level by level into `empty_url`, compare."""
    found: dict[str, list[str]] = defaultdict(list)
    before = {lv: unit_reads.units_rows(conn, lv) for lv in LEVELS}
    files = {}
    for lv in LEVELS:
        if not before[lv]:
            continue
        try:
            files[lv], _ = unit_work.export(conn, lv, "gpkg", folder / f"{lv}.gpkg")
        except GridmapError as exc:
            found[f"export of {lv} refused"].append(str(exc)[:300])
    loaded = []
    for lv, path in files.items():
        try:
            unit_work.load_file(path, lv, url=empty_url)
        except GridmapError as exc:
            found[f"load of exported {lv} refused"].append(str(exc)[:400])
            break  # the levels below need this one: they are not compared
        loaded.append(lv)
    with psycopg.connect(empty_url) as conn_loaded:
        for lv in loaded:
            for sig, msgs in _compare_level(lv, before[lv], unit_reads.units_rows(conn_loaded, lv)).items():
                found[sig].extend(msgs)
    return _grouped("export", found)


# ---- 4. open incidents in the units holding them ------------------------------------------------

_INCIDENT_UNITS = ", ".join(f"('{lv}', i.{lv}_id)" for lv in LEVELS)


def incidents(conn: psycopg.Connection, only: int | None = None) -> list[Problem]:
    """Open incidents (or the one incident `only`, in any state) against the current units."""
    which = "i.id = %(only)s" if only is not None else "i.state = ANY(%(open)s)"
    params = {"open": list(OPEN_STATES), "only": only, "tol": POINT_TOLERANCE_DEG}
    found: dict[str, list[str]] = defaultdict(list)
    assigned = dicts(conn, f"""
        SELECT i.id, i.state, c.lv, c.uid, v.unit_id IS NOT NULL AS is_current, v.code,
               coalesce(ST_DWithin(v.geom, i.geom, %(tol)s), false) AS holds
        FROM incident i CROSS JOIN LATERAL (VALUES {_INCIDENT_UNITS}) AS c(lv, uid)
        LEFT JOIN unit_version v ON v.unit_id = c.uid AND v.valid_to IS NULL
        WHERE {which} AND c.uid IS NOT NULL AND NOT (v.unit_id IS NOT NULL AND ST_DWithin(v.geom, i.geom, %(tol)s))
        ORDER BY i.id, c.lv""", params)
    for r in assigned:
        if not r["is_current"]:
            found[f"{r['state']} incident's {r['lv']} is retired"].append(
                f"incident {r['id']}: {r['lv']}_id={r['uid']}")
        else:
            found[f"{r['state']} incident's {r['lv']} does not hold it"].append(
                f"incident {r['id']}: {r['lv']} {r['code']}")
    missed = dicts(conn, f"""
        SELECT i.id, i.state, c.lv, v.unit_id, v.code
        FROM incident i CROSS JOIN LATERAL (VALUES {_INCIDENT_UNITS}) AS c(lv, uid)
        JOIN unit_version v ON v.valid_to IS NULL AND v.level = c.lv AND ST_Contains(v.geom, i.geom)
             AND NOT ST_DWithin(ST_Boundary(v.geom), i.geom, %(tol)s)
        WHERE {which} AND c.uid IS NULL
        ORDER BY i.id, c.lv""", params)
    for r in missed:
        found[f"{r['state']} incident without the {r['lv']} holding it"].append(
            f"incident {r['id']}: inside {r['lv']} {r['code']} (id {r['unit_id']})")
    flags = dicts(conn, f"""
        SELECT i.id, i.unassigned FROM incident i
        WHERE {which} AND i.unassigned <> (i.street_id IS NULL AND i.community_id IS NULL AND i.grid_id IS NULL)
        ORDER BY i.id""", params)
    for r in flags:
        found["incident's unassigned flag vs its units"].append(f"incident {r['id']}: unassigned={r['unassigned']}")
    return _grouped("incident", found)


# ---- 5. workers on current units ----------------------------------------------------------------

def workers(conn: psycopg.Connection) -> list[Problem]:
    found: dict[str, list[str]] = defaultdict(list)
    rows = dicts(conn, """
        SELECT w.id, w.role, w.unit_id, v.level, v.code,
               (SELECT max(o.code) FROM unit_version o WHERE o.unit_id = w.unit_id) AS old_code
        FROM worker w LEFT JOIN unit_version v ON v.unit_id = w.unit_id AND v.valid_to IS NULL
        WHERE w.active ORDER BY w.id""")
    for r in rows:
        if r["level"] is None:
            found[f"active {r['role']} on a retired unit"].append(
                f"worker {r['id']} on unit {r['unit_id']} ({r['old_code']})")
        elif r["level"] != ROLES[r["role"]]:
            found[f"active {r['role']} on a {r['level']}"].append(f"worker {r['id']} on {r['code']}")
    return _grouped("worker", found)


# ---- 6. /stats against the incidents stored -----------------------------------------------------

def stats(client: httpx.Client, conn: psycopg.Connection) -> list[Problem]:
    span = dicts(conn, "SELECT min(reported_at) AS lo, max(reported_at) AS hi, count(*) AS n FROM incident")[0]
    if not span["n"]:
        return []
    start, end = span["lo"] - timedelta(hours=1), span["hi"] + timedelta(hours=1)
    found: dict[str, list[str]] = defaultdict(list)
    stored_unassigned = dicts(conn, "SELECT count(*) AS n FROM incident WHERE unassigned")[0]["n"]
    for level in ("street", "community", "grid", "compound", "neighbourhood"):
        answer = client.get("/stats", params={"level": level, "from": start.isoformat(), "to": end.isoformat()})
        if answer.status_code != 200:
            found[f"/stats?level={level} answers {answer.status_code}"].append(answer.text[:300])
            continue
        body = answer.json()
        col = PARENT_COLUMNS[level]
        stored = dicts(conn, f"SELECT count(*) AS n FROM incident WHERE {col} IS NOT NULL")[0]["n"]
        counted = sum(u["total"] for u in body["units"])
        if counted != stored:
            found[f"/stats {level} total vs stored"].append(f"{counted} counted, {stored} stored with a {level}")
        by_state: dict[str, int] = defaultdict(int)
        for u in body["units"]:
            for state, n in u["by_state"].items():
                by_state[state] += n
        stored_states = {r["state"]: r["n"] for r in dicts(
            conn, f"SELECT state, count(*) AS n FROM incident WHERE {col} IS NOT NULL GROUP BY 1")}
        if dict(by_state) != stored_states:
            found[f"/stats {level} by state vs stored"].append(f"{dict(sorted(by_state.items()))} counted, "
                                                              f"{dict(sorted(stored_states.items()))} stored")
        if body["unassigned"] != stored_unassigned:
            found["/stats unassigned vs stored"].append(f"{body['unassigned']} counted, {stored_unassigned} stored")
        if level == "street" and counted + body["unassigned"] != span["n"]:
            found["/stats street totals + unassigned vs all incidents"].append(
                f"{counted} + {body['unassigned']} counted, {span['n']} stored")
    return _grouped("stats", found)


# ---- 8. a committed plan's record ---------------------------------------------------------------

def plan_record(client: httpx.Client, conn: psycopg.Connection, plan_id: int, revision: int) -> list[Problem]:
    """Right after a commit: the plan says committed at that revision, its replaced units are
    retired, and each proposed unit is current with the plan's code, name, households, shape."""
    found: dict[str, list[str]] = defaultdict(list)
    plan = client.get(f"/plans/{plan_id}").json()
    if plan.get("status") != "committed":
        found["committed plan not marked committed"].append(f"plan {plan_id}: {plan.get('status')}")
    if plan.get("revision") != revision:
        found["committed plan's revision"].append(f"plan {plan_id}: committed {revision}, says {plan.get('revision')}")
    if plan.get("change_id") is None:
        found["committed plan has no change id"].append(f"plan {plan_id}")
    retired = [r["unit_id"] for r in plan.get("replaces", [])]
    still = dicts(conn, "SELECT unit_id, code FROM unit_version WHERE unit_id = ANY(%s) AND valid_to IS NULL",
                  [retired])
    for r in still:
        found["unit replaced by a committed plan still current"].append(f"plan {plan_id}: {r['code']}")
    proposed = json.loads(client.get(f"/plans/{plan_id}/units", params={"revision": revision}).text)["features"]
    for f in proposed:
        p = f["properties"]
        rows = dicts(conn, "SELECT unit_id, name, households, ST_AsBinary(geom) AS wkb FROM unit_version "
                           "WHERE level = %s AND code = %s AND valid_to IS NULL", [p["level"], p["code"]])
        if not rows:
            found["unit of a committed plan not current"].append(f"plan {plan_id}: {p['level']} {p['code']}")
            continue
        row = rows[0]
        if (row["name"], row["households"]) != (p["name"], p["households"]):
            found["committed unit's name or households vs the plan"].append(
                f"plan {plan_id}: {p['code']} is {row['name']!r}/{row['households']}, "
                f"plan says {p['name']!r}/{p['households']}")
        d = shapely.hausdorff_distance(shapely.from_wkb(bytes(row["wkb"])), shapely.geometry.shape(f["geometry"]))
        if not d <= GEOMETRY_TOLERANCE_DEG:
            found["committed unit's geometry vs the plan"].append(f"plan {plan_id}: {p['code']} moved {d:.2e} deg")
    return _grouped("plan", found)


COMPARED = ("households_moved", "households_outside_plan", "replaced", "units")  # a plan's record


def compared(answer: dict[str, Any]) -> dict[str, Any]:
    """The figures of GET /plans/{id}/compare that are the plan's record."""
    return {k: answer.get(k) for k in COMPARED}


def plan_compare(plan_id: int, at_commit: dict[str, Any], now: dict[str, Any], when: str) -> list[Problem]:
    """The comparison of a committed plan against the one taken just before it was committed."""
    changed = [k for k in COMPARED if at_commit.get(k) != now.get(k)]
    if not changed:
        return []
    detail = "; ".join(f"{k}: {str(at_commit.get(k))[:120]} -> {str(now.get(k))[:120]}" for k in changed)
    return [Problem("plan", f"compare of a committed plan changes {when}", f"plan {plan_id}: {detail}")]


_NO_NEIGHBOUR = re.compile(r"(\w+) (\S+) \((\d+) households\) has no neighbour in the same (\w+) "
                           r"that keeps a merge within (\d+) households")


def merge_refusals(conn: psycopg.Connection, messages: list[str], taken: set[str]) -> list[Problem]:
    """Units a merge left alone for want of a neighbour (in its notes or its 422), against the
    siblings sharing at least 1 m of boundary (to 1 cm) that keep the merge within the ceiling
    and are not `taken` by another merge of the plan."""
    found: dict[str, list[str]] = defaultdict(list)
    for text in messages:
        for level, code, households, parent, ceiling in _NO_NEIGHBOUR.findall(text):
            col = PARENT_COLUMNS.get(parent)
            if col is None:
                continue
            rows = dicts(conn, f"""
                SELECT n.code, n.households, ST_Length(ST_Intersection(ST_Boundary(s.geom),
                       ST_Buffer(n.geom, %(tol)s))::geography) AS shared_m
                FROM unit_version s JOIN unit_version n ON n.valid_to IS NULL AND n.level = s.level
                     AND n.{col} = s.{col} AND n.unit_id <> s.unit_id AND ST_DWithin(n.geom, s.geom, %(tol)s)
                WHERE s.valid_to IS NULL AND s.level = %(level)s AND s.code = %(code)s
                ORDER BY n.code""", {"tol": POINT_TOLERANCE_DEG, "level": level, "code": code})
            fits = [f"{r['code']} ({r['households']} households, {r['shared_m']:.0f} m shared)" for r in rows
                    if r["shared_m"] >= 1 and r["code"] not in taken
                    and int(households) + (r["households"] or 0) <= int(ceiling)]
            if fits:
                found[f"{level} merge finds no neighbour where one fits"].append(
                    f"{level} {code} ({households} households) left alone, but {', '.join(fits)} "
                    f"would keep a merge within {ceiling}")
    return _grouped("merge", found)


# ---- the walk's own geometry: the map bent around one point ------------------------------------
# A walk that moved a point in one unit only would open gaps itself, and so would one that moved
# a vertex in every unit that has it: the sample's edges run along each other with different
# vertices. So the walk bends the map: every boundary within WARP_M of a point is moved by a
# smooth bump (the point by 5-40 cm, nothing at WARP_M), its edges there cut into pieces of
# STEP_M first, in every unit (all levels but buildings). Boundaries that ran together still do
# (to under a millimetre), and `damage` measures what is left before the walk uploads anything.

TOUCH_DEG = 2e-8  # a boundary this close to a point passes through it (the sample's edges meet to ~5e-9)
NUDGE_M = (0.05, 0.4)  # how far the point moves: below the store's 0.5 m containment tolerance
WARP_M = 3.0  # how far around it boundaries bend
STEP_M = 0.25  # edges there are cut into pieces this long before they bend
MAX_DAMAGE_M2 = 0.01  # the most a move may add to any overlap, gap or overhang near it
M_PER_DEG = 111_320.0


def metres(deg: float, lat: float) -> float:
    """A short distance in degrees near latitude `lat`, in metres (the smaller, east-west scale:
    never more than the distance is)."""
    return float(deg * M_PER_DEG * np.cos(np.radians(lat)))


@dataclass(frozen=True)
class Warp:
    """A smooth move of the plane: `v` by `d` (lon, lat degrees), nothing beyond WARP_M of `v`."""

    v: tuple[float, float]
    d: tuple[float, float]

    @property
    def kx(self) -> float:
        return M_PER_DEG * float(np.cos(np.radians(self.v[1])))

    def disc(self) -> Any:
        """The area that moves, in degrees (an ellipse)."""
        circle = shapely.Point(0, 0).buffer(WARP_M, quad_segs=32)
        return shapely.transform(circle, lambda xy: xy / [self.kx, M_PER_DEG] + self.v)

    def _ring(self, coords: list[tuple[float, float]]) -> list[tuple[float, float]]:
        kx, ky = self.kx, M_PER_DEG
        pts: list[tuple[float, float]] = []
        for a, b in zip(coords[:-1], coords[1:], strict=True):
            pts.append(a)
            ax, ay = (a[0] - self.v[0]) * kx, (a[1] - self.v[1]) * ky
            dx, dy = (b[0] - a[0]) * kx, (b[1] - a[1]) * ky
            qa, qb, qc = dx * dx + dy * dy, 2 * (ax * dx + ay * dy), ax * ax + ay * ay - WARP_M * WARP_M
            root = qb * qb - 4 * qa * qc
            if qa == 0 or root <= 0:
                continue
            t0 = max(0.0, (-qb - root ** 0.5) / (2 * qa))
            t1 = min(1.0, (-qb + root ** 0.5) / (2 * qa))
            n = int(np.ceil((t1 - t0) * qa ** 0.5 / STEP_M)) if t1 > t0 else 0
            for i in range(n + 1):
                t = t0 + (t1 - t0) * i / n if n else t0
                if 0 < t < 1:
                    pts.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
        xy = np.array([*pts, pts[0]])
        s2 = (((xy[:, 0] - self.v[0]) * kx) ** 2 + ((xy[:, 1] - self.v[1]) * ky) ** 2) / (WARP_M * WARP_M)
        bump = np.where(s2 < 1, (1 - s2) ** 2, 0.0)
        return list(map(tuple, xy + np.outer(bump, self.d)))

    def apply(self, geom: Any) -> Any:
        """`geom` (Polygon or MultiPolygon) bent: a MultiPolygon."""
        polygons = [shapely.Polygon(self._ring(list(p.exterior.coords)), [self._ring(list(r.coords))
                                                                           for r in p.interiors])
                    for p in shapely.get_parts(geom)]
        return shapely.MultiPolygon(polygons)


def nudge(rng: Any, v: tuple[float, float]) -> Warp:
    """A warp moving `v` 5-40 cm in a random direction (`rng` a random.Random)."""
    metres, angle = rng.uniform(*NUDGE_M), rng.uniform(0, 2 * np.pi)
    w = Warp(v, (0.0, 0.0))
    return Warp(v, (metres * float(np.cos(angle)) / w.kx, metres * float(np.sin(angle)) / M_PER_DEG))


def touching(geoms: dict[Any, Any], v: tuple[float, float]) -> dict[Any, Any]:
    """The geometries whose boundary passes through `v`."""
    p = shapely.Point(v)
    return {key: g for key, g in geoms.items() if g.boundary.distance(p) < TOUCH_DEG}


TILES = {("community", "street"), ("grid", "community")}  # (level, parent level) that must cover the parent


@dataclass(frozen=True)
class Near:
    """A unit near a move: its level, geometry and the keys of its direct parents among those near."""

    level: str
    geom: Any
    parents: tuple[Any, ...] = ()


def _measures(units: dict[Any, Near], region: Any, tiles: set[tuple[str, str]]) -> dict[str, float]:
    """Within `region`, in degrees²: overlaps between units of a level; each unit outside its
    parents; each parent's land that none of its children covers, where they must cover it."""
    clipped = {k: shapely.intersection(u.geom, region) for k, u in units.items()}
    out: dict[str, float] = defaultdict(float)
    by_level: dict[str, list[Any]] = defaultdict(list)
    children: dict[Any, list[Any]] = defaultdict(list)
    for k, u in units.items():
        by_level[u.level].append(clipped[k])
        for p in u.parents:
            if p in units:
                out[f"{u.level} outside its {units[p].level}"] += shapely.difference(clipped[k], clipped[p]).area
                if (u.level, units[p].level) in tiles:
                    children[(p, u.level)].append(clipped[k])
    for lv, gs in by_level.items():
        out[f"{lv} overlap"] = sum(shapely.intersection(a, b).area for i, a in enumerate(gs) for b in gs[i + 1:])
    for k, u in units.items():
        for lv, parent_level in tiles:
            if parent_level == u.level:
                uncovered = shapely.difference(clipped[k], shapely.union_all(children.get((k, lv), [])))
                out[f"{u.level} not covered by its {lv}s"] += uncovered.area
    return out


def damage(before: dict[Any, Near], moved: dict[Any, Any],
           tiles: set[tuple[str, str]] = TILES) -> dict[str, float]:
    """What moving some units (`moved`: key -> new geometry) adds, in m², to overlaps, gaps and
    overhangs near the move; `before` holds every unit near it (moved or not) with its parents.
    Empty: nothing, or less than MAX_DAMAGE_M2 of each."""
    region = shapely.union_all([shapely.symmetric_difference(before[k].geom, g) for k, g in moved.items()])
    if region.is_empty:
        return {}
    region = region.buffer(1e-7)
    after = {k: Near(u.level, moved.get(k, u.geom), u.parents) for k, u in before.items()}
    scale = M_PER_DEG * M_PER_DEG * float(np.cos(np.radians(region.centroid.y)))
    old, new = _measures(before, region, tiles), _measures(after, region, tiles)
    return {k: round((v - old.get(k, 0.0)) * scale, 4) for k, v in new.items()
            if (v - old.get(k, 0.0)) * scale > MAX_DAMAGE_M2}
