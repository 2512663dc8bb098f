"""Splitting one area into balanced, contiguous, compact parts that keep compounds and
buildings whole and put new boundaries on roads and compound walls.

Everything here is in a metric CRS and knows nothing of the database.

1. Atoms. Every compound (or open block: land outside compounds, cut by roads) that
   holds no more households than the band's ceiling is one atom; a bigger one is opened
   into its buildings, each with a territory (the land nearer to it than to any other
   building of the compound, from a Voronoi diagram of points along the walls).
   All territories are noded into one arrangement, so the parts tile the area exactly.
2. Graph. Atoms sharing a boundary are joined by an edge whose weight is the cost of
   cutting there: per metre, cheapest along a road, dearer across a compound wall,
   dearest inside a compound.
3. Partition. METIS (pymetis) cuts the graph into k parts of balanced households and
   least cut cost, asking for contiguous parts; k runs over the counts the band allows.
4. Refinement. Boundary atoms move between neighbouring parts, never disconnecting a
   part, until every part is inside the band; then moves that shorten the cut.
The best candidate (fewest households outside the band, then least cut cost) wins.
Deterministic for a given seed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pymetis
import shapely
from shapely.geometry import MultiPoint

ROAD_TOLERANCE_M = 6.0  # a boundary within this of a road centre line runs along the road
WALL_TOLERANCE_M = 0.5
COST_ROAD = 1.0   # per metre of cut
COST_WALL = 3.0
COST_INSIDE = 40.0
WALL_SAMPLE_M = 4.0  # spacing of points along building walls for the Voronoi territories
MIN_SHARED_M = 0.05
NODE_GRID_M = 0.001
SLIVER_WIDTH_M = 0.02  # thinner leftovers between outline and compounds are rounding
CRUMB_M2 = 0.5  # a detached piece of a territory smaller than this, with no neighbour, is rounding
COMPACT_ENOUGH = 0.5  # Polsby-Popper above which refinement stops lifting a part
COMPACT_FLOOR = 0.35   # cheaper-cut moves never push a part below this


@dataclass
class Feature:
    """A compound or building given to the partitioner (metric geometry)."""

    code: str
    geom: object
    households: int = 0
    compound: str | None = None  # for a building: the compound it lies in
    name: str = ""


@dataclass
class Atom:
    key: str
    kind: str  # compound | block | building | unit
    households: int
    territory: object
    compound: str | None
    members: list[str] = field(default_factory=list)  # building codes
    anchors: list = field(default_factory=list)  # points of its buildings: where it must stay


@dataclass
class Part:
    geom: object
    households: int
    atoms: list[int]
    buildings: list[str]


@dataclass
class SplitResult:
    parts: list[Part]
    atoms: list[Atom]
    assignment: np.ndarray
    k: int
    seed: int
    cut_cost: float
    notes: list[str]


class Infeasible(ValueError):
    """The band cannot be met at all (e.g. fewer households than the floor)."""


# ---------------------------------------------------------------------------
# Atoms and territories
# ---------------------------------------------------------------------------

def _polygonal(geom):
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


def _building_territories(area, buildings: list[Feature]) -> list:
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
        out.append(_polygonal(shapely.intersection(shapely.coverage_union_all(mine), area)))
    return out


def _open_blocks(outline, covered, roads: list) -> list:
    """Land of `outline` outside the compounds, cut into blocks by roads."""
    rest = _polygonal(shapely.difference(outline, covered)) if covered is not None else outline
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


def _width(geom) -> float:
    """Mean width of a polygon (twice its area over its perimeter)."""
    return 2 * geom.area / geom.length if geom.length else 0.0


def union_find(n: int):
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


def _probe(geom):
    return geom if geom.geom_type == "Point" else geom.point_on_surface()


def _cell_groups(region, cells: list[Feature], inside: list[Feature]) -> list[Atom]:
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
        terr = _polygonal(shapely.intersection(shapely.union_all(cgeoms[members]), region))
        if terr.is_empty:
            continue
        blds = [inside[bi] for bi, ci in owner_of.items() if find(ci) == root]
        hh = sum(b.households for b in blds) if blds else sum(cells[i].households for i in members)
        key = blds[0].code if blds else cells[members[0]].code
        atoms.append(Atom(key, "building" if blds else "cell", int(hh), terr, None,
                          [b.code for b in blds], [_probe(b.geom) for b in blds]))
    rest = _polygonal(shapely.difference(region, shapely.union_all(cgeoms)))
    for k, face in enumerate(shapely.get_parts(rest)):
        if _width(face) > SLIVER_WIDTH_M:
            atoms.append(Atom(f"land-{k + 1}", "land", 0, face, None, []))
    return atoms


def make_atoms(outline, compounds: list[Feature], buildings: list[Feature], roads: list,
               ceiling: int, cells: list[Feature] | None = None) -> list[Atom]:
    """The atoms of `outline` (see the module docstring); their territories tile it.

    `cells` are existing small units (small neighbourhoods) inside compounds: when given,
    an opened compound is cut along them rather than by a Voronoi diagram of its buildings."""
    compounds = [c for c in compounds if not c.geom.is_empty]
    regions: list[tuple[str, str, object, int | None]] = []  # key, kind, polygon, own households
    for c in compounds:
        geom = _polygonal(shapely.intersection(c.geom, outline))
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
        for b, terr in zip(inside, _building_territories(geom, inside)):
            atoms.append(Atom(b.code, "building", int(b.households), terr, key, [b.code], [_probe(b.geom)]))
    return _noded(outline, atoms)


def _noded(outline, atoms: list[Atom]) -> list[Atom]:
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
    terr = [shapely.coverage_union_all(faces[owner == i]) if np.any(owner == i) else None
            for i in range(len(atoms))]
    _one_piece(atoms, terr)
    out = []
    for atom, t in zip(atoms, terr):
        if t is not None and not t.is_empty:
            atom.territory = t
            out.append(atom)
    return out


def _one_piece(atoms: list[Atom], terr: list) -> None:
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


# ---------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------

@dataclass
class Graph:
    """Atoms and their shared edges. Per atom: neighbours, the cost of cutting each shared
    edge, its length and how much of it runs on a road or a compound wall."""

    n: int
    neighbours: list[np.ndarray]
    costs: list[np.ndarray]
    lengths: list[np.ndarray]
    pairs: np.ndarray  # (m, 2)
    pair_cost: np.ndarray
    pair_length: np.ndarray
    pair_guided: np.ndarray  # metres of the shared edge on a road or a compound wall
    area: np.ndarray
    perimeter: np.ndarray

    def csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xadj = np.zeros(self.n + 1, dtype=np.int64)
        xadj[1:] = np.cumsum([len(x) for x in self.neighbours])
        adjncy = np.concatenate(self.neighbours) if self.n else np.zeros(0, np.int64)
        eweights = np.concatenate(self.costs) if self.n else np.zeros(0)
        eweights = np.maximum(1, np.round(eweights)).astype(np.int64)
        return xadj, adjncy.astype(np.int64), eweights


def build_graph(atoms: list[Atom], roads: list) -> Graph:
    terr = np.array([a.territory for a in atoms], dtype=object)
    n = len(atoms)
    tree = shapely.STRtree(terr)
    a, b = tree.query(terr, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    bounds = shapely.boundary(terr)
    shared = shapely.intersection(bounds[a], bounds[b])
    length = shapely.length(shared)
    ok = length > MIN_SHARED_M
    a, b, shared, length = a[ok], b[ok], shared[ok], length[ok]
    if roads and len(shared):
        corridor = shapely.buffer(shapely.union_all(roads), ROAD_TOLERANCE_M, quad_segs=2)
        shapely.prepare(corridor)
        on_road = np.minimum(shapely.length(shapely.intersection(shared, corridor)), length)
    else:
        on_road = np.zeros(len(shared))
    same = np.array([atoms[i].compound is not None and atoms[i].compound == atoms[j].compound
                     for i, j in zip(a, b)], dtype=bool)
    off_road = np.maximum(length - on_road, 0)
    cost = COST_ROAD * on_road + np.where(same, COST_INSIDE, COST_WALL) * off_road
    guided = np.where(same, on_road, length)
    neighbours = [[] for _ in range(n)]
    costs = [[] for _ in range(n)]
    lengths = [[] for _ in range(n)]
    for i, j, c, ln in zip(a.tolist(), b.tolist(), cost.tolist(), length.tolist()):
        for x, y in ((i, j), (j, i)):
            neighbours[x].append(y)
            costs[x].append(c)
            lengths[x].append(ln)
    return Graph(
        n,
        [np.array(x, dtype=np.int64) for x in neighbours],
        [np.array(x, dtype=float) for x in costs],
        [np.array(x, dtype=float) for x in lengths],
        np.column_stack([a, b]) if len(a) else np.zeros((0, 2), np.int64),
        cost, length, guided, shapely.area(terr), shapely.length(terr),
    )


def _components(graph: Graph, members: np.ndarray | None = None) -> list[list[int]]:
    allowed = None if members is None else set(members.tolist())
    nodes = range(graph.n) if members is None else members.tolist()
    seen: set[int] = set()
    out = []
    for s in nodes:
        if s in seen:
            continue
        comp = [s]
        seen.add(s)
        queue = deque([s])
        while queue:
            u = queue.popleft()
            for v in graph.neighbours[u].tolist():
                if v not in seen and (allowed is None or v in allowed):
                    seen.add(v)
                    comp.append(v)
                    queue.append(v)
        out.append(comp)
    return out


# ---------------------------------------------------------------------------
# Partition and refinement
# ---------------------------------------------------------------------------

def _penalty(total, lo: int, hi: int):
    return np.maximum(total - hi, 0) + np.maximum(lo - total, 0)


def _stays_connected(graph: Graph, part: np.ndarray, node: int) -> bool:
    """Would the part of `node` stay connected without it?"""
    p = part[node]
    nbrs = [v for v in graph.neighbours[node].tolist() if part[v] == p]
    if len(nbrs) <= 1:
        return True
    targets = set(nbrs)
    start = nbrs[0]
    seen = {start, node}
    queue = deque([start])
    targets.discard(start)
    while queue and targets:
        u = queue.popleft()
        for v in graph.neighbours[u].tolist():
            if v not in seen and part[v] == p:
                seen.add(v)
                targets.discard(v)
                queue.append(v)
    return not targets


def _cut_cost(graph: Graph, part: np.ndarray) -> float:
    if not len(graph.pairs):
        return 0.0
    cut = part[graph.pairs[:, 0]] != part[graph.pairs[:, 1]]
    return float(graph.pair_cost[cut].sum())


def _shape(graph: Graph, part: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Area and perimeter of each part, from the atoms' and their shared edges'."""
    area = np.bincount(part, weights=graph.area, minlength=k)
    perim = np.bincount(part, weights=graph.perimeter, minlength=k)
    if len(graph.pairs):
        inner = part[graph.pairs[:, 0]] == part[graph.pairs[:, 1]]
        perim -= 2 * np.bincount(part[graph.pairs[inner, 0]], weights=graph.pair_length[inner],
                                 minlength=k)
    return area, perim


