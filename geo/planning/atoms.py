"""The atoms a split is made of: whole compounds, open blocks and, where a compound is
opened, its buildings with their territories. Everything is in a metric CRS.

Every compound (or open block: land outside compounds, cut by roads) that holds no more
households than the band's ceiling is one atom; a bigger one is opened into its buildings,
each with a territory (the land nearer to it than to any other building of the compound,
from a Voronoi diagram of points along the walls), or along its existing small units when it
has them. All territories are noded into one arrangement on a 1 mm grid, so the atoms tile
the area exactly and neighbours share their edges vertex for vertex.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import MultiPoint

WALL_SAMPLE_M = 4.0  # spacing of points along building walls for the Voronoi territories
NODE_GRID_M = 0.001
SLIVER_WIDTH_M = 0.02  # thinner leftovers between outline and compounds are rounding
CRUMB_M2 = 0.5  # a detached piece of a territory smaller than this, with no neighbour, is rounding


@dataclass
class Feature:
    """A compound or building given to the partitioner (metric geometry)."""

    code: str
    geom: shapely.Geometry
    households: int = 0
    compound: str | None = None  # for a building: the compound it lies in
    name: str = ""


@dataclass
class Atom:
    key: str
    kind: str  # compound | block | building | unit
    households: int
    territory: shapely.Geometry
    compound: str | None
    members: list[str] = field(default_factory=list)  # building codes
    anchors: list[shapely.Geometry] = field(default_factory=list)  # points of its buildings: where it must stay


class Infeasible(ValueError):
    """The band cannot be met at all (e.g. fewer households than the floor)."""


def polygonal(geom: shapely.Geometry | None) -> shapely.Geometry:
    """Only the polygons of a geometry (drop lines and points from overlay results)."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _wall_points(geoms: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points along the walls of each geometry (and its centre), with the owning index."""
    pts, owner = [], []
    for i, g in enumerate(geoms):
        if g.geom_type in ("Point",):
            pts.append(np.array([[g.x, g.y]]))
            owner.append(np.full(1, i))
            continue
        ring = shapely.segmentize(g.boundary, spacing)
        coords = shapely.get_coordinates(ring)
        c = shapely.get_coordinates(g.point_on_surface())
        coords = np.vstack([coords, c])
        pts.append(coords)
        owner.append(np.full(len(coords), i))
    xy = np.vstack(pts)
    own = np.concatenate(owner)
    # identical points (touching buildings) would make the Voronoi diagram drop one
    _, first = np.unique(np.round(xy, 3), axis=0, return_index=True)
    first.sort()
    return xy[first], own[first]


def _building_territories(area: shapely.Geometry, buildings: list[Feature]) -> list[shapely.Geometry]:
    """Split `area` among buildings: each gets the land nearer to its walls than to others'."""
    if len(buildings) == 1:
        return [area]
    geoms = np.array([b.geom for b in buildings], dtype=object)
    xy, owner = _wall_points(geoms, WALL_SAMPLE_M)
    cells = shapely.get_parts(shapely.voronoi_polygons(
        MultiPoint(xy), extend_to=area.envelope.buffer(10), ordered=True))
    # GEOS returns an empty collection for a degenerate cell (nearly coincident points)
    cells = np.where(shapely.get_type_id(cells) == 3, cells, shapely.Polygon())
    out = []
    for i in range(len(buildings)):
        mine = cells[owner == i]
        out.append(polygonal(shapely.intersection(shapely.coverage_union_all(mine), area)))
    return out


def _open_blocks(outline: shapely.Geometry, covered: shapely.Geometry | None,
                 roads: list[shapely.Geometry]) -> list[shapely.Geometry]:
    """Land of `outline` outside the compounds, cut into blocks by roads."""
    rest = polygonal(shapely.difference(outline, covered)) if covered is not None else outline
    if rest.is_empty or rest.area < 1.0:
        return []
    lines = [rest.boundary]
    if roads:
        cut = shapely.intersection(shapely.union_all(roads), rest)
        if not cut.is_empty:
            lines.append(cut)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.union_all(lines))))
    # numerical slivers between the outline and the compounds are not land
    return [f for f in faces if _width(f) > SLIVER_WIDTH_M and rest.contains(f.point_on_surface())]


def _width(geom: shapely.Geometry) -> float:
    """Mean width of a polygon (twice its area over its perimeter)."""
    return 2 * geom.area / geom.length if geom.length else 0.0


