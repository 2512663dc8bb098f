"""Whether proposed units tile what they replace: no gap, no overlap, nothing beyond; and
fitting an edit into a plan's tiling. Areas below TILING_TOLERANCE_M2 are rounding. Metric CRS.

`figures` is the one computation of gaps, overlaps and spill: `problems` (what commit refuses)
and geo/planning/quality.py `measure` (what a plan reports) both read it.

`fit` places edited parts among the others, as a planner who draws in QGIS means them:
- each vertex of an edited part within SNAP_TOLERANCE_M of a vertex of the outline or of a
  neighbour is moved onto it, so an edge drawn along theirs (or sent back unchanged) is theirs;
- what it reaches beyond the outline by no more than that tolerance is cut off (rounding);
  what reaches further is left as drawn, for the checks to report (commit would refuse it);
- the edit wins: a neighbour gives way where an edited part now lies (and the edited part takes
  the new vertices of that shared edge, so neighbours share their edges vertex for vertex);
  a neighbour the edit would cover entirely is refused, and gaps the edit leaves stay gaps,
  for the checks to report. Edited parts that overlap each other are left so (reported).

Geometry sent back from lon/lat can be invalid in metres (a spike or a near-coincident edge a
few micrometres wide crosses itself once projected): GEOS then fails an overlay with a
TopologyException ("side location conflict"). Every overlay here goes through `overlay`,
which repairs its inputs (`valid`) and then snap-rounds to RETRY_GRIDS_M when floating point
fails; what still fails is InvalidInput naming the units, never a GEOSException.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.errors import GEOSException
from shapely.geometry import GeometryCollection, MultiPolygon

from geo.coords import crs
from geo.errors import InvalidInput
from geo.planning.atoms import NODE_GRID_M
from geo.units.containment import CONTAINMENT_TOLERANCE_M, outside_by

TILING_TOLERANCE_M2 = 1.0
# vertices this close to the outline's or a neighbour's are theirs; it is also how far a unit
# may reach outside its parent (geo/units/containment.py), so what snapping leaves is either
# inside the tolerance or a real excursion the checks report
SNAP_TOLERANCE_M = CONTAINMENT_TOLERANCE_M


# an overlay that fails in floating point is done again snap-rounded to these grids (metres):
# a micrometre (far below anything measured), then the millimetre plans are noded on
RETRY_GRIDS_M = (1e-6, NODE_GRID_M)
# what repairing a geometry cuts off below this (m²: a square centimetre) is the crumb of a spike
REPAIR_CRUMB_M2 = 1e-4


def valid(geoms: Any) -> Any:
    """`geoms` (a geometry, or an array of them) with each invalid one repaired, keeping the area
    it covers: parts of a multipolygon that overlap are unioned, a ring that crosses itself is
    split where it crosses, and what collapses to a line or a point (a spike) is dropped."""
    if geoms is None:
        return geoms
    if isinstance(geoms, shapely.Geometry):
        return geoms if geoms.is_valid else _repaired(geoms)
    arr = np.asarray(geoms, dtype=object)
    bad = np.flatnonzero(~shapely.is_valid(arr) & ~shapely.is_missing(arr))
    if not len(bad):
        return arr
    arr = arr.copy()
    arr[bad] = [_repaired(g) for g in arr[bad]]
    return arr


def _repaired(geom: Any) -> Any:
    """An invalid geometry made valid (`valid`), without the crumbs below REPAIR_CRUMB_M2 the
    repair cuts off where a spike crosses an edge (unless nothing else is left)."""
    fixed = shapely.make_valid(geom, method="structure", keep_collapsed=False)
    if fixed.geom_type != "MultiPolygon":
        return fixed
    pieces = [p for p in shapely.get_parts(fixed) if p.area >= REPAIR_CRUMB_M2]
    if not pieces or len(pieces) == len(fixed.geoms):
        return fixed
    return pieces[0] if len(pieces) == 1 else MultiPolygon(pieces)


def overlay(op: Callable[..., Any], *geoms: Any) -> Any:
    """`op(*geoms)` for a shapely overlay `op` (union_all, difference, intersection...) that
    GEOS may fail in floating point: then done again on `geoms` repaired (`valid`), and
    snap-rounded to each of RETRY_GRIDS_M; GEOSException only when every way fails."""
    try:
        return op(*geoms)
    except GEOSException:
        pass
    fixed = tuple(valid(g) for g in geoms)
    try:
        return op(*fixed)
    except GEOSException as exc:
        failed = exc
    for grid in RETRY_GRIDS_M:
        try:
            return op(*fixed, grid_size=grid)
        except GEOSException as exc:
            failed = exc
    raise failed


_NUMBER = r"(-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?)"
_AT = re.compile(rf" at {_NUMBER} {_NUMBER}", re.IGNORECASE)  # where GEOS says it failed


def unmeasurable(exc: GEOSException, parts: Any, labels: Sequence[str] | None, metric: Any = None,
                 doing: str = "overlaid") -> InvalidInput:
    """The InvalidInput for parts GEOS cannot overlay even repaired and snap-rounded: naming the
    parts near where it failed (`labels`, else "part k"), and where (lon/lat, given `metric`)."""
    arr = np.atleast_1d(np.asarray(parts, dtype=object))
    names = list(labels) if labels is not None else [f"part {k + 1}" for k in range(len(arr))]
    where = ""
    hit = np.arange(len(arr))
    m = _AT.search(str(exc))
    if m:
        point = shapely.Point(float(m.group(1)), float(m.group(2)))
        near = np.flatnonzero(shapely.dwithin(arr, point, 1.0))
        if len(near):
            hit = near
        if metric is not None:
            lon, lat = crs.transform(np.array([point], dtype=object), metric, crs.WGS84)[0].coords[0]
            where = f" near {lon:.6f}, {lat:.6f}"
    who = ", ".join(names[k] for k in hit[:5]) + (f" and {len(hit) - 5} more" if len(hit) > 5 else "")
    return InvalidInput(f"{who or 'the units'} cannot be {doing}{where}: their boundaries cross themselves or "
                        f"each other by a hair's breadth that geometry cannot resolve ({exc}); redraw the "
                        "boundaries there (or edit the plan) and try again")


@dataclass
class Figures:
    """How `parts` tile `target`: their union, and the areas (m²) of gaps, overlaps, spill
    (and the gaps themselves)."""

    union: Any
    gap: float
    overlap: float
    spill: float
    gaps: Any = None


def figures(parts_m: Sequence[Any] | np.ndarray, target_m: Any, labels: Sequence[str] | None = None,
            metric: Any = None) -> Figures:
    """Gaps, overlaps and spill of `parts_m` as a tiling of `target_m` (robust to parts whose
    shared edges do not match vertex for vertex, and to parts made invalid by projection:
    `valid`, `overlay`). InvalidInput (`unmeasurable`, naming `labels`) when GEOS cannot."""
    parts = valid(np.asarray(parts_m, dtype=object))
    target = valid(target_m)
    try:
        union = overlay(shapely.union_all, parts) if len(parts) else shapely.Polygon()
        gaps = overlay(shapely.difference, target, union)
        spill = overlay(shapely.difference, union, target)
    except GEOSException as exc:
        raise unmeasurable(exc, parts, labels, metric) from None
    overlap = float(shapely.area(parts).sum() - union.area) if len(parts) else 0.0
    return Figures(union, max(float(gaps.area), 0.0), max(overlap, 0.0), max(float(spill.area), 0.0), gaps)


def problems(parts_m: np.ndarray, target_m: Any, metric: Any, labels: Sequence[str] | None = None) -> list[str]:
    """What is wrong with `parts_m` as a tiling of `target_m` (empty when nothing is); parts
    that cannot be measured at all are that problem (naming `labels`)."""
    try:
        t = figures(parts_m, target_m, labels, metric)
    except InvalidInput as exc:
        return [f"cannot be checked for gaps and overlaps: {exc}"]
    found = []
    if t.gap > TILING_TOLERANCE_M2:
        where = t.gaps.representative_point()
        lon, lat = crs.transform(np.array([where], dtype=object), metric, crs.WGS84)[0].coords[0]
        found.append(f"leaves a gap of {t.gap:,.1f} m² (near {lon:.6f}, {lat:.6f})")
    if t.overlap > TILING_TOLERANCE_M2:
        found.append(f"has units overlapping by {t.overlap:,.1f} m²")
    if t.spill > TILING_TOLERANCE_M2:
        found.append(f"reaches {t.spill:,.1f} m² beyond what it replaces")
    return found


# ---- fitting an edit ------------------------------------------------------------------------

@dataclass
class Fitted:
    """Every part after the edit, and what fitting did: m² cut off each edited part beyond the
    outline, m² each neighbour gave to the edited parts."""

    parts: list[Any]
    cut: dict[int, float] = field(default_factory=dict)
    taken: dict[int, float] = field(default_factory=dict)


def _polygons(geom: Any) -> Any:
    """The polygons of a geometry, made valid first (overlay and snapping results)."""
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if geom.geom_type == "MultiPolygon":
        return geom
    polys = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    if len(polys) == 1:
        return polys[0]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def _without_crumbs(geom: Any) -> Any:
    """A part without the pieces of rounding an overlay leaves (below TILING_TOLERANCE_M2),
    unless it is nothing but such pieces."""
    pieces = [p for p in shapely.get_parts(geom) if p.area >= TILING_TOLERANCE_M2]
    if not pieces or len(pieces) == shapely.get_num_geometries(geom):
        return geom
    return pieces[0] if len(pieces) == 1 else MultiPolygon(pieces)


def _near(parts: list[Any], i: int, others: Sequence[int], tolerance: float) -> list[Any]:
    """The parts among `others` (but `i`) within `tolerance` of part `i`."""
    others = [j for j in others if j != i]
    near = shapely.dwithin(np.array([parts[j] for j in others], dtype=object), parts[i], tolerance)
    return [parts[j] for j, hit in zip(others, np.atleast_1d(near), strict=True) if hit]


def snap_vertices(geom: Any, targets: np.ndarray, tolerance: float) -> Any:
    """`geom` with each vertex within `tolerance` of a target point moved onto the nearest one
    (GEOS snapping would also insert every target near an edge into it: spikes at corners)."""
    if not len(targets):
        return geom
    tree = shapely.STRtree(shapely.points(targets))

    def apply(xy: np.ndarray) -> np.ndarray:
        hit, near = tree.query_nearest(shapely.points(xy), max_distance=tolerance, all_matches=False)
        out = xy.copy()
        out[hit] = targets[near]
        return out

    return shapely.transform(geom, apply)


def _snap_in(part: Any, outline: Any, neighbours: list[Any], label: str, tolerance: float) -> tuple[Any, float]:
    """One edited part snapped to the outline and its neighbours, slivers beyond the outline cut
    (those reaching out no more than `tolerance`, and further than the 1 mm of rounding)."""
    targets = shapely.get_coordinates(np.array([outline, *neighbours], dtype=object))
    g = _polygons(snap_vertices(part, targets, tolerance))
    cut = 0.0
    outside = overlay(shapely.difference, g, outline)
    thin = [p for p in shapely.get_parts(outside) if NODE_GRID_M < outside_by(p, outline) <= tolerance]
    if thin:
        kept = _without_crumbs(_polygons(overlay(shapely.difference, g, overlay(shapely.union_all, thin))))
        cut, g = g.area - kept.area, kept
    if overlay(shapely.intersection, g, outline).area < TILING_TOLERANCE_M2:
        raise InvalidInput(f"{label}: nothing of it lies inside the area the plan redraws (it lies outside "
                           f"it, or collapses when its vertices are snapped {tolerance} m): check the polygon "
                           "and the crs it was sent in")
    return g, cut


def _give_way(parts: list[Any], edited: list[int], labels: Sequence[str], done: Fitted) -> list[int]:
    """Each other part without what the edited parts now cover; the parts that changed."""
    mine = set(edited)
    won = overlay(shapely.union_all, [parts[i] for i in edited])
    changed = []
    for j in np.flatnonzero(shapely.intersects(np.array(parts, dtype=object), won)).tolist():
        if j in mine:
            continue
        lost = float(overlay(shapely.intersection, parts[j], won).area)
        if lost <= 0:
            continue  # they only touch
        rest = _without_crumbs(_polygons(overlay(shapely.difference, parts[j], won)))
        if rest.area < TILING_TOLERANCE_M2:
            by = max(edited, key=lambda i: overlay(shapely.intersection, parts[i], parts[j]).area)
            raise InvalidInput(f"{labels[by]}: covers all of {labels[j]}, which would be left with nothing; "
                               "an edit redraws units, it does not remove one (draw a merge for that)")
        parts[j] = rest
        changed.append(j)
        if lost >= 0.01:
            done.taken[j] = lost
    return changed


def _on_grid(geoms: Any) -> Any:
    """`geoms` on the 1 mm grid (repaired first when GEOS cannot round them as they are)."""
    try:
        return shapely.set_precision(geoms, NODE_GRID_M)
    except GEOSException:
        return shapely.set_precision(valid(geoms), NODE_GRID_M)


def fit(parts_m: Sequence[Any], edited: Sequence[int], outline_m: Any, labels: Sequence[str],
        tolerance: float = SNAP_TOLERANCE_M) -> Fitted:
    """`parts_m` with `parts_m[i]` for i in `edited` newly drawn: the parts after fitting the
    edit into the tiling of `outline_m` (see the module's docstring), every one on the 1 mm grid
    drawn plans are noded on. InvalidInput names the edited part that cannot be fitted (`labels[i]`)."""
    parts = list(valid(np.array(list(parts_m), dtype=object)))  # neighbours made invalid by projection
    outline_m = valid(outline_m)
    done = Fitted(parts)
    edited = list(dict.fromkeys(edited))
    for i in edited:
        try:
            parts[i], cut = _snap_in(parts[i], outline_m, _near(parts, i, range(len(parts)), tolerance), labels[i],
                                     tolerance)
        except GEOSException as exc:
            raise InvalidInput(f"{labels[i]}: the polygon cannot be fitted to the plan's outline and its "
                               f"neighbours ({exc}); check it for self-intersections and slivers") from None
        if cut >= 0.01:
            done.cut[i] = cut
    try:
        changed = _give_way(parts, edited, labels, done)
        # on the grid, vertices that differ by rounding (a trip through lon/lat) are one again
        parts[:] = _on_grid(np.array(parts, dtype=object))
        for i in edited:  # the edited part takes the vertices its neighbours gained on the edges they share
            near = _near(parts, i, changed, tolerance)
            if near:
                parts[i] = _on_grid(shapely.snap(parts[i], GeometryCollection(near), NODE_GRID_M))
    except GEOSException as exc:
        raise unmeasurable(exc, parts, labels, doing="fitted among each other") from None
    for k in [*edited, *changed]:
        parts[k] = _without_crumbs(parts[k])
        if parts[k].is_empty:
            raise InvalidInput(f"{labels[k]}: nothing of it is left on a {NODE_GRID_M * 1000:.0f} mm grid")
    return done
