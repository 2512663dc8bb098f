"""Per-unit incident statistics from counted rows: by state and category, overdue, resolved,
resolution rate (of those not rejected or duplicate) and median hours to resolve.

Incidents count in the units they were assigned to, so closed ones keep their old units.
The counting is SQL's (geo/db/stats.py); this module checks the question and shapes the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from geo.errors import InvalidInput
from geo.incidents.lifecycle import DROPPED_STATES, RESOLVED_STATES
from geo.units.levels import STATS_LEVELS


def check(level: str, start: datetime, end: datetime) -> None:
    if level not in STATS_LEVELS:
        raise InvalidInput(f"stats are kept per {', '.join(STATS_LEVELS)}, not per {level!r}")
    if end <= start:
        raise InvalidInput("'to' must come after 'from'")


def per_unit(counts: Iterable[tuple[int, str, str, int, int]], medians_s: Mapping[int, float],
             names: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Units (sorted by code) from rows (unit id, state, category, count, overdue), median seconds
    to resolve per unit, and each unit's code and name."""
    units: dict[int, dict[str, Any]] = {}
    for unit_id, state, category, n, overdue in counts:
        unit = units.setdefault(unit_id, {"unit_id": unit_id, "total": 0, "overdue": 0, "resolved": 0,
                                          "counted": 0, "by_state": {}, "by_category": {}})
        unit["total"] += n
        unit["overdue"] += overdue
        unit["resolved"] += n if state in RESOLVED_STATES else 0
        unit["counted"] += 0 if state in DROPPED_STATES else n
        unit["by_state"][state] = unit["by_state"].get(state, 0) + n
        unit["by_category"][category] = unit["by_category"].get(category, 0) + n
    for unit in units.values():
        counted = unit.pop("counted")
        unit["resolution_rate"] = round(unit["resolved"] / counted, 4) if counted else None
        median_s = medians_s.get(unit["unit_id"])
        unit["median_hours_to_resolve"] = None if median_s is None else round(median_s / 3600, 2)
        if unit["unit_id"] in names:
            unit.update(code=names[unit["unit_id"]]["code"], name=names[unit["unit_id"]]["name"])
    return sorted(units.values(), key=lambda u: u.get("code", ""))
