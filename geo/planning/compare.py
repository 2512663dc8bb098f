"""A plan against the boundaries it replaces: which households change unit, and for each
proposed unit where its households come from. Households are counted by a point on each
building (or on each replaced unit, for levels with no buildings beneath by column)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely


def flows(plan_geoms: list[Any], sources: Iterable[tuple[int, int | None, Any]]) -> dict[tuple[int, int], int]:
    """Households from each old unit into each proposed one: {(proposed index, old id): n};
    index -1 for households no proposed unit holds. `sources`: (old id, households, point)."""
    tree = shapely.STRtree(np.array(plan_geoms, dtype=object))
    out: dict[tuple[int, int], int] = {}
    for old, households, point in sources:
        hit = tree.query(point, predicate="intersects")
        new = int(hit[0]) if len(hit) else -1
        out[(new, old)] = out.get((new, old), 0) + int(households or 0)
    return out


def summary(units: list[dict[str, Any]], moved_from: dict[tuple[int, int], int], old_code: dict[int, str],
            polsby_popper: list[float]) -> tuple[list[dict[str, Any]], int, int]:
    """Per proposed unit: its households and where they come from (largest first); and the
    households that change unit and those outside every proposed unit."""
    per_unit, moved = [], 0
    for k, u in enumerate(units):
        sources = {old_code.get(o, str(o)): hh for (n, o), hh in moved_from.items() if n == k}
        kept = max(sources.values()) if sources else 0
        moved += sum(sources.values()) - kept
        per_unit.append({"seq": u["seq"], "code": u["code"], "households": u["households"],
                         "polsby_popper": polsby_popper[k] if k < len(polsby_popper) else None,
                         "from": dict(sorted(sources.items(), key=lambda kv: -kv[1]))})
    outside = sum(hh for (n, _), hh in moved_from.items() if n < 0)
    return per_unit, moved, outside
