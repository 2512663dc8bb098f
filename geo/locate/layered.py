"""An index that follows commits without a rebuild: a base and a few patches over it.

The base is the index of every unit at one boundary generation (in serving processes, a
snapshot mapped from disk: geo/locate/snapshot.py). A commit that changes k units adds a
*layer*: an `Area` (cells of about 100 m that the changed units' old and new boxes touch)
and a small `Locator` over every unit, changed or not, that meets that area at the new
generation. A point is answered by the newest layer whose area holds it, else by the base.
That answer is exact: a point's answer depends only on the units holding it or within 1 cm
of it and on their parents, and any of those that changed since a layer was made has its
boxes in a newer layer's area. The work per commit is the changed units' surroundings, not
the city.

`near` (the units within a radius) reads every part, each keeping only the units whose
current version it holds (`live`): a unit changed since the base is live in the newest
layer that changed it, and nowhere else.

A rename (new name or figures; same geometry, code and parents) adds no layer: the unit's
name and version are replaced where they are read (`relabel`).

Unit indexes of a `Layered` run through the parts in order: the base's units first, then
each layer's. `units[level]` and `indexes[level]` read them as one, like a `Locator`'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geo.locate.index import _expand
from geo.locate.locator import Locator
from geo.units import levels

CELL_DEG = 1.0 / 1024  # an area's cells: about 100 m by 108 m at 30 degrees north
AREA_PAD_DEG = 2e-5  # about 2 m around each box: a child may stand 0.5 m outside its parent
FETCH_PAD_DEG = 1e-6  # about 10 cm: every unit within 1 cm of a point in the area is fetched
_OFF = 1 << 19
_W = 1 << 20


class Area:
    """A set of cells on a fixed grid of CELL_DEG degrees (as sorted integer keys)."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        self._set: frozenset[int] | None = None

    @staticmethod
    def _key(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        keys: np.ndarray = (iy + _OFF) * _W + (ix + _OFF)
        return keys

    @classmethod
    def of_boxes(cls, boxes: np.ndarray, pad: float = AREA_PAD_DEG) -> Area:
        """The cells that boxes (n, 4: x0, y0, x1, y1 in degrees), padded by `pad`, touch."""
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
        if len(boxes) == 0:
            return cls(np.zeros(0, dtype=np.int64))
        ix0 = np.floor((boxes[:, 0] - pad) / CELL_DEG).astype(np.int64)
        iy0 = np.floor((boxes[:, 1] - pad) / CELL_DEG).astype(np.int64)
        ix1 = np.floor((boxes[:, 2] + pad) / CELL_DEG).astype(np.int64)
        iy1 = np.floor((boxes[:, 3] + pad) / CELL_DEG).astype(np.int64)
        nx, ny = ix1 - ix0 + 1, iy1 - iy0 + 1
        owner, k = _expand(np.zeros(len(boxes), dtype=np.int64), nx * ny)  # each box's cells, k = 0..n-1
        ix = ix0[owner] + k % nx[owner]
        iy = iy0[owner] + k // nx[owner]
        return cls(np.unique(cls._key(ix, iy)))

    def union(self, other: Area) -> Area:
        return Area(np.union1d(self.keys, other.keys))

    def __len__(self) -> int:
        return len(self.keys)

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if len(self.keys) == 0:
            return np.zeros(len(x), dtype=bool)
        keys = self._key(np.floor(x / CELL_DEG).astype(np.int64), np.floor(y / CELL_DEG).astype(np.int64))
        pos = np.clip(np.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
        found: np.ndarray = self.keys[pos] == keys
        return found

    def contains_one(self, x: float, y: float) -> bool:
        if self._set is None:
            self._set = frozenset(self.keys.tolist())
        return (math.floor(y / CELL_DEG) + _OFF) * _W + (math.floor(x / CELL_DEG) + _OFF) in self._set

    def boxes(self, pad: float = FETCH_PAD_DEG) -> np.ndarray:
        """The area as boxes (one per run of cells along a row), padded by `pad`."""
        if len(self.keys) == 0:
            return np.zeros((0, 4))
        iy = self.keys // _W - _OFF
        ix = self.keys % _W - _OFF
        start = np.ones(len(ix), dtype=bool)
        start[1:] = (iy[1:] != iy[:-1]) | (ix[1:] != ix[:-1] + 1)
        first = np.flatnonzero(start)
        last = np.append(first[1:] - 1, len(ix) - 1)
        return np.column_stack([ix[first] * CELL_DEG - pad, iy[first] * CELL_DEG - pad,
                                (ix[last] + 1) * CELL_DEG + pad, (iy[first] + 1) * CELL_DEG + pad])


@dataclass(frozen=True)
class Change:
    """What a layer brings: units moved (geometry, code or parents changed, new or retired:
    by level, their ids) and units relabelled (by level, id -> (name, version))."""

    moved: dict[str, np.ndarray]
    relabelled: dict[str, dict[int, tuple[str, int]]]


class Column(Sequence[Any]):
    """One column of a level's units across the parts, by combined index."""

    def __init__(self, parts: list[Any], offsets: np.ndarray, override: dict[int, Any] | None = None,
                 ids: Column | None = None) -> None:
        self.parts, self.offsets = parts, offsets
        self.override, self._ids = override or {}, ids

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _one(self, i: int) -> Any:
        if i < 0:
            i += len(self)
        if len(self.parts) == 1 and not self.override:
            return self.parts[0][i]
        p = int(np.searchsorted(self.offsets, i, side="right")) - 1
        value = self.parts[p][i - int(self.offsets[p])]
        if self.override and self._ids is not None:
            return self.override.get(int(self._ids[i]), value)
        return value

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, (int, np.integer)):
            return self._one(int(i))
        if isinstance(i, slice):
            i = np.arange(len(self))[i]
        index = np.asarray(i, dtype=np.int64)
        if not isinstance(self.parts[0], np.ndarray):  # strings: each read from its own part
            if len(self.parts) == 1:
                values = [self.parts[0][k] for k in index.tolist()]
            else:
                part = (np.searchsorted(self.offsets, index, side="right") - 1).tolist()
                offsets = self.offsets.tolist()
                values = [self.parts[p][k - offsets[p]] for p, k in zip(part, index.tolist(), strict=True)]
            if self.override and self._ids is not None:
                ids = self._ids[index].tolist()
                values = [self.override.get(u, v) for u, v in zip(ids, values, strict=True)]
            return values
        if len(self.parts) == 1:
            out = np.asarray(self.parts[0][index])
        else:
            part = np.searchsorted(self.offsets, index, side="right") - 1
            out = np.empty(len(index), dtype=self.parts[0].dtype)
            for p, values in enumerate(self.parts):
                sel = np.flatnonzero(part == p)
                out[sel] = values[index[sel] - self.offsets[p]]
        if self.override and self._ids is not None:
            ids = self._ids[index]
            for k in np.flatnonzero(np.isin(ids, list(self.override))).tolist():
                out[k] = self.override[int(ids[k])]
        return out

    def __iter__(self) -> Iterator[Any]:
        return (self._one(i) for i in range(len(self)))

    def tolist(self) -> list[Any]:
        if isinstance(self.parts[0], np.ndarray):
            values: list[Any] = self[np.arange(len(self))].tolist()
            return values
        return list(self)


@dataclass
class _LevelUnits:
    ids: Column
    codes: Column
    names: Column
    versions: Column


class _LevelIndexes:
    """A level's index over every part: distances and neighbours by combined unit index."""

    def __init__(self, layered: Layered, level: str) -> None:
        self.level = level
        self.parts = [p.indexes[level] for p in layered.parts]
        self.live = [live[level] for live in layered.live]
        self.ids = [p.units[level].ids for p in layered.parts]
        self.offsets = layered.offsets[level]

    def _part(self, unit: int) -> int:
        return int(np.searchsorted(self.offsets, unit, side="right")) - 1

    def distance_one(self, x: float, y: float, unit: int) -> float:
        if unit < 0:
            return math.nan
        p = self._part(unit)
        return self.parts[p].distance_one(x, y, unit - int(self.offsets[p]))

    def distance_to_boundary(self, x: np.ndarray, y: np.ndarray, units: np.ndarray) -> np.ndarray:
        out = np.full(len(x), np.nan)
        part = np.searchsorted(self.offsets, units, side="right") - 1
        for p, index in enumerate(self.parts):
            sel = np.flatnonzero((units >= 0) & (part == p))
            if len(sel):
                out[sel] = index.distance_to_boundary(x[sel], y[sel], units[sel] - self.offsets[p])
        return out

    def _id(self, unit: int) -> int:
        """The unit id of a combined index (-1 for none): a unit a layer holds for its
        surroundings is live elsewhere, so units are told apart by id, not by index."""
        if unit < 0:
            return -1
        p = self._part(unit)
        return int(self.ids[p][unit - int(self.offsets[p])])

    def near_one(self, x: float, y: float, radius_m: float, exclude: int) -> list[int]:
        skip = self._id(exclude)
        found: list[int] = []
        for p, index in enumerate(self.parts):
            live, ids, off = self.live[p], self.ids[p], int(self.offsets[p])
            found.extend(u + off for u in index.near_one(x, y, radius_m, -1) if live[u] and ids[u] != skip)
        return sorted(found)

    def near(self, x: np.ndarray, y: np.ndarray, radius_m: float, exclude: np.ndarray) -> list[list[int]]:
        skip = [self._id(int(u)) for u in np.asarray(exclude).tolist()]
        found: list[list[int]] = [[] for _ in range(len(x))]
        none = np.full(len(x), -1, dtype=np.int64)
        for p, index in enumerate(self.parts):
            live, ids, off = self.live[p], self.ids[p], int(self.offsets[p])
            for k, units in enumerate(index.near(x, y, radius_m, none)):
                found[k].extend(u + off for u in units if live[u] and ids[u] != skip[k])
        return [sorted(f) for f in found]


class Layered:
    """A base index and the layers of the commits since it (see the module's docstring)."""

    MAX_LAYERS = 8

    def __init__(self, parts: list[Locator], areas: list[Area], live: list[dict[str, np.ndarray]],
                 relabelled: dict[str, dict[int, tuple[str, int]]], generation: int | None,
                 any_streets: bool | None = None) -> None:
        self.parts, self.areas, self.live = parts, areas, live
        self.relabelled = relabelled
        self.generation = generation
        self.any_streets = any_streets if any_streets is not None else len(parts[0].units["street"].ids) > 0
        for part in parts[1:]:
            part.any_streets = self.any_streets
        self.offsets = {level: np.concatenate([[0], np.cumsum([len(p.units[level].ids) for p in parts])])
                        .astype(np.int64) for level in levels.LEVELS}
        self._units: dict[str, _LevelUnits] = {}
        self._indexes: dict[str, _LevelIndexes] = {}

    @classmethod
    def over(cls, base: Locator) -> Layered:
        live = {level: np.ones(len(base.units[level].ids), dtype=bool) for level in levels.LEVELS}
        return cls([base], [], [live], {}, base.generation)

    @property
    def base(self) -> Locator:
        return self.parts[0]

    @property
    def layers(self) -> int:
        return len(self.parts) - 1

    def patched_units(self) -> int:
        """How many units the layers hold (what a new base would save)."""
        return sum(sum(len(p.units[level].ids) for level in levels.LEVELS) for p in self.parts[1:])

    # -- following commits ----------------------------------------------------------------
    def advance(self, change: Change, patch: Locator | None, area: Area, generation: int) -> Layered:
        """This index after a commit: `patch` (every unit meeting `area`, at `generation`) over
        the parts, the moved units' old versions no longer live, relabelled units renamed."""
        live = [{level: arr.copy() for level, arr in part_live.items()} for part_live in self.live]
        for part, part_live in zip(self.parts, live, strict=True):
            for level, ids in change.moved.items():
                pos = part.units[level].positions(ids)
                part_live[level][pos[pos >= 0]] = False
        relabelled = {level: dict(names) for level, names in self.relabelled.items()}
        for level, ids in change.moved.items():
            for unit_id in ids.tolist():
                relabelled.get(level, {}).pop(unit_id, None)
        for level, names in change.relabelled.items():
            relabelled.setdefault(level, {}).update(names)
        parts, areas = list(self.parts), list(self.areas)
        if patch is not None and len(area):
            parts.append(patch)
            areas.append(area)
            live.append({level: np.isin(patch.units[level].ids, change.moved.get(level, np.zeros(0, np.int64)))
                         for level in levels.LEVELS})
        return Layered(parts, areas, live, relabelled, generation, self.any_streets)

    def compacted(self, patch: Locator, generation: int) -> Layered:
        """The same answers with one layer: `patch` holds every unit meeting all the layers'
        areas at `generation` (which must be this index's)."""
        area = self.total_area()
        changed = {level: np.unique(np.concatenate(
            [p.units[level].ids[~live[level]] for p, live in zip(self.parts[:1], self.live[:1], strict=True)]
            + [p.units[level].ids[live[level]] for p, live in zip(self.parts[1:], self.live[1:], strict=True)]))
            for level in levels.LEVELS}
        live_patch = {level: np.isin(patch.units[level].ids, changed[level]) for level in levels.LEVELS}
        return Layered([self.parts[0], patch], [area], [self.live[0], live_patch], self.relabelled, generation,
                       self.any_streets)

    def total_area(self) -> Area:
        area = Area(np.zeros(0, dtype=np.int64))
        for a in self.areas:
            area = area.union(a)
        return area

    # -- reading, as a Locator is read ------------------------------------------------------
    @property
    def units(self) -> dict[str, _LevelUnits]:
        for level in levels.LEVELS:
            if level not in self._units:
                off = self.offsets[level]
                ids = Column([p.units[level].ids for p in self.parts], off)
                names = self.relabelled.get(level, {})
                self._units[level] = _LevelUnits(
                    ids=ids, codes=Column([p.units[level].codes for p in self.parts], off),
                    names=Column([p.units[level].names for p in self.parts], off,
                                  {k: v[0] for k, v in names.items()}, ids),
                    versions=Column([p.units[level].versions for p in self.parts], off,
                                     {k: v[1] for k, v in names.items()}, ids))
        return self._units

    @property
    def indexes(self) -> dict[str, _LevelIndexes]:
        for level in levels.LEVELS:
            if level not in self._indexes:
                self._indexes[level] = _LevelIndexes(self, level)
        return self._indexes

    def size(self) -> dict[str, int]:
        return {level: int(self.live[0][level].sum()) + sum(int(live[level].sum()) for live in self.live[1:])
                for level in levels.LEVELS}

    def _part_of(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        part = np.zeros(len(x), dtype=np.int64)
        for j in range(len(self.areas) - 1, -1, -1):
            free = np.flatnonzero(part == 0)
            if len(free) == 0:
                break
            part[free[self.areas[j].contains(x[free], y[free])]] = j + 1
        return part

    def locate_one(self, x: float, y: float) -> dict[str, int]:
        p = 0
        for j in range(len(self.areas) - 1, -1, -1):
            if self.areas[j].contains_one(x, y):
                p = j + 1
                break
        found = self.parts[p].locate_one(x, y)
        if p == 0:
            return found
        return {level: (i + int(self.offsets[level][p]) if i >= 0 else -1) for level, i in found.items()}

    def locate(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        if len(self.parts) == 1:
            return self.parts[0].locate(x, y)
        out = {level: np.full(len(x), -1, dtype=np.int64) for level in levels.LEVELS}
        part = self._part_of(x, y)
        for p, locator in enumerate(self.parts):
            sel = np.flatnonzero(part == p)
            if len(sel) == 0:
                continue
            found = locator.locate(x[sel], y[sel])
            for level, idx in found.items():
                out[level][sel] = np.where(idx >= 0, idx + self.offsets[level][p], -1)
        return out
