"""What two point indexes must agree on, for the tests that compare an index following
commits (geo/locate/layered.py) with one built afresh."""

from __future__ import annotations

from typing import Any

import numpy as np


def answers(index: Any, x: np.ndarray, y: np.ndarray, levels: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Per point: each level's unit (id, code, name, version), the grids within 20 m (ids) and
    the distance to the grid's boundary."""
    found = index.locate(x, y)
    grids = index.indexes["grid"]
    near = grids.near(x, y, 20.0, found["grid"])
    distance = grids.distance_to_boundary(x, y, found["grid"])
    rows = []
    for k in range(len(x)):
        chain = []
        for level in levels:
            i = int(found[level][k])
            u = index.units[level]
            chain.append(None if i < 0 else (int(u.ids[i]), u.codes[i], u.names[i], int(u.versions[i])))
        rows.append((*chain, sorted(int(index.units["grid"].ids[j]) for j in near[k]),
                     None if np.isnan(distance[k]) else round(float(distance[k]), 6)))
    return rows


def one_by_one(index: Any, x: np.ndarray, y: np.ndarray, levels: tuple[str, ...]) -> list[tuple[int | None, ...]]:
    """Per point, asked one at a time (the GET /locate path): each level's unit id."""
    out = []
    for px, py in zip(x.tolist(), y.tolist(), strict=True):
        found = index.locate_one(px, py)
        out.append(tuple(None if found[lv] < 0 else int(index.units[lv].ids[found[lv]]) for lv in levels))
    return out