def _pp(area, perim):
    return 4 * math.pi * area / np.maximum(perim, 1e-9) ** 2


class _State:
    """A partition with running totals, so a move is judged in O(degree)."""

    def __init__(self, graph: Graph, weights: np.ndarray, part: np.ndarray, k: int, lo: int, hi: int):
        self.g, self.w, self.part, self.k, self.lo, self.hi = graph, weights, part.copy(), k, lo, hi
        self.total = np.bincount(self.part, weights=weights, minlength=k).astype(float)
        self.area, self.perim = _shape(graph, self.part, k)
        self.size = np.bincount(self.part, minlength=k)

    def pen(self, t):
        return _penalty(t, self.lo, self.hi)

    def effect(self, u: int, q: int):
        """(penalty change, cut change, new PP of the old part, new PP of q) if u moves to q."""
        g, p, w = self.g, self.part[u], self.w[u]
        nbr_parts = self.part[g.neighbours[u]]
        to_p, to_q = nbr_parts == p, nbr_parts == q
        dpen = (self.pen(self.total[p] - w) - self.pen(self.total[p])
                + self.pen(self.total[q] + w) - self.pen(self.total[q]))
        c = g.costs[u]
        dcut = float(c[to_p].sum() - c[to_q].sum())
        ln = g.lengths[u]
        perim_p = self.perim[p] - g.perimeter[u] + 2 * float(ln[to_p].sum())
        perim_q = self.perim[q] + g.perimeter[u] - 2 * float(ln[to_q].sum())
        pp_p = _pp(self.area[p] - g.area[u], perim_p) if self.size[p] > 1 else 0.0
        pp_q = _pp(self.area[q] + g.area[u], perim_q)
        return dpen, dcut, float(pp_p), float(pp_q), perim_p, perim_q

    def pp(self, p) -> float:
        return float(_pp(self.area[p], self.perim[p]))

    def can_leave(self, u: int) -> bool:
        return self.size[self.part[u]] > 1 and _stays_connected(self.g, self.part, u)

    def move(self, u: int, q: int, perim_p: float, perim_q: float) -> None:
        p, w = self.part[u], self.w[u]
        self.total[p] -= w
        self.total[q] += w
        self.area[p] -= self.g.area[u]
        self.area[q] += self.g.area[u]
        self.perim[p], self.perim[q] = perim_p, perim_q
        self.size[p] -= 1
        self.size[q] += 1
        self.part[u] = q

    def frontier(self, u: int) -> set[int]:
        p = self.part[u]
        return set(self.part[self.g.neighbours[u]].tolist()) - {p}


