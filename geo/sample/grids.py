"""The grids of a sample district's community: its compounds cut into pieces a grid takes
whole (a compound, or one row of buildings of a big compound), runs of pieces of ~300-500
households drawn at the least cost, and the runs that fell apart mended."""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Polygon

from geo.sample.layout import Rec

GRID_MAX = 500
GRID_MIN = 300
PIECE_MAX = 220  # a compound above this is cut into rows of buildings for grids


def _pieces(comm: Rec, block_info: dict[tuple[int, int], Rec]) -> list[Rec]:
    """The community cut into pieces a grid takes whole, in an order where each
    piece touches the one before it (so a run of pieces is contiguous)."""
    blocks = comm["blocks"]
    pieces = []
    rightward = True
    pos = "bottom"  # where, vertically, the last piece touched the next compound
    for k, block in enumerate(blocks):
        nxt = blocks[k + 1] if k + 1 < len(blocks) else None
        prev = blocks[k - 1] if k else None
        if nxt is not None and nxt[1] == block[1]:
            rightward = nxt[0] > block[0]
        elif prev is not None and prev[1] == block[1]:
            rightward = block[0] > prev[0]
        elif prev is not None:
            rightward = not rightward
        if prev is not None and prev[1] != block[1]:
            pos = "bottom"  # entered from below
        in_block = block_info[block]["compounds"]
        for comp in (in_block if rightward else in_block[::-1]):
            if comp["households"] > PIECE_MAX and len(comp["rows"]) > 1:
                rows = comp["rows"] if pos != "top" else comp["rows"][::-1]
                for row in rows:
                    pieces.append({"comp": comp, "rows": [row], "households": row["households"],
                                   "quad": row["quad"]})
                pos = "top" if pos != "top" else "bottom"
            else:
                pieces.append({"comp": comp, "rows": list(comp["rows"]),
                               "households": comp["households"], "quad": comp["quad"]})
                pos = "any" if pos == "any" else pos
    return pieces


def draw_grids(rng: np.random.Generator, comm: Rec, block_info: dict[tuple[int, int], Rec]) -> list[list[Rec]]:
    """Group the community's pieces into grids of ~300-500 households, each contiguous."""
    pieces = _pieces(comm, block_info)
    for piece in pieces:
        piece["geom"] = Polygon(piece["quad"])
    touches = [True] + [
        a["geom"].buffer(0.05, quad_segs=1).intersection(b["geom"]).area > 0.05
        for a, b in zip(pieces, pieces[1:], strict=False)
    ]
    target = float(rng.uniform(400, 440))
    # a run that turned a corner badly falls apart: each part becomes a grid of its own,
    # and crumbs join the neighbour they share most boundary with
    return _join_crumbs(_split_apart(_cheapest_runs(pieces, touches, target)))


def _cheapest_runs(pieces: list[Rec], touches: list[bool], target: float) -> list[list[Rec]]:
    """The pieces cut into runs of the least total cost, in order (a run is a grid)."""
    n = len(pieces)
    hh = np.concatenate([[0], np.cumsum([p["households"] for p in pieces])])

    def cost(i: int, j: int) -> float:
        """Cost of one grid made of pieces i..j-1."""
        if not all(touches[i + 1:j]):
            return 1e6
        total: float = hh[j] - hh[i]
        if GRID_MIN <= total <= GRID_MAX:
            return ((total - target) / 100.0) ** 2
        return 10.0 + (GRID_MIN - total if total < GRID_MIN else total - GRID_MAX) / 10.0

    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            if hh[j] - hh[i] > 3 * GRID_MAX:
                break
            c = best[i] + cost(i, j)
            if c < best[j]:
                best[j], cut[j] = c, i
    grids: list[list[Rec]] = []
    j = n
    while j > 0:
        grids.append(pieces[cut[j]:j])
        j = cut[j]
    grids.reverse()
    return grids


def _split_apart(grids: list[list[Rec]]) -> list[list[Rec]]:
    """Each grid whose pieces make more than one polygon split into a grid per polygon (a
    piece goes to the polygon nearest its representative point)."""
    out: list[list[Rec]] = []
    for grid in grids:
        union = shapely.union_all([p["geom"] for p in grid], grid_size=0.001)
        if union.geom_type == "Polygon":
            out.append(grid)
            continue
        parts = list(union.geoms)
        groups: list[list[Rec]] = [[] for _ in parts]
        for piece in grid:
            probe = piece["geom"].representative_point()
            k = int(np.argmin([part.distance(probe) for part in parts]))
            groups[k].append(piece)
        out.extend(g for g in groups if g)
    return out


def _join_crumbs(out: list[list[Rec]]) -> list[list[Rec]]:
    """Grids of fewer than GRID_MIN // 2 households joined, one at a time, to the grid they
    share the most boundary with (more than 0.5 m); `out` itself, changed."""
    changed = True
    while changed and len(out) > 1:
        changed = False
        for k, grid in enumerate(out):
            hh = sum(p["households"] for p in grid)
            if hh >= GRID_MIN // 2:
                continue
            mine = shapely.union_all([p["geom"] for p in grid], grid_size=0.001)
            best: int | None = None
            best_len = 0.5
            for j, other in enumerate(out):
                if j == k:
                    continue
                theirs = shapely.union_all([p["geom"] for p in other], grid_size=0.001)
                shared = mine.boundary.intersection(theirs.boundary).length
                if shared > best_len:
                    best, best_len = j, shared
            if best is not None:
                out[best].extend(grid)
                del out[k]
                changed = True
                break
    return out
