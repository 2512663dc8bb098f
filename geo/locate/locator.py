"""Every level's index over the boundaries valid at one time, and the chain rule.

The boundary rule of each level is geo/locate/index.py's. The chain rule: the levels are
asked from the finest (small neighbourhood, grid, community, street), and the first unit
that holds the point sets itself and its parents (a small neighbourhood sets its grid,
compound, community and street). Finer levels that hold nothing there are then widened
from the coarsest down, each to the nearest of its units within 1 cm *that lies in the unit
chosen above it*: a hairline gap between two grids of a community is filled, but widening
never takes a point out of a unit that holds it. Where no level holds the point (the outer
edge of the covered area), the widening starts unrestricted at the coarsest level found.
Compounds come from the neighbourhood, else from the compound holding the point, else the
nearest within 1 cm lying in the point's community. Buildings are looked up wherever
something holds the point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geo.locate.index import MAX_CELLS, LevelIndex
from geo.units import levels


@dataclass
class Units:
    """The units of one level as arrays (index i is one unit)."""

    ids: np.ndarray
    codes: Sequence[str]
    names: Sequence[str]
    versions: np.ndarray
    chain: dict[str, np.ndarray]  # parent level -> parent unit id (0 where none)
    id_order: np.ndarray | None = None  # argsort of ids: where each id is, by binary search

    def positions(self, unit_ids: np.ndarray) -> np.ndarray:
        """The index of each unit id in this level (-1 where it is not here)."""
        unit_ids = np.asarray(unit_ids, dtype=np.int64)
        if len(self.ids) == 0 or len(unit_ids) == 0:
            return np.full(len(unit_ids), -1, dtype=np.int64)
        if self.id_order is None:
            self.id_order = np.argsort(self.ids, kind="stable")
        ordered = self.ids[self.id_order]
        pos = np.clip(np.searchsorted(ordered, unit_ids), 0, len(ordered) - 1)
        return np.where(ordered[pos] == unit_ids, self.id_order[pos], -1).astype(np.int64)


class Locator:
    """Every level's index over the boundaries valid at one time."""

    CHAIN_ORDER = ("neighbourhood", "grid", "community", "street")

    def __init__(self, units: dict[str, Units], indexes: dict[str, LevelIndex],
                 parent_index: dict[tuple[str, str], np.ndarray], generation: int | None = None):
        self.generation = generation
        self.units = units
        self.indexes = indexes
        self._ancestors = {level: levels.ancestors(level) for level in levels.LEVELS}
        self._parent_index = parent_index  # (level, parent level) -> index of each unit's parent
        # buildings are looked up only where a street holds the point, if there are streets at
        # all (a patch over part of the city is told whether the city has any)
        self.any_streets = len(units["street"].ids) > 0

    @classmethod
    def build(cls, rows_by_level: dict[str, list[dict[str, Any]]], generation: int | None = None,
              cells_per_unit: int | None = None) -> Locator:
        """Every level's index over these rows (unit_id, code, name, version, the parent ids, geom).
        With `cells_per_unit`, each level's raster holds at most that many cells per unit (at
        least 65,536): for patches, whose few units may lie all over a city."""
        units: dict[str, Units] = {}
        indexes: dict[str, LevelIndex] = {}
        for level in levels.LEVELS:
            rows = rows_by_level.get(level, [])
            ids = np.array([r["unit_id"] for r in rows], dtype=np.int64)
            units[level] = Units(
                ids=ids,
                codes=[r["code"] for r in rows],
                names=[r["name"] for r in rows],
                versions=np.array([r["version"] for r in rows], dtype=np.int64),
                chain={p: np.array([r.get(f"{p}_id") or 0 for r in rows], dtype=np.int64)
                       for p in levels.ancestors(level)},
                id_order=np.argsort(ids, kind="stable"),
            )
            geoms = np.array([r["geom"] for r in rows], dtype=object)
            budget = MAX_CELLS if cells_per_unit is None else max(65_536, cells_per_unit * len(rows))
            indexes[level] = LevelIndex.build(level, geoms, units[level].codes, max_cells=min(budget, MAX_CELLS))
        parent_index: dict[tuple[str, str], np.ndarray] = {}
        for level in levels.LEVELS:
            for parent in levels.ancestors(level):
                parent_index[(level, parent)] = units[parent].positions(units[level].chain[parent])
        return cls(units, indexes, parent_index, generation)

    def size(self) -> dict[str, int]:
        return {level: len(u.ids) for level, u in self.units.items()}

    def locate_one(self, x: float, y: float) -> dict[str, int]:
        """`locate` for a single point (same rules, same answer)."""
        out = dict.fromkeys(levels.LEVELS, -1)
        anchor: str | None = None  # the finest level set so far
        widened: list[tuple[str, int]] = []  # finer levels holding nothing, and their nearest unit
        for level in self.CHAIN_ORDER:
            hit, near = self.indexes[level].find_one(x, y)
            if hit < 0:
                continue
            if not near:
                self._set_one(out, level, hit)
                anchor = level
                break
            widened.append((level, hit))
        for level, hit in reversed(widened):  # the coarsest first, each inside the unit above it
            if anchor is not None:
                within = self._parent_index[(level, anchor)]
                if within[hit] != out[anchor]:
                    hit = self.indexes[level].find_one(x, y, within, out[anchor])[0]
            if hit >= 0:
                self._set_one(out, level, hit)
                anchor = level
        if out["compound"] < 0 and out["community"] >= 0:
            compounds = self.indexes["compound"]
            hit, near = compounds.find_one(x, y)
            within = self._parent_index[("compound", "community")]
            if near and within[hit] != out["community"]:
                hit = compounds.find_one(x, y, within, out["community"])[0]
            out["compound"] = hit
        if out["street"] >= 0 or not self.any_streets:
            out["building"] = self.indexes["building"].lookup_one(x, y)
        return out

    def _set_one(self, out: dict[str, int], level: str, unit: int) -> None:
        out[level] = unit
        for parent in self._ancestors[level]:
            out[parent] = int(self._parent_index[(level, parent)][unit])

    def _set(self, out: dict[str, np.ndarray], level: str, pts: np.ndarray, units: np.ndarray) -> None:
        out[level][pts] = units
        for parent in self._ancestors[level]:
            out[parent][pts] = self._parent_index[(level, parent)][units]

    def locate(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Index into self.units[level] for every level and point (-1 where none)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        m = len(x)
        out = {level: np.full(m, -1, dtype=np.int64) for level in levels.LEVELS}
        anchor = np.full(m, -1, dtype=np.int64)  # the finest level set so far (its place in CHAIN_ORDER)
        widened: list[tuple[int, np.ndarray, np.ndarray]] = []
        todo = np.arange(m)
        # the finest level holding the point sets the chain above it
        for k, level in enumerate(self.CHAIN_ORDER):
            if len(todo) == 0:
                break
            hit, near = self.indexes[level].find(x[todo], y[todo])
            held = (hit >= 0) & ~near
            self._set(out, level, todo[held], hit[held])
            anchor[todo[held]] = k
            if near.any():
                widened.append((k, todo[near], hit[near]))
            todo = todo[~held]
        for k, pts, hit in reversed(widened):  # the coarsest first, each inside the unit above it
            self._widen(out, anchor, k, x, y, pts, hit)
        # compounds: from the neighbourhood where there is one, else looked up (compounds tile
        # communities: widened only to one of the point's community)
        need = np.flatnonzero((out["compound"] < 0) & (out["community"] >= 0))
        if len(need):
            compounds = self.indexes["compound"]
            hit, near = compounds.find(x[need], y[need])
            if near.any():
                within = self._parent_index[("compound", "community")]
                wrong = np.flatnonzero(near & (within[np.maximum(hit, 0)] != out["community"][need]))
                if len(wrong):
                    hit[wrong] = compounds.find(x[need[wrong]], y[need[wrong]], within,
                                                out["community"][need[wrong]])[0]
            out["compound"][need] = hit
        # buildings: looked up everywhere something holds the point
        some = np.flatnonzero(out["street"] >= 0) if self.any_streets else np.arange(m)
        if len(some):
            out["building"][some] = self.indexes["building"].lookup(x[some], y[some])
        return out

    def _widen(self, out: dict[str, np.ndarray], anchor: np.ndarray, k: int, x: np.ndarray, y: np.ndarray,
               pts: np.ndarray, hit: np.ndarray) -> None:
        """Points `pts` inside no unit of level CHAIN_ORDER[k], `hit` the nearest within 1 cm: each
        takes the nearest lying in the unit set above it (its anchor), if any, and sets its chain."""
        level = self.CHAIN_ORDER[k]
        for a in np.unique(anchor[pts]).tolist():
            sel = anchor[pts] == a
            p, h = pts[sel], hit[sel]
            if a >= 0:
                above = self.CHAIN_ORDER[a]
                within = self._parent_index[(level, above)]
                wrong = np.flatnonzero(within[h] != out[above][p])
                if len(wrong):
                    h[wrong] = self.indexes[level].find(x[p[wrong]], y[p[wrong]], within, out[above][p[wrong]])[0]
            got = h >= 0
            self._set(out, level, p[got], h[got])
            anchor[p[got]] = k
