"""Per-unit incident statistics from counted rows: by state and category, overdue, resolved,
resolution rate (of those not rejected or duplicate) and median hours to resolve.

Incidents are assigned to the units that held them, so closed ones keep units a later change
retired. The answer is per current unit by default (`retired="rollup"`): a retired unit's
incidents count in the current units it became by lineage; where it became several (a split,
a redraw), each incident counts in the one its point lies in now (geo/db/stats.py). A row says
which retired units it took in (`rolled_up_from`). With `retired="separate"` every incident
counts in the unit it was assigned to, and a retired unit's row says so (`retired`,
`retired_at`). Every current unit of the level has a row, with zero counts if need be.

The counting is SQL's (geo/db/stats.py); this module checks the question and shapes the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from geo.errors import InvalidInput
from geo.incidents.lifecycle import DROPPED_STATES, RESOLVED_STATES
from geo.units.levels import STATS_LEVELS

RETIRED_MODES = ("rollup", "separate")
DEFAULT_WINDOW = timedelta(days=30)


def check(level: str, start: datetime, end: datetime, retired: str = "rollup") -> None:
    if level not in STATS_LEVELS:
        raise InvalidInput(f"stats are kept per {', '.join(STATS_LEVELS)}, not per {level!r}")
    if end <= start:
        raise InvalidInput("'to' must come after 'from'")
    if retired not in RETIRED_MODES:
        raise InvalidInput(f"retired must be {' or '.join(RETIRED_MODES)}, not {retired!r}")


def window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The window asked for: `to` defaults to now, `from` to 30 days before `to`."""
    end = now if end is None else end
    return (end - DEFAULT_WINDOW if start is None else start), end


def _empty(unit_id: int) -> dict[str, Any]:
    return {"unit_id": unit_id, "total": 0, "overdue": 0, "resolved": 0, "counted": 0, "pleased": 0, "evaluated": 0,
            "by_state": {}, "by_category": {}, "rolled_up_from": {}}


def per_unit(counts: Iterable[Sequence[Any]], medians_s: Mapping[int, float],
             names: Mapping[int, Mapping[str, Any]], *, every_current: bool = False) -> list[dict[str, Any]]:
    """Units (sorted by code) from rows (unit id, state, category, count, overdue[, the unit
    the incidents were assigned to, when rolled up into another[, rated satisfied or basically
    satisfied, rated at all]]), median seconds to resolve
    per unit, and each unit's code, name and `retired_at` (None or missing: current). With
    `every_current`, each current unit in `names` has a row even without incidents."""
    units: dict[int, dict[str, Any]] = {}
    for row in counts:
        unit_id, state, category, n, overdue = row[:5]
        unit = units.setdefault(unit_id, _empty(unit_id))
        unit["total"] += n
        unit["overdue"] += overdue
        unit["resolved"] += n if state in RESOLVED_STATES else 0
        unit["counted"] += 0 if state in DROPPED_STATES else n
        unit["by_state"][state] = unit["by_state"].get(state, 0) + n
        unit["by_category"][category] = unit["by_category"].get(category, 0) + n
        if len(row) > 7:  # residents' ratings
            unit["pleased"] += row[6]
            unit["evaluated"] += row[7]
        source = row[5] if len(row) > 5 else unit_id
        if source is not None and source != unit_id:
            unit["rolled_up_from"][source] = unit["rolled_up_from"].get(source, 0) + n
    if every_current:
        for unit_id, rec in names.items():
            if rec.get("retired_at") is None:
                units.setdefault(unit_id, _empty(unit_id))
    for unit in units.values():
        _finish(unit, medians_s, names)
    return sorted(units.values(), key=lambda u: (u.get("code", ""), u["retired"], u["unit_id"]))


def _finish(unit: dict[str, Any], medians_s: Mapping[int, float], names: Mapping[int, Mapping[str, Any]]) -> None:
    counted = unit.pop("counted")
    unit["resolution_rate"] = round(unit["resolved"] / counted, 4) if counted else None
    pleased = unit.pop("pleased")
    unit["satisfaction_rate"] = round(pleased / unit["evaluated"], 4) if unit["evaluated"] else None
    median_s = medians_s.get(unit["unit_id"])
    unit["median_hours_to_resolve"] = None if median_s is None else round(median_s / 3600, 2)
    if unit["unit_id"] in names:
        unit.update(code=names[unit["unit_id"]]["code"], name=names[unit["unit_id"]]["name"])
    retired_at = names.get(unit["unit_id"], {}).get("retired_at")
    unit.update(retired=retired_at is not None, retired_at=retired_at)
    unit["rolled_up_from"] = sorted(
        ({"unit_id": source, "code": names.get(source, {}).get("code"), "total": n,
          "retired_at": names.get(source, {}).get("retired_at")} for source, n in unit["rolled_up_from"].items()),
        key=lambda r: (r["code"] or "", r["unit_id"]))


def months(start: datetime, end: datetime, zone: str) -> list[tuple[str, datetime, datetime]]:
    """[start, end) cut at the first of each month in `zone`: (YYYY-MM, from, to) slices."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    out = []
    lo = start
    while lo < end:
        local = lo.astimezone(tz)
        first_next = (local.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)) \
            .replace(day=1)
        hi = min(end, first_next)
        out.append((f"{local:%Y-%m}", lo, hi))
        lo = hi
    return out
