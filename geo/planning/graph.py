"""The graph a split partitions: atoms sharing a boundary are joined by an edge whose weight
is the cost of cutting there, per metre: cheapest along a road, dearer across a compound
wall, dearest inside a compound. And the measures of a partition read from it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import shapely

from geo.planning.atoms import Atom

ROAD_TOLERANCE_M = 6.0  # a boundary within this of a road centre line runs along the road
COST_ROAD = 1.0   # per metre of cut
COST_WALL = 3.0
COST_INSIDE = 40.0
MIN_SHARED_M = 0.05

Measure = TypeVar("Measure", np.ndarray, float)  # one value per part, or one part's


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


def build_graph(atoms: list[Atom], roads: list[shapely.Geometry]) -> Graph:
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
                     for i, j in zip(a, b, strict=True)], dtype=bool)
    off_road = np.maximum(length - on_road, 0)
    cost = COST_ROAD * on_road + np.where(same, COST_INSIDE, COST_WALL) * off_road
    guided = np.where(same, on_road, length)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    costs: list[list[float]] = [[] for _ in range(n)]
    lengths: list[list[float]] = [[] for _ in range(n)]
    for i, j, c, ln in zip(a.tolist(), b.tolist(), cost.tolist(), length.tolist(), strict=True):
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


def components(graph: Graph, members: np.ndarray | None = None) -> list[list[int]]:
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


def band_penalty(total: Measure, lo: int, hi: int) -> Measure:
    penalty: Measure = np.maximum(total - hi, 0) + np.maximum(lo - total, 0)
    return penalty


def stays_connected(graph: Graph, part: np.ndarray, node: int) -> bool:
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


def cut_cost(graph: Graph, part: np.ndarray) -> float:
    if not len(graph.pairs):
        return 0.0
    cut = part[graph.pairs[:, 0]] != part[graph.pairs[:, 1]]
    return float(graph.pair_cost[cut].sum())


def part_shapes(graph: Graph, part: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Area and perimeter of each part, from the atoms' and their shared edges'."""
    area = np.bincount(part, weights=graph.area, minlength=k)
    perim = np.bincount(part, weights=graph.perimeter, minlength=k)
    if len(graph.pairs):
        inner = part[graph.pairs[:, 0]] == part[graph.pairs[:, 1]]
        perim -= 2 * np.bincount(part[graph.pairs[inner, 0]], weights=graph.pair_length[inner],
                                 minlength=k)
    return area, perim


def polsby_popper(area: Measure, perim: Measure) -> Measure:
    pp: Measure = 4 * math.pi * area / np.maximum(perim, 1e-9) ** 2
    return pp