def _near_bad(st: _State, bad: set[int]):
    """(atom, its part, neighbouring parts) for atoms with households in or next to a part
    outside the band."""
    for u in range(st.g.n):
        if st.w[u] <= 0:
            continue
        p = st.part[u]
        others = st.frontier(u)
        if others and (p in bad or others & bad):
            yield u, p, others


def _balance(st: _State, max_moves: int) -> None:
    """Moves that bring parts towards the band, best first."""
    graph, weights = st.g, st.w
    for _ in range(max_moves):
        bad = set(np.flatnonzero(st.pen(st.total) > 0).tolist())
        if not bad:
            return
        best = None
        for u, p, others in _near_bad(st, bad):
            for q in others:
                dpen, dcut, pp_p, pp_q, perim_p, perim_q = st.effect(u, q)
                if dpen >= 0:
                    continue
                cand = (dpen, -min(pp_p, pp_q), dcut, u, q, perim_p, perim_q)
                if (best is None or cand < best) and st.can_leave(u):
                    best = cand
        if best is None:
            return
        st.move(best[3], best[4], best[5], best[6])


def _chain(st: _State) -> bool:
    """Two moves that help together where each alone does not: a whole compound u leaves an
    over-full part p for q, then q passes something on (or p takes something in)."""
    graph, w = st.g, st.w
    before = float(st.pen(st.total).sum())
    bad = set(np.flatnonzero(st.pen(st.total) > 0).tolist())
    best = None
    for u, p, others in _near_bad(st, bad):
        for q in others:
            if not st.can_leave(u):
                break
            *_, perim_p, perim_q = st.effect(u, q)
            st.move(u, q, perim_p, perim_q)
            after_one = float(st.pen(st.total).sum())
            members = np.flatnonzero((st.part == q) | (st.part == p))
            for v in members.tolist():
                if v == u or w[v] <= 0:
                    continue
                for r in st.frontier(v):
                    if st.part[v] == p and r == q:
                        continue
                    if st.part[v] == q or r == p:
                        dpen, dcut, pp_a, pp_b, _, _ = st.effect(v, r)
                        total = after_one + dpen
                        if total < before - 1e-9:
                            cand = (total, -min(pp_a, pp_b), u, q, v, r)
                            if best is None or cand < best:
                                if st.can_leave(v):
                                    best = cand
            *_, back_q, back_p = st.effect(u, p)
            st.move(u, p, back_q, back_p)
    if best is None:
        return False
    _, _, u, q, v, r = best
    *_, a, b = st.effect(u, q)
    st.move(u, q, a, b)
    *_, a, b = st.effect(v, r)
    st.move(v, r, a, b)
    return True


