"""Refinement of a partition: boundary atoms move between neighbouring parts, never
disconnecting a part, until every part is inside the band; then moves that make parts more
compact, then moves that shorten the cut, never leaving the band.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from geo.planning.graph import Graph, Measure, band_penalty, part_shapes, polsby_popper, stays_connected

COMPACT_ENOUGH = 0.5  # Polsby-Popper above which refinement stops lifting a part
COMPACT_FLOOR = 0.35   # cheaper-cut moves never push a part below this

# accept(u, p, q, dpen, dcut, pp_p, pp_q): whether atom u may move from part p to part q
Accept = Callable[[int, int, int, float, float, float, float], bool]


class _State:
    """A partition with running totals, so a move is judged in O(degree)."""

    def __init__(self, graph: Graph, weights: np.ndarray, part: np.ndarray, k: int, lo: int, hi: int):
        self.g, self.w, self.part, self.k, self.lo, self.hi = graph, weights, part.copy(), k, lo, hi
        self.total = np.bincount(self.part, weights=weights, minlength=k).astype(float)
        self.area, self.perim = part_shapes(graph, self.part, k)
        self.size = np.bincount(self.part, minlength=k)

    def pen(self, t: Measure) -> Measure:
        return band_penalty(t, self.lo, self.hi)

    def effect(self, u: int, q: int) -> tuple[float, float, float, float, float, float]:
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
        pp_p = polsby_popper(self.area[p] - g.area[u], perim_p) if self.size[p] > 1 else 0.0
        pp_q = polsby_popper(self.area[q] + g.area[u], perim_q)
        return dpen, dcut, float(pp_p), float(pp_q), perim_p, perim_q

    def pp(self, p: int) -> float:
        return float(polsby_popper(self.area[p], self.perim[p]))

    def can_leave(self, u: int) -> bool:
        return self.size[self.part[u]] > 1 and stays_connected(self.g, self.part, u)

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


def _near_bad(st: _State, bad: set[int]) -> Iterator[tuple[int, int, set[int]]]:
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
    for _ in range(max_moves):
        bad = set(np.flatnonzero(st.pen(st.total) > 0).tolist())
        if not bad:
            return
        best = None
        for u, _p, others in _near_bad(st, bad):
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
    w = st.w
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


def _sweep(st: _State, accept: Accept, passes: int) -> None:
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


def _lift_least_compact(st: _State) -> bool:
    """One move that lifts the least compact part it can: of the three least compact parts
    below COMPACT_ENOUGH, worst first, the first that has a helpful move gets its best one.
    True if an atom moved."""
    pps = polsby_popper(st.area, st.perim)
    order = np.argsort(pps)
    for worst in order[:3].tolist():
        if pps[worst] >= COMPACT_ENOUGH:
            break
        best = _best_lift(st, pps, worst)
        if best is not None:
            st.move(best[2], best[3], best[4], best[5])
            return True
    return False


def _best_lift(st: _State, pps: np.ndarray, worst: int) -> tuple[float, float, int, int, float, float] | None:
    """The best move of an atom out of part `worst`, or into it from a neighbour: the one that
    raises the lesser Polsby-Popper of the two parts most (by more than 0.005), then the
    cheapest cut; never raising the band penalty nor disconnecting a part. None if no move
    helps; else (-gain, cut change, atom, target part, perimeter of its old part, of the new)."""
    best = None
    for u in range(st.g.n):
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
    return best


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
        if not _lift_least_compact(st):
            break
    # 2b. raise the mean: moves that make the two parts more compact together
    def more_compact(u: int, p: int, q: int, dpen: float, dcut: float, pp_p: float, pp_q: float) -> bool:
        now_p, now_q = st.pp(p), st.pp(q)
        return (dpen <= 0 and pp_p + pp_q > now_p + now_q + 0.01
                and min(pp_p, pp_q) >= min(COMPACT_FLOOR, now_p, now_q))

    # 3. cheaper cuts that keep every part in the band and no less compact than the floor
    def cheaper(u: int, p: int, q: int, dpen: float, dcut: float, pp_p: float, pp_q: float) -> bool:
        return dcut < -1e-9 and dpen <= 0 and min(pp_p, pp_q) >= min(COMPACT_FLOOR, st.pp(p), st.pp(q))

    _sweep(st, more_compact, passes=2)
    _sweep(st, cheaper, passes=3)
    return st.part
