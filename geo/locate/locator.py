"""Every level's index over the boundaries valid at one time, and the chain rule.

A point takes its finest unit first: a small neighbourhood sets its grid, compound,
community and street; otherwise the grid sets its community and street; and so on up.
Compounds are looked up where no neighbourhood gave one, buildings wherever something
holds the point. The boundary rule of each level is geo/locate/index.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from geo.locate.index import LevelIndex
from geo.units import levels


@dataclass
class Units:
    """The units of one level as arrays (index i is one unit)."""

    ids: np.ndarray
    codes: list[str]
    names: list[str]
    versions: np.ndarray
    chain: dict[str, np.ndarray]  # parent level -> parent unit id (0 where none)


class Locator:
    """Every level's index over the boundaries valid at one time."""

    CHAIN_ORDER = ("neighbourhood", "grid", "community", "street")

    def __init__(self, rows_by_level: dict[str, list[dict[str, Any]]], generation: int | None = None):
        self.generation = generation
        self.units: dict[str, Units] = {}
        self.indexes: dict[str, LevelIndex] = {}
        for level in levels.LEVELS:
            rows = rows_by_level.get(level, [])
            self.units[level] = Units(
                ids=np.array([r["unit_id"] for r in rows], dtype=np.int64),
                codes=[r["code"] for r in rows],
                names=[r["name"] for r in rows],
                versions=np.array([r["version"] for r in rows], dtype=np.int64),
                chain={p: np.array([r.get(f"{p}_id") or 0 for r in rows], dtype=np.int64)
                       for p in levels.ancestors(level)},
            )
            geoms = np.array([r["geom"] for r in rows], dtype=object)
            self.indexes[level] = LevelIndex.build(level, geoms, self.units[level].codes)
        # parent id -> index in the parent level, for each (level, parent level)
        self._parent_index: dict[tuple[str, str], np.ndarray] = {}
        for level in levels.LEVELS:
            for parent in levels.ancestors(level):
                pid = self.units[parent].ids
                order = np.argsort(pid)
                wanted = self.units[level].chain[parent]
                pos = np.searchsorted(pid[order], wanted)
                pos = np.clip(pos, 0, max(len(pid) - 1, 0))
                found = (len(pid) > 0) & (pid[order][pos] == wanted) if len(pid) else np.zeros(len(wanted), bool)
                idx = np.where(found, order[pos] if len(pid) else -1, -1)
                self._parent_index[(level, parent)] = idx.astype(np.int64)

    def size(self) -> dict[str, int]:
        return {level: len(u.ids) for level, u in self.units.items()}

    def locate_one(self, x: float, y: float) -> dict[str, int]:
        """`locate` for a single point (same rules, same answer)."""
        out = dict.fromkeys(levels.LEVELS, -1)
        for level in self.CHAIN_ORDER:
            hit = self.indexes[level].lookup_one(x, y)
            if hit >= 0:
                out[level] = hit
                for parent in levels.ancestors(level):
                    out[parent] = int(self._parent_index[(level, parent)][hit])
                break
        if out["compound"] < 0 and out["community"] >= 0:
            out["compound"] = self.indexes["compound"].lookup_one(x, y)
        if out["street"] >= 0 or not len(self.units["street"].ids):
            out["building"] = self.indexes["building"].lookup_one(x, y)
        return out

    def locate(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        """Index into self.units[level] for every level and point (-1 where none)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        m = len(x)
        out = {level: np.full(m, -1, dtype=np.int64) for level in levels.LEVELS}
        todo = np.arange(m)
        # the finest level found sets the chain above it
        for level in self.CHAIN_ORDER:
            if len(todo) == 0:
                break
            hit = self.indexes[level].lookup(x[todo], y[todo])
            got = hit >= 0
            where = todo[got]
            out[level][where] = hit[got]
            for parent in levels.ancestors(level):
                out[parent][where] = self._parent_index[(level, parent)][hit[got]]
            todo = todo[~got]
        # compounds: from the neighbourhood where there is one, else looked up (compounds tile
        # communities, so this agrees with the community except on a hairline boundary)
        need = np.flatnonzero((out["compound"] < 0) & (out["community"] >= 0))
        if len(need):
            hit = self.indexes["compound"].lookup(x[need], y[need])
            out["compound"][need] = hit
        # buildings: looked up everywhere something holds the point
        some = np.flatnonzero(out["street"] >= 0) if len(self.units["street"].ids) else np.arange(m)
        if len(some):
            out["building"][some] = self.indexes["building"].lookup(x[some], y[some])
        return out
