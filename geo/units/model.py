"""A unit on its way into the store, and the checks every one passes first.

`prepare` checks what a unit says of itself (code, name, counts, text that PostgreSQL can
hold, geometry in the plausible area, repaired within 0.1 % or refused); where it lies
among the stored units is geo/units/containment.py's, and writing it geo/usecases/boundaries.py's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from geo.coords.points import Area
from geo.errors import InvalidInput
from geo.units import codes, geometry

MAX_COUNT = 2**31 - 1
MAX_NAME = 200
Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class UnitInput:
    """One unit to write, its geometry in WGS84."""

    level: str
    code: str
    name: str
    geom: Any
    households: int | None = None
    population: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    parent_codes: dict[str, str] = field(default_factory=dict)
    label: str = ""
    keep: set[str] = field(default_factory=set)  # fields to keep from the stored version
    unit_id: int | None = None  # the stored unit this is a new version of, when its code may change
    follow_parent: bool = False  # its code follows the parent it is found in (geo/units/codes.py rehome)


@dataclass
class WriteSummary:
    """What a write did: the change set it opened (None: nothing changed) and the unit ids."""

    change_id: int | None
    created: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    # codes that followed their units to a new parent: {level, unit_id, from, to}
    recoded: list[dict[str, Any]] = field(default_factory=list)
    # what followed the change (geo/usecases/boundaries.py follow): workers and incidents moved
    followed: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int | None]:
        return {
            "change_id": self.change_id,
            "created": len(self.created),
            "changed": len(self.changed),
            "unchanged": len(self.unchanged),
            "recoded": len(self.recoded),
        }


def check_text(label: str, what: str, text: str) -> None:
    if "\x00" in text or "\\u0000" in text:
        raise InvalidInput(f"{label}: {what} contains a NUL character, which cannot be stored")


def prepare(units: list[UnitInput], level: str, area: Area) -> list[UnitInput]:
    """Check codes and geometry of units to write; raise InvalidInput on the first problem."""
    seen: dict[str, str] = {}
    for i, unit in enumerate(units):
        unit.label = unit.label or f"{level} {unit.code or f'#{i + 1}'}"
        unit.code = codes.check(level, unit.code, unit.label)
        if unit.code in seen:
            raise InvalidInput(f"{unit.label}: code {unit.code} appears twice (also {seen[unit.code]})")
        seen[unit.code] = unit.label
        unit.name = (unit.name or "").strip() or unit.code
        if len(unit.name) > MAX_NAME:
            raise InvalidInput(f"{unit.label}: name is longer than {MAX_NAME} characters")
        check_text(unit.label, "name", unit.name)
        check_text(unit.label, "attributes", json.dumps(unit.attributes, ensure_ascii=False, default=str))
        for attr in ("households", "population"):
            value = getattr(unit, attr)
            if value is not None and (not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_COUNT):
                raise InvalidInput(f"{unit.label}: {attr} must be a whole number from 0 to {MAX_COUNT}, not {value!r}")
    geoms = np.array([u.geom for u in units], dtype=object)
    missing = [u.label for u in units if u.geom is None or u.geom.is_empty]
    if missing:
        raise InvalidInput(f"{missing[0]}: geometry is missing or empty")
    geometry.check_coordinates(geoms, [u.label for u in units], area)
    for unit in units:
        unit.geom = geometry.normalise(unit.geom, level, unit.label)
    return units


def same_shape(a: Any, b: Any) -> bool:
    """Equal to ~0.1 mm, whatever the ring orientation or starting vertex."""
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), 1e-9))


def count(value: Any) -> int | None:
    """A household or population count as the database takes it."""
    return None if value is None else int(value)
