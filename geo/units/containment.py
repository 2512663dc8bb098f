"""Where a unit lies among the stored ones: its parents, and that it stays inside them.

A unit lies inside each of its parents with a tolerance of 0.5 m (surveyed boundaries of
different offices differ by that much). Its parent is the one named by code when the
file names one, else the one holding a point on its surface, else (a point on a shared
edge can fall, by rounding, in the neighbour) the one sharing the most area with it.
Everything here works on geometries in a local metric CRS; the rows come from geo/db.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from geo.errors import InvalidInput
from geo.units import codes, levels

CONTAINMENT_TOLERANCE_M = 0.5


@dataclass
class Parents:
    """The stored units of one level a write's units may lie in."""

    level: str
    ids: np.ndarray
    codes: list[str]
    chains: list[dict[str, int | None]]  # each parent's own chain of parent ids (CHAIN_COLUMNS)
    geoms_m: np.ndarray  # in the metric CRS of the write
    by_code: dict[str, int]

    @classmethod
    def of(cls, level: str, ids: list[int], unit_codes: list[str], chains: list[dict[str, int | None]],
           geoms_m: np.ndarray) -> Parents:
        return cls(level, np.array(ids, dtype=np.int64), unit_codes, chains, geoms_m,
                   {c: i for i, c in enumerate(unit_codes)})


def outside_by(child: shapely.Geometry, parent: shapely.Geometry) -> float:
    """How far (m) the child's vertices reach outside the parent."""
    rest = child.difference(parent)
    if rest.is_empty:
        return 0.0
    points = shapely.points(shapely.get_coordinates(rest))
    return float(np.max(shapely.distance(points, parent)))


def inside_with_tolerance(children: np.ndarray, parents_: np.ndarray) -> np.ndarray:
    """True where a child lies inside its parent widened by the 0.5 m tolerance."""
    inside: np.ndarray = shapely.covers(parents_, children)
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


def outside_words(child: shapely.Geometry, parent: shapely.Geometry) -> str:
    """'reaches 12.3 m outside' or, for a child covering a hole of its parent, the area."""
    by = outside_by(child, parent)
    if by > CONTAINMENT_TOLERANCE_M:
        return f"reaches {by:.1f} m outside"
    area = child.difference(parent).area
    return f"covers {area:,.0f} m² that is not part of"


def match_parents(children_m: np.ndarray, parents: Parents, explicit: list[str | None],
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
            i = int(todo[k])
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
    inside = inside_with_tolerance(children_m, parent_geoms)
    if not inside.all():
        # a probe point on a shared edge can fall, by rounding, in the wrong neighbour:
        # those children go to the parent sharing the most area with them
        tree = shapely.STRtree(parents.geoms_m)
        for i in np.flatnonzero(~inside).tolist():
            if explicit[i] or children_m[i].geom_type == "Point":
                continue
            cands = tree.query(children_m[i], predicate="intersects")
            areas = shapely.area(shapely.intersection(parents.geoms_m[cands], children_m[i]))
            match[i] = int(cands[int(np.argmax(areas))])
        parent_geoms = parents.geoms_m[match]
        inside = inside_with_tolerance(children_m, parent_geoms)
    for i in np.flatnonzero(~inside).tolist():
        raise InvalidInput(
            f"{labels[i]}: {outside_words(children_m[i], parent_geoms[i])} its {parents.level} "
            f"{parents.codes[match[i]]} (allowed: {CONTAINMENT_TOLERANCE_M} m); "
            f"a {child_level} must lie inside its {parents.level}"
        )
    return match


def link_chains(level: str, unit_codes: list[str], labels: list[str], parents: Parents, match: np.ndarray,
                chains: list[dict[str, int | None]], check_codes: bool = True) -> None:
    """Fill each unit's chain of parent ids (in place) from the parent it was matched to,
    refusing a code that names another parent and parents that lie in different units above."""
    p_level = parents.level
    col = levels.PARENT_COLUMNS[p_level]
    for i, j in enumerate(match.tolist()):
        p_chain = parents.chains[j]
        if check_codes:
            implied = codes.implied_parent(level, unit_codes[i], p_level)
            if implied and implied != parents.codes[j]:
                raise InvalidInput(
                    f"{labels[i]}: lies in {p_level} {parents.codes[j]}, but its code says "
                    f"{p_level} {implied}: fix the code or the boundary"
                )
        for c in levels.CHAIN_COLUMNS:
            if p_chain[c] is None:
                continue
            if chains[i][c] is not None and chains[i][c] != p_chain[c]:
                raise InvalidInput(
                    f"{labels[i]}: its {' and its '.join(levels.PARENTS[level])} lie in different "
                    f"{c[:-3]}s; a {level} must lie in one {c[:-3]}"
                )
            chains[i][c] = p_chain[c]
        chains[i][col] = int(parents.ids[j])


def check_children_inside(level: str, child_level: str, parents_m: np.ndarray, labels: list[str],
                          owner: list[int], child_codes: list[str], children_m: np.ndarray) -> None:
    """Refuse a changed unit that would leave one of its children outside: `owner[k]` is the
    index (into parents_m and labels) of the unit holding child k."""
    inside = inside_with_tolerance(children_m, parents_m[owner])
    bad = np.flatnonzero(~inside)
    if len(bad):
        k = int(bad[0])
        words = outside_words(children_m[k], parents_m[owner[k]]).replace(" that is not part of", "")
        raise InvalidInput(
            f"{labels[owner[k]]}: the new boundary leaves its {child_level} "
            f"{child_codes[k]} outside ({words}; {len(bad)} {child_level} unit(s) outside); "
            f"change the {child_level} units first or draw the {level} around them"
        )