def _diffuse(st: _State) -> bool:
    """Moves from fuller to emptier neighbouring parts that keep the band penalty, so slack
    spreads towards the parts that need it. True if anything moved."""
    graph, weights = st.g, st.w
    moved = False
    for _ in range(2):
        for u in range(graph.n):
            w = weights[u]
            if w <= 0:
                continue
            p = st.part[u]
            for q in sorted(st.frontier(u), key=lambda q: st.total[q]):
                if st.total[p] - st.total[q] <= w:
                    continue
                dpen, dcut, pp_p, pp_q, perim_p, perim_q = st.effect(u, q)
                if dpen > 0 or min(pp_p, pp_q) < 0.2 or not st.can_leave(u):
                    continue
                st.move(u, q, perim_p, perim_q)
                moved = True
                break
    return moved


def _sweep(st: _State, accept, passes: int) -> None:
    """Passes over all atoms, making the first move to a neighbouring part that `accept`s."""
    for _ in range(passes):
        moved = 0
        for u in range(st.g.n):
            p = st.part[u]
            for q in st.frontier(u):
                dpen, dcut, pp_p, pp_q, perim_p, perim_q = st.effect(u, q)
                if not accept(u, p, q, dpen, dcut, pp_p, pp_q) or not st.can_leave(u):
                    continue
                st.move(u, q, perim_p, perim_q)
                moved += 1
                break
        if not moved:
            return


