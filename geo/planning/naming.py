"""Codes and names for the units a plan draws.

A unit split into units of its own level keeps its code for the part with the most
households; the others take the first free sequences under the parent (a community code
under its street's, a grid code under its community's). Grids drawn inside a community and
small neighbourhoods drawn inside a grid (per compound) take the first free sequences,
reusing the codes of the units they replace. A code once used, even by a retired unit, is
never given to another unit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from geo.errors import InvalidInput

NUMERALS = "一二三四五六七八九十"
# (level, prefix) -> every code at that level starting with prefix, current or past
CodesInUse = Callable[[str, str], set[str]]


def free_codes(level: str, prefix: str, width: int, used: set[str], n: int) -> list[str]:
    """`n` codes prefix+NNN (width digits) not in `used`, lowest first."""
    out: list[str] = []
    seq = 1
    while len(out) < n:
        code = f"{prefix}{seq:0{width}d}"
        if code not in used:
            out.append(code)
        seq += 1
        if seq >= 10**width:
            raise InvalidInput(f"no free {level} codes left under {prefix}")
    return out


def name_parts(unit: dict[str, Any], into: str, parts: Sequence[tuple[Any, int, str | None]],
               replaces: list[dict[str, Any]], in_use: CodesInUse) -> list[dict[str, Any]]:
    """Code, name and sequence of each part (territory, households, compound) of a split of `unit`."""
    reusable = {r["code"] for r in replaces}

    def fresh(level: str, prefix: str, n: int, keep: set[str]) -> list[str]:
        return free_codes(level, prefix, 3, in_use(level, prefix) - keep, n)

    code_of: dict[int, str] = {}
    names: dict[int, str] = {}
    if into == unit["level"]:
        order = sorted(range(len(parts)), key=lambda i: -parts[i][1])
        prefix = unit["code"][:9] if into == "community" else unit["code"][:12]
        others = iter(fresh(into, prefix, len(parts) - 1, set()))
        code_of[order[0]] = unit["code"]
        for i in order[1:]:
            code_of[i] = next(others)
        names = {i: f"{unit['name']}（{NUMERALS[k] if k < 10 else k + 1}）" for k, i in enumerate(order)}
    elif into == "grid":
        code_of = dict(enumerate(fresh("grid", unit["code"], len(parts), reusable)))
        names = {i: f"{unit['name']}第{int(code_of[i][-3:])}网格" for i in range(len(parts))}
    else:  # neighbourhoods, per compound
        by_comp: dict[str | None, list[int]] = {}
        for i, (_, _, comp) in enumerate(parts):
            by_comp.setdefault(comp, []).append(i)
        for comp, idx in by_comp.items():
            for i, code in zip(idx, fresh("neighbourhood", f"{comp}N", len(idx), reusable), strict=True):
                code_of[i] = code
                names[i] = f"{unit['name']}{code[-4:]}邻里"
    return [{"seq": i + 1, "code": code_of[i], "name": names[i], "households": int(parts[i][1]),
             "geom_m": parts[i][0], "grp": 1} for i in range(len(parts))]