def union_find(n: int) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
    """find(i) -> the representative of i's set; join(i, j) merges two sets."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    return find, join


def _probe(geom: shapely.Geometry) -> shapely.Geometry:
    return geom if geom.geom_type == "Point" else geom.point_on_surface()


def _cell_groups(region: shapely.Geometry, cells: list[Feature], inside: list[Feature]) -> list[Atom]:
    """Atoms of an opened compound drawn from its existing small units (cells): cells that
    one building spans go together, so neither the buildings nor the cells are cut. Land of
    the compound outside every cell becomes atoms without households."""
    cgeoms = np.array([c.geom for c in cells], dtype=object)
    find, join = union_find(len(cells))
    tree = shapely.STRtree(cgeoms)
    owner_of: dict[int, int] = {}
    for bi, b in enumerate(inside):
        hits = tree.query(b.geom, predicate="intersects")
        if b.geom.geom_type != "Point" and len(hits) > 1:
            areas = shapely.area(shapely.intersection(cgeoms[hits], b.geom))
            hits = hits[areas > 1.0] if (areas > 1.0).any() else hits[[int(np.argmax(areas))]]
        if len(hits):
            for h in hits[1:]:
                join(int(h), int(hits[0]))
            owner_of[bi] = int(hits[0])
    groups: dict[int, list[int]] = {}
    for i in range(len(cells)):
        groups.setdefault(find(i), []).append(i)
    atoms = []
    for root, members in groups.items():
        terr = polygonal(shapely.intersection(shapely.union_all(cgeoms[members]), region))
        if terr.is_empty:
            continue
        blds = [inside[bi] for bi, ci in owner_of.items() if find(ci) == root]
        hh = sum(b.households for b in blds) if blds else sum(cells[i].households for i in members)
        key = blds[0].code if blds else cells[members[0]].code
        atoms.append(Atom(key, "building" if blds else "cell", int(hh), terr, None,
                          [b.code for b in blds], [_probe(b.geom) for b in blds]))
    rest = polygonal(shapely.difference(region, shapely.union_all(cgeoms)))
    for k, face in enumerate(shapely.get_parts(rest)):
        if _width(face) > SLIVER_WIDTH_M:
            atoms.append(Atom(f"land-{k + 1}", "land", 0, face, None, []))
    return atoms


def make_atoms(outline: shapely.Geometry, compounds: list[Feature], buildings: list[Feature],
               roads: list[shapely.Geometry], ceiling: int, cells: list[Feature] | None = None) -> list[Atom]:
    """The atoms of `outline` (see the module docstring); their territories tile it.

    `cells` are existing small units (small neighbourhoods) inside compounds: when given,
    an opened compound is cut along them rather than by a Voronoi diagram of its buildings."""
    compounds = [c for c in compounds if not c.geom.is_empty]
    regions: list[tuple[str, str, shapely.Geometry, int | None]] = []  # key, kind, polygon, own households
    for c in compounds:
        geom = polygonal(shapely.intersection(c.geom, outline))
        if geom.area > 0.01:
            regions.append((c.code, "compound", geom, c.households))
    covered = shapely.union_all([r[2] for r in regions]) if regions else None
    for n, face in enumerate(_open_blocks(outline, covered, roads)):
        regions.append((f"block-{n + 1}", "block", face, None))

    # buildings to regions, by a point on each building
    region_geoms = np.array([r[2] for r in regions], dtype=object)
    tree = shapely.STRtree(region_geoms)
    probes = np.array([_probe(b.geom) for b in buildings], dtype=object)
    held: dict[int, list[Feature]] = {}
    if len(probes):
        hit_b, hit_r = tree.query(probes, predicate="intersects")
        owner = np.full(len(buildings), -1)
        owner[hit_b[::-1]] = hit_r[::-1]  # first hit wins
        for bi, ri in enumerate(owner):
            if ri >= 0:
                held.setdefault(int(ri), []).append(buildings[bi])

    atoms: list[Atom] = []
    for ri, (key, kind, geom, own_hh) in enumerate(regions):
        inside = held.get(ri, [])
        from_buildings = sum(b.households for b in inside)
        households = from_buildings if from_buildings > 0 or own_hh is None else own_hh
        if households <= ceiling or len(inside) <= 1:
            atoms.append(Atom(key, kind, int(households), geom, key, [b.code for b in inside],
                              [_probe(b.geom) for b in inside]))
            continue
        mine = [c for c in (cells or []) if geom.contains(_probe(c.geom))]
        if mine:
            for atom in _cell_groups(geom, mine, inside):
                atom.compound = key
                atoms.append(atom)
            continue
        for b, terr in zip(inside, _building_territories(geom, inside), strict=True):
            atoms.append(Atom(b.code, "building", int(b.households), terr, key, [b.code], [_probe(b.geom)]))
    return noded(outline, atoms)


def noded(outline: shapely.Geometry, atoms: list[Atom]) -> list[Atom]:
    """Re-draw every territory from one noded arrangement of all their edges, so that
    neighbours share their edges vertex for vertex and the union is exactly `outline`."""
    terr = np.array([a.territory for a in atoms], dtype=object)
    # noded on a 1 mm grid: edges that differ by rounding become one edge, leaving no slivers
    lines = shapely.union_all(np.concatenate([shapely.boundary(terr), [outline.boundary]]), grid_size=NODE_GRID_M)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    probes = shapely.point_on_surface(faces)
    keep = shapely.contains(outline, probes)
    faces, probes = faces[keep], probes[keep]
    tree = shapely.STRtree(terr)
    hit_f, hit_a = tree.query(probes, predicate="within")
    owner = np.full(len(faces), -1)
    owner[hit_f[::-1]] = hit_a[::-1]
    lost = np.flatnonzero(owner < 0)
    thin = lost[(2 * shapely.area(faces[lost]) / np.maximum(shapely.length(faces[lost]), 1e-12)) <= SLIVER_WIDTH_M]
    owner[thin] = -2  # slivers between the outline and the compounds: rounding, not land
    lost = np.flatnonzero(owner == -1)
    if len(lost):  # faces in no territory: to the nearest territory
        near_f, near_a = tree.query_nearest(probes[lost], return_distance=False, all_matches=False)
        owner[lost[near_f]] = near_a
    # crumbs (rounding between nearly equal edges) go to the face they share the most edge
    # with, so that no territory ends up with a stray piece. Thin slivers along the outline
    # stay out: handed to a neighbour they would give it a hair as long as the outline
    small = np.setdiff1d(np.flatnonzero(shapely.area(faces) < 1e-3), thin)
    if len(small):
        ftree = shapely.STRtree(faces)
        bounds = shapely.boundary(faces)
        big = np.ones(len(faces), dtype=bool)
        big[small] = False
        for f in small.tolist():
            cands = [c for c in ftree.query(faces[f], predicate="intersects").tolist() if big[c] and owner[c] >= 0]
            if not cands:
                continue
            shared = shapely.length(shapely.intersection(bounds[f], bounds[cands]))
            if shared.max() > 0:
                owner[f] = owner[cands[int(np.argmax(shared))]]
    drawn = [shapely.coverage_union_all(faces[owner == i]) if np.any(owner == i) else None
             for i in range(len(atoms))]
    _one_piece(atoms, drawn)
    out = []
    for atom, t in zip(atoms, drawn, strict=True):
        if t is not None and not t.is_empty:
            atom.territory = t
            out.append(atom)
    return out


def _one_piece(atoms: list[Atom], terr: list[shapely.Geometry | None]) -> None:
    """Make every territory one polygon where it can be: a territory clipped into several
    pieces (a Voronoi cell cut by a bend in a road, a rounding crumb) keeps the piece with
    its buildings (or its largest) and hands each other piece to the neighbour sharing the
    most edge with it. Otherwise a part made of connected atoms could still fall apart."""
    live = [i for i, t in enumerate(terr) if t is not None]
    tree = shapely.STRtree(np.array([terr[i] for i in live], dtype=object))
    for i in live:
        pieces = list(shapely.get_parts(terr[i]))
        if len(pieces) < 2:
            continue
        held = [any(p.intersects(a) for a in atoms[i].anchors) for p in pieces]
        main = max(range(len(pieces)), key=lambda j: (held[j], pieces[j].area))
        keep = [pieces[main]]
        for j, piece in enumerate(pieces):
            if j == main:
                continue
            best, shared = None, 0.0
            for c in tree.query(piece, predicate="intersects").tolist():
                other = live[c]
                if other == i or terr[other] is None:
                    continue
                length = shapely.intersection(piece.boundary, terr[other].boundary).length
                if length > shared:
                    best, shared = other, length
            if best is None and not held[j] and piece.area < CRUMB_M2:
                continue  # a rounding crumb touching no other territory: not land
            if held[j] or best is None:
                keep.append(piece)
            else:
                terr[best] = shapely.coverage_union_all([terr[best], piece])
        terr[i] = shapely.coverage_union_all(keep) if len(keep) > 1 else keep[0]