def refine(graph: Graph, weights: np.ndarray, part: np.ndarray, k: int, lo: int, hi: int,
           max_moves: int | None = None) -> np.ndarray:
    """Improve a partition by moving boundary atoms between neighbouring parts, never
    disconnecting a part: first until every part is in [lo, hi] (or no move helps), then
    raising the least compact parts, then cheaper cuts, never leaving the band."""
    st = _State(graph, weights, part, k, lo, hi)
    max_moves = max_moves or 4 * graph.n + 50
    # 1. balance; when single moves get stuck, even out totals (which makes room) and retry
    for _ in range(6):
        _balance(st, max_moves)
        if not (st.pen(st.total) > 0).any():
            break
        if not _chain(st) and not _diffuse(st):
            break
    # 2. compactness: lift the least compact part while the band holds
    for _ in range(max_moves):
        pps = _pp(st.area, st.perim)
        order = np.argsort(pps)
        improved = False
        for worst in order[:3].tolist():
            if pps[worst] >= COMPACT_ENOUGH:
                break
            best = None
            for u in range(graph.n):
                p = st.part[u]
                others = st.frontier(u)
                if not others or (p != worst and worst not in others):
                    continue
                for q in ([worst] if p != worst else others):
                    dpen, dcut, pp_p, pp_q, perim_p, perim_q = st.effect(u, q)
                    if dpen > 0:
                        continue
                    before = min(pps[p], pps[q])
                    after = min(pp_p, pp_q)
                    if after <= before + 0.005:
                        continue
                    cand = (-(after - before), dcut, u, q, perim_p, perim_q)
                    if (best is None or cand < best) and st.can_leave(u):
                        best = cand
            if best is not None:
                st.move(best[2], best[3], best[4], best[5])
                improved = True
                break
        if not improved:
            break
    # 2b. raise the mean: moves that make the two parts more compact together
    def more_compact(u, p, q, dpen, dcut, pp_p, pp_q):
        now_p, now_q = st.pp(p), st.pp(q)
        return (dpen <= 0 and pp_p + pp_q > now_p + now_q + 0.01
                and min(pp_p, pp_q) >= min(COMPACT_FLOOR, now_p, now_q))

    # 3. cheaper cuts that keep every part in the band and no less compact than the floor
    def cheaper(u, p, q, dpen, dcut, pp_p, pp_q):
        return dcut < -1e-9 and dpen <= 0 and min(pp_p, pp_q) >= min(COMPACT_FLOOR, st.pp(p), st.pp(q))

    _sweep(st, more_compact, passes=2)
    _sweep(st, cheaper, passes=3)
    return st.part


