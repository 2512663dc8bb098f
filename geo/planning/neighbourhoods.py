"""Small neighbourhoods (小邻里) drawn inside one grid: runs of entrances, never across a compound.

A building above the band's ceiling is cut across its long side into its entrances (单元),
so a small neighbourhood can be a few entrances of one building; each residential
compound's part of the grid is split on its own, and all parts are then noded together so
they tile the grid's residential area exactly. Everything is in a metric CRS.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo.planning.atoms import NODE_GRID_M, SLIVER_WIDTH_M, Atom, Feature, Infeasible, noded, polygonal
from geo.planning.search import split

Piece = tuple[Any, int, str | None]  # (territory, households, compound code)


def entrance_slices(b: Feature, ceiling: int, attrs: dict[str, dict[str, Any]]) -> list[tuple[Any, int]]:
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
        piece = polygonal(shapely.intersection(b.geom, quad))
        if not piece.is_empty:
            out.append((piece, base + (1 if k < b.households - base * n else 0)))
    return out


def entrances(buildings: list[Feature], ceiling: int, attrs: dict[str, dict[str, Any]]) -> list[Feature]:
    """Buildings above the ceiling cut into their entrances, so a small neighbourhood can be
    a few entrances of one building (code BUILDING#k for entrance k)."""
    out = []
    for b in buildings:
        slices = entrance_slices(b, ceiling, attrs)
        if len(slices) == 1:
            out.append(b)
            continue
        out.extend(Feature(f"{b.code}#{k + 1}", piece, hh, b.code, b.name) for k, (piece, hh) in enumerate(slices))
    return out


def entrance_lines(buildings: list[Feature], ceiling: int, attrs: dict[str, dict[str, Any]]) -> Any:
    """The lines between the entrances `entrances` cuts: boundaries may run along them."""
    lines = []
    for b in buildings:
        slices = entrance_slices(b, ceiling, attrs)
        if len(slices) > 1:
            edges = shapely.union_all([shapely.boundary(p) for p, _ in slices])
            lines.append(shapely.difference(edges, shapely.buffer(b.geom.boundary, 0.01)))
    return shapely.union_all(lines) if lines else shapely.LineString()


def residential_area(outline: Any, compounds: list[Feature]) -> Any:
    """What the small neighbourhoods of a grid tile: its part of every compound that holds
    households (non-residential land has no small neighbourhoods)."""
    pieces = [shapely.intersection(c.geom, outline) for c in compounds if (c.households or 0) > 0]
    if not pieces:
        return shapely.Polygon()
    area = shapely.union_all(pieces, grid_size=NODE_GRID_M)
    # open by a few centimetres (mitred, so corners stay put): where a compound wall and the
    # grid's edge differ by rounding, the intersection has hair-thin arms that are not land
    w = 2 * SLIVER_WIDTH_M
    return polygonal(shapely.buffer(shapely.buffer(area, -w, join_style="mitre"), w, join_style="mitre"))


def split_by_compound(outline: Any, compounds: list[Feature], buildings: list[Feature], band: tuple[int, int],
                      seed: int, attrs: dict[str, dict[str, Any]] | None = None) -> tuple[list[Piece], list[str]]:
    """Small neighbourhoods never cross a compound: each residential compound's part of the
    grid is split on its own, then all parts are noded together so they tile the grid's
    residential area exactly (neighbouring compounds share their walls vertex for vertex)."""
    atoms, notes = [], []
    area = residential_area(outline, compounds)
    for comp in compounds:
        if (comp.households or 0) <= 0:
            continue
        piece = polygonal(shapely.intersection(comp.geom, area))
        if piece.area < 1.0:
            continue
        inside = [b for b in buildings if b.compound == comp.code]
        total = sum(b.households for b in inside)
        if total == 0:
            atoms.append(Atom(comp.code, "compound", 0, piece, comp.code))
            notes.append(f"compound {comp.code}: its part of the grid has no households; "
                         "kept as one small neighbourhood")
            continue
        inside = entrances(inside, band[1], attrs or {})
        try:
            res = split(piece, [], inside, [], band, seed=seed, tries=3)
        except Infeasible:
            atoms.append(Atom(comp.code, "compound", total, piece, comp.code))
            notes.append(f"compound {comp.code} holds {total} households: kept as one small neighbourhood")
            continue
        atoms.extend(Atom(f"{comp.code}/{i}", "unit", p.households, p.geom, comp.code)
                     for i, p in enumerate(res.parts))
        notes.extend(f"compound {comp.code}: {n}" for n in res.notes)
    if not atoms:
        raise Infeasible("it holds no residential compound to cut into small neighbourhoods")
    return [(a.territory, a.households, a.compound) for a in noded(area, atoms)], notes
