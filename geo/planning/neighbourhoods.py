"""Small neighbourhoods (小邻里) drawn inside one grid: runs of entrances, never across a compound.

Each is named after the building or entrances it holds and carries that building's code
(`holdings`, `label`, `attributes`), as the sample's own small neighbourhoods do.

A building above the band's ceiling is cut across its long side into its entrances (单元),
so a small neighbourhood can be a few entrances of one building; each residential
compound's part of the grid is split on its own, and all parts are then noded together so
they tile the grid's residential area exactly. Everything is in a metric CRS.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo.planning import tiling
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


# ---- what each small neighbourhood holds: its name, building_code and population ----------------

Holding = tuple[Feature, list[int], int, int]  # building, its entrances held (1-based), of how many, households held


def holdings(pieces: list[Piece], buildings: list[Feature], ceiling: int,
             attrs: dict[str, dict[str, Any]] | None = None) -> list[list[Holding]]:
    """For each piece, the buildings it holds and which of their entrances (单元): each
    entrance `entrances` cuts (or each whole building) goes to the piece holding most of it."""
    attrs = attrs or {}
    out: list[list[Holding]] = [[] for _ in pieces]
    if not pieces:
        return out
    geoms = [p[0] for p in pieces]
    tree = shapely.STRtree(geoms)

    def home(geom: Any) -> int | None:
        near = tree.query(geom, predicate="intersects").tolist()
        if not near:
            return None
        if geom.geom_type == "Point":
            return int(near[0])
        return int(max(near, key=lambda k: (tiling.overlay(shapely.intersection, geoms[k], geom).area, -k)))

    for b in buildings:
        slices = entrance_slices(b, ceiling, attrs)
        n = int((attrs.get(b.code) or {}).get("entrances") or 0)
        held: dict[int, tuple[list[int], int]] = {}
        if len(slices) == 1:
            k = home(b.geom)
            if k is not None:
                held[k] = (list(range(1, n + 1)), b.households)
        else:
            n = len(slices)
            for e, (piece, hh) in enumerate(slices, start=1):
                k = home(piece)
                if k is not None:
                    ents, total = held.get(k, ([], 0))
                    held[k] = ([*ents, e], total + hh)
        for k, (ents, hh) in held.items():
            out[k].append((b, ents, n, hh))
    return out


def _runs(numbers: list[int]) -> str:
    """1,2,3,5 -> '1-3、5'."""
    runs: list[list[int]] = []
    for x in sorted(numbers):
        if runs and x == runs[-1][-1] + 1:
            runs[-1].append(x)
        else:
            runs.append([x])
    return "、".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def label(held: list[Holding], compound_name: str) -> str:
    """What a small neighbourhood is called after, as the sample names them: its building and
    entrances ("桂园4栋1-3单元"), several buildings of one compound ("桂园1栋、2栋1-2单元"),
    or its compound where it holds no building."""
    if not held:
        return compound_name
    held = sorted(held, key=lambda h: (h[0].code, h[1]))
    names = [h[0].name or h[0].code for h in held]
    common = names[0] if len(names) == 1 else _common_prefix(names)
    if len(held) > 3:
        return f"{names[0]}等{len(held)}栋"
    parts = [name[len(common):] + (f"{_runs(h[1])}单元" if h[1] else "") for h, name in zip(held, names, strict=True)]
    return common + "、".join(parts)


def _common_prefix(names: list[str]) -> str:
    """The longest prefix the names share, not ending inside a number."""
    prefix = names[0]
    for n in names[1:]:
        while not n.startswith(prefix):
            prefix = prefix[:-1]
    while prefix and prefix[-1].isdigit():
        prefix = prefix[:-1]
    return prefix


def attributes(held: list[Holding]) -> dict[str, Any]:
    """A small neighbourhood's attributes: the building it belongs to (the one holding most of
    its households), and every building when it holds several."""
    if not held:
        return {}
    main = max(held, key=lambda h: (h[3], len(h[1]), h[0].code))[0]
    out: dict[str, Any] = {"building_code": main.code}
    if len(held) > 1:
        out["building_codes"] = sorted(h[0].code for h in held)
    return out


def population_shares(held: list[Holding], population: dict[str, int | None]) -> list[tuple[float, int | None]]:
    """A piece's shares of its buildings' population: the part of a building's households
    it holds (of its entrances where the building has none)."""
    out = []
    for b, ents, n, hh in held:
        share = hh / b.households if b.households > 0 else (len(ents) / n if n else 1.0)
        out.append((share, population.get(b.code)))
    return out


def describe(pieces: list[Piece], buildings: list[Feature], compounds: list[Feature], ceiling: int,
             attrs: dict[str, dict[str, Any]] | None, population: dict[str, int | None]
             ) -> tuple[list[str], list[dict[str, Any]], list[list[tuple[float, int | None]]]]:
    """For each piece: what it is named after (`label`), its attributes (`attributes`) and its
    shares of its buildings' population (`population_shares`)."""
    held = holdings(pieces, buildings, ceiling, attrs)
    names = {c.code: c.name or c.code for c in compounds}
    return ([label(h, names.get(p[2] or "", p[2] or "")) for h, p in zip(held, pieces, strict=True)],
            [attributes(h) for h in held], [population_shares(h, population) for h in held])