def _metis(graph: Graph, weights: np.ndarray, k: int, seed: int, contiguous: bool,
           jitter: float = 0.0) -> np.ndarray:
    """METIS k-way partition; `jitter` perturbs edge weights (seeded) so tries differ."""
    if k == 1:
        return np.zeros(graph.n, dtype=np.int64)
    xadj, adjncy, eweights = graph.csr()
    if jitter:
        # perturb each undirected edge once: both directions must carry the same weight
        rng = np.random.default_rng(seed)
        factor = rng.uniform(1 - jitter, 1 + jitter, size=len(graph.pairs))
        index = {}
        for e, (i, j) in enumerate(graph.pairs.tolist()):
            index[(i, j)] = index[(j, i)] = e
        src = np.repeat(np.arange(graph.n), np.diff(xadj))
        f = np.array([factor[index[(i, j)]] for i, j in zip(src.tolist(), adjncy.tolist())])
        eweights = np.maximum(1, np.round(eweights * f)).astype(np.int64)
    # zero-household land (parks, schools) still weighs a little, so METIS spreads it
    vweights = (weights * 100 + 1).astype(np.int64)
    opts = pymetis.Options(seed=int(seed), ufactor=30, niter=20, ncuts=3, contig=int(contiguous))
    try:
        _, membership = pymetis.part_graph(k, pymetis.CSRAdjacency(xadj, adjncy), vweights=vweights,
                                           eweights=eweights, options=opts)
    except Exception:  # METIS refuses contig on some graphs; try without
        if not contiguous:
            raise
        opts = pymetis.Options(seed=int(seed), ufactor=30, niter=20, ncuts=3, contig=0)
        _, membership = pymetis.part_graph(k, pymetis.CSRAdjacency(xadj, adjncy), vweights=vweights,
                                           eweights=eweights, options=opts)
    return np.asarray(membership, dtype=np.int64)


