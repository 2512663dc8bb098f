"""Whether proposed units tile what they replace: no gap, no overlap, nothing beyond.
Areas below TILING_TOLERANCE_M2 are rounding. Metric CRS."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from geo.coords import crs

TILING_TOLERANCE_M2 = 1.0


def problems(parts_m: np.ndarray, target_m: Any, metric: Any) -> list[str]:
    """What is wrong with `parts_m` as a tiling of `target_m` (empty when nothing is)."""
    union = shapely.union_all(parts_m)
    overlap = float(shapely.area(parts_m).sum() - union.area)
    gap = float(shapely.difference(target_m, union).area)
    spill = float(shapely.difference(union, target_m).area)
    found = []
    if gap > TILING_TOLERANCE_M2:
        where = shapely.difference(target_m, union).representative_point()
        lon, lat = crs.transform(np.array([where], dtype=object), metric, crs.WGS84)[0].coords[0]
        found.append(f"leaves a gap of {gap:,.1f} m² (near {lon:.6f}, {lat:.6f})")
    if overlap > TILING_TOLERANCE_M2:
        found.append(f"has units overlapping by {overlap:,.1f} m²")
    if spill > TILING_TOLERANCE_M2:
        found.append(f"reaches {spill:,.1f} m² beyond what it replaces")
    return found