def _make_contiguous(graph: Graph, part: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Give every stray piece of a part to the neighbouring part it shares most with."""
    part = part.copy()
    for p in np.unique(part):
        comps = _components(graph, np.flatnonzero(part == p))
        if len(comps) <= 1:
            continue
        comps.sort(key=lambda c: -weights[c].sum() - 1e-6 * len(c))
        for comp in comps[1:]:
            shares: dict[int, float] = {}
            for u in comp:
                for v, c in zip(graph.neighbours[u].tolist(), graph.costs[u].tolist()):
                    if part[v] != p:
                        shares[part[v]] = shares.get(part[v], 0.0) + c
            if shares:
                q = max(shares, key=shares.get)
                part[comp] = q
    return part


def _fill_empty(graph: Graph, part: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """METIS leaves parts empty when k is close to the number of atoms (a compound of a dozen
    buildings cut into small neighbourhoods): seed each empty part with one atom taken from
    the heaviest part that can spare it, so the refinement can grow it."""
    part = part.copy()
    for q in range(k):
        if np.any(part == q):
            continue
        tot = np.bincount(part, weights=weights, minlength=k)
        for p in np.argsort(-tot).tolist():
            members = np.flatnonzero(part == p)
            if len(members) < 2:
                continue
            # the atom that halves the part best among those whose leaving keeps it connected
            spare = [u for u in members.tolist() if _stays_connected(graph, part, u)]
            if spare:
                u = min(spare, key=lambda u: abs(tot[p] - 2 * weights[u]))
                part[u] = q
                break
    return part


def part_counts(total: int, lo: int, hi: int) -> list[int]:
    """The numbers of parts for which a split inside [lo, hi] is possible, best first."""
    if total <= 0:
        raise Infeasible("there are no households to split")
    k_min = max(1, math.ceil(total / hi))
    k_max = max(1, total // lo) if lo > 0 else k_min + 2
    if k_min > k_max:
        raise Infeasible(
            f"{total} households cannot make parts of {lo}-{hi} households: "
            f"{k_min} parts would hold under {lo}, {k_min - 1} over {hi}"
        )
    mid = (lo + hi) / 2
    best = min(max(round(total / mid), k_min), k_max)
    ks = sorted(range(k_min, k_max + 1), key=lambda k: (abs(k - best), k))
    return ks[:4]


def split(outline, compounds: list[Feature], buildings: list[Feature], roads: list,
          band: tuple[int, int], *, parts: int | None = None, seed: int = 0,
          tries: int = 8, cells: list[Feature] | None = None) -> SplitResult:
    """Split `outline` into parts inside the household band (see the module docstring).

    Compounds up to the band's ceiling are kept whole. Only when that leaves a part outside
    the band is a second layout tried that may open compounds within the band (never one
    below the floor); the result says so in its notes."""
    lo, hi = band
    roads = _near(roads, outline)
    best = _search(outline, compounds, buildings, roads, band, hi, parts, seed, tries, cells)
    if best[0][0] > 0 and lo > 1:
        second = _search(outline, compounds, buildings, roads, band, lo - 1, parts, seed, tries, cells)
        if second[0][0] < best[0][0]:
            best = second
    score, part, k, s, atoms, graph, weights, ceiling = best
    notes = _explain(atoms, part, weights, lo, hi)
    if ceiling < hi:
        opened = sorted({a.compound for a in atoms if a.kind == "building"
                         and a.compound is not None})
        notes.append(
            f"keeping every compound of up to {hi} households whole left parts outside the band, "
            f"so compounds of {lo}-{hi} households were opened where needed ({len(opened)} opened)"
        )
    return SplitResult(_parts(atoms, part, weights, k), atoms, part, k, s, _cut_cost(graph, part), notes)


def _near(roads: list, outline) -> list:
    """Only the roads that reach into the area (a district's network is large)."""
    if not roads:
        return []
    arr = np.asarray(roads, dtype=object)
    hits = shapely.STRtree(arr).query(outline.buffer(ROAD_TOLERANCE_M), predicate="intersects")
    return list(arr[np.sort(hits)])


def _search(outline, compounds, buildings, roads, band, ceiling, parts, seed, tries, cells=None):
    lo, hi = band
    atoms = make_atoms(outline, compounds, buildings, roads, ceiling, cells)
    graph = build_graph(atoms, roads)
    weights = np.array([a.households for a in atoms], dtype=float)
    total = int(weights.sum())
    if parts:
        ks = [parts]
    else:
        # fewer whole pieces than the band asks for parts (an entrance over the ceiling):
        # as many parts as there are pieces is the smallest deviation
        ks = list(dict.fromkeys(min(k, len(atoms)) for k in part_counts(total, lo, hi)))
    connected = len(_components(graph)) == 1
    best = None
    runs = 0
    for t in range(tries):
        for k in ks:
            if k > len(atoms):
                continue
            s = seed * 1000 + t
            part = _metis(graph, weights, k, s, connected, jitter=0.0 if t == 0 else 0.3)
            part = _fill_empty(graph, _make_contiguous(graph, part, weights), weights, k)
            part = refine(graph, weights, part, int(part.max()) + 1, lo, hi)
            part = _relabel(_make_contiguous(graph, part, weights))
            kk = int(part.max()) + 1
            score = _score(graph, weights, part, kk, lo, hi)
            runs += 1
            if best is None or score < best[0]:
                best = (score, part, kk, s, atoms, graph, weights, ceiling)
        if best is not None and best[0][:2] == (0.0, 0) and t >= 1:
            break  # every target met twice over the candidate counts: good enough
    if best is None:
        raise Infeasible(
            f"the area holds only {len(atoms)} whole compounds or buildings; cannot make {ks[0]} parts"
        )
    return best


def _score(graph: Graph, weights: np.ndarray, part: np.ndarray, k: int, lo: int, hi: int) -> tuple:
    """Households outside the band first, then quality targets missed, then the cut cost."""
    tot = np.bincount(part, weights=weights, minlength=k)
    area, perim = _shape(graph, part, k)
    pp = _pp(area, perim)
    cut = part[graph.pairs[:, 0]] != part[graph.pairs[:, 1]] if len(graph.pairs) else np.zeros(0, bool)
    length = float(graph.pair_length[cut].sum())
    guided = float(graph.pair_guided[cut].sum()) / length if length else 1.0
    # a little margin over the targets (0.3, 0.5, 70 %): the store's WGS84 round trip moves them a hair
    misses = int(pp.min() < 0.32) + int(pp.mean() < 0.52) + int(guided < 0.72)
    return (float(_penalty(tot, lo, hi).sum()), misses, _cut_cost(graph, part))


def _relabel(part: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(part, return_inverse=True)
    return inverse.astype(np.int64)


def _parts(atoms: list[Atom], part: np.ndarray, weights: np.ndarray, k: int) -> list[Part]:
    out = []
    for p in range(k):
        idx = np.flatnonzero(part == p)
        geom = shapely.coverage_union_all([atoms[i].territory for i in idx])
        out.append(Part(geom, int(weights[idx].sum()), idx.tolist(),
                        [m for i in idx for m in atoms[i].members]))
    # number west to east, then north to south (rows as tall as a typical part)
    if out:
        cells = np.array([p.geom.point_on_surface().coords[0] for p in out])
        row_h = max(math.sqrt(sum(p.geom.area for p in out) / len(out)), 1.0)
        order = sorted(range(len(out)), key=lambda i: (-math.floor(cells[i][1] / row_h), cells[i][0]))
        out = [out[i] for i in order]
    return out


def _describe(atom: Atom) -> tuple[str, str]:
    """What an indivisible piece is, for a note: ('entrance 2 of building X', 'an entrance')."""
    if len(atom.members) == 1:
        code = atom.members[0]
        if "#" in code:
            building, entrance = code.rsplit("#", 1)
            return f"entrance {entrance} of building {building}", "an entrance"
        return f"building {code}", "a building"
    return f"{atom.kind} {atom.key}", f"a {atom.kind}"


def _explain(atoms: list[Atom], part: np.ndarray, weights: np.ndarray, lo: int, hi: int) -> list[str]:
    notes = []
    for p in np.unique(part):
        idx = np.flatnonzero(part == p)
        tot = int(weights[idx].sum())
        if lo <= tot <= hi:
            continue
        biggest = max(idx, key=lambda i: weights[i])
        if weights[biggest] > hi:
            what, kind = _describe(atoms[biggest])
            notes.append(
                f"a part holds {tot} households, above {hi}: {what} alone has "
                f"{atoms[biggest].households} households and a unit is never drawn through {kind}"
            )
        else:
            side = "below" if tot < lo else "above"
            notes.append(
                f"a part holds {tot} households, {side} the band {lo}-{hi}: whole compounds and "
                f"buildings could not be grouped closer to it"
            )
    return notes
