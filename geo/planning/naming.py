"""Codes, names and figures of the units a plan draws.

Codes follow one rule, the same for every split and redraw: a code stays with its land.
An old unit's code passes to a new unit only if more than half of the old unit's area lies
in that new unit (which is then the old unit's largest successor). Where one new unit holds
more than half of several old units, it keeps the code of the one it holds the largest share
of; the others' codes retire with them. Every other new unit takes a fresh code: the first
free sequences under the parent (a community code under its street's, a grid code under its
community's, a small neighbourhood's under its compound's, `…C001N001`), numbered west to east,
then north to south. A code once used, even by a retired unit, is never given to another unit
(`CodesInUse` covers retired units). So a unit split into its own level keeps its code for the
part holding more than half of its land, if one does; otherwise every part's code is new.

Names: parts of a unit split into its own level are the unit's name with a numeral; grids are
"<community>第N网格" after their code; a small neighbourhood is named after the building or the
entrances (单元) it holds, as the sample names them ("…4栋1-3单元邻里"), unique within its grid.

Figures: each new unit's households and population are the sums of what it holds, each
source (a building, a small neighbourhood, a replaced unit) apportioned by the share of it that
lies inside, and rounded so that the totals are kept (`apportion`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import shapely

from geo.errors import InvalidInput
from geo.planning import tiling

NUMERALS = "一二三四五六七八九十"
# (level, prefix) -> every code at that level starting with prefix, current or past
CodesInUse = Callable[[str, str], set[str]]
# how tall a row is when numbering west to east, then north to south (metres)
ROW_M = {"community": 500.0, "grid": 150.0, "neighbourhood": 30.0}
# a part's contributions to a figure: (share of a source that lies in the part, the source's figure)
Contributions = Sequence[tuple[float, int | float | None]]


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


def successors(old: Sequence[tuple[str, Any]], new: Sequence[Any],
               may_keep: Callable[[str, int], bool] | None = None) -> dict[int, str]:
    """The old code each new unit keeps (by index into `new`): a code passes only to the new
    unit holding more than half of the old unit's area; a new unit holding more than half of
    several keeps the code of the one it holds the largest share of. Metric geometries."""
    if not old or not new:
        return {}
    tree = shapely.STRtree(list(new))
    claims = []
    for code, geom in old:
        area = float(shapely.area(geom))
        if area <= 0:
            continue
        idx = tree.query(geom, predicate="intersects").tolist()
        overlaps = [(float(tiling.overlay(shapely.intersection, geom, new[k]).area), k) for k in idx]
        if not overlaps:
            continue
        held, k = max(overlaps)
        if held > area / 2 and (may_keep is None or may_keep(code, k)):
            claims.append((held / area, held, code, k))
    kept: dict[int, str] = {}
    for _, _, code, k in sorted(claims, key=lambda c: (-c[0], -c[1], c[2])):
        kept.setdefault(k, code)
    return kept


def reading_order(geoms: Sequence[Any], row_m: float) -> list[int]:
    """Indices of `geoms` west to east, then north to south (rows `row_m` tall)."""
    points = [shapely.point_on_surface(g) for g in geoms]
    return sorted(range(len(geoms)), key=lambda i: (-math.floor(points[i].y / row_m), points[i].x))


def _numeral(k: int) -> str:
    return NUMERALS[k] if k < len(NUMERALS) else str(k + 1)


def unique_names(names: Sequence[str]) -> list[str]:
    """`names` with a numeral added to the second and later of any name given twice."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        k = seen.get(name, 0)
        seen[name] = k + 1
        out.append(name if k == 0 else f"{name}（{_numeral(k)}）")
    return out if len(set(out)) == len(out) else [f"{n}（{i + 1}）" for i, n in enumerate(names)]


def name_parts(unit: dict[str, Any], into: str, parts: Sequence[tuple[Any, int, str | None]],
               old: Sequence[tuple[str, Any]], in_use: CodesInUse,
               labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Code, name and sequence of each part (territory, households, compound) of a split of
    `unit` into `into`, given the units it replaces as (code, territory), all in metres, in
    code order (`part` is the index into `parts`). Small neighbourhoods are named after
    `labels` (what each holds, see neighbourhoods.label)."""
    geoms = [p[0] for p in parts]
    if into == unit["level"]:
        groups = {unit["code"][:9] if into == "community" else unit["code"][:12]: list(range(len(parts)))}
    elif into == "grid":
        groups = {unit["code"]: list(range(len(parts)))}
    else:  # small neighbourhoods, numbered per compound
        groups = {}
        for i, (_, _, comp) in enumerate(parts):
            groups.setdefault(f"{comp}N", []).append(i)
    prefix_of = {i: prefix for prefix, idx in groups.items() for i in idx}
    kept = successors(old, geoms, lambda code, k: code.startswith(prefix_of[k]))
    code_of = dict(kept)
    for prefix, idx in groups.items():
        todo = [idx[j] for j in reading_order([geoms[i] for i in idx], ROW_M.get(into, 150.0)) if idx[j] not in kept]
        for i, code in zip(todo, free_codes(into, prefix, 3, in_use(into, prefix), len(todo)), strict=True):
            code_of[i] = code
    if into == unit["level"]:
        order = sorted(range(len(parts)), key=lambda i: (code_of[i] != unit["code"], -parts[i][1], code_of[i]))
        names = {i: f"{unit['name']}（{_numeral(k)}）" for k, i in enumerate(order)}
    elif into == "grid":
        names = {i: f"{unit['name']}第{int(code_of[i][-3:])}网格" for i in range(len(parts))}
    else:
        given = [f"{labels[i] if labels else unit['name'] + code_of[i][-4:]}邻里" for i in range(len(parts))]
        by_code = sorted(range(len(parts)), key=lambda i: code_of[i])
        names = dict(zip(by_code, unique_names([given[i] for i in by_code]), strict=True))
    # in code order: `seq` numbers them so; `part` is the index into `parts`
    return [{"seq": k + 1, "part": i, "code": code_of[i], "name": names[i], "households": int(parts[i][1]),
             "geom_m": parts[i][0], "grp": 1} for k, i in enumerate(sorted(range(len(parts)), key=code_of.__getitem__))]


def by_area(parts: Sequence[Any], sources: Sequence[tuple[Any, int | float | None]]) -> list[list[tuple[float, Any]]]:
    """Each part's contributions from `sources` (territory, figure): the share of a source's
    area that lies in the part (a point source counts wholly in the first part covering it)."""
    out: list[list[tuple[float, Any]]] = [[] for _ in parts]
    if not parts:
        return out
    tree = shapely.STRtree(list(parts))
    for geom, figure in sources:
        area = float(shapely.area(geom))
        for k in tree.query(geom, predicate="intersects").tolist():
            if area <= 0:
                if shapely.covers(parts[k], geom):
                    out[k].append((1.0, figure))
                    break
                continue
            share = float(tiling.overlay(shapely.intersection, parts[k], geom).area) / area
            if share > 0:
                out[k].append((share, figure))
    return out


def apportion(contributions: Sequence[Contributions]) -> list[int | None]:
    """Each part's figure: the sum of its shares of its sources' figures, in whole numbers
    that keep the total (largest remainders). None for every part when no source has one."""
    if not any(v is not None for part in contributions for _, v in part):
        return [None] * len(contributions)
    exact = [sum(share * float(v) for share, v in part if v is not None) for part in contributions]
    whole = [math.floor(x + 1e-9) for x in exact]
    short = round(sum(exact)) - sum(whole)
    for i in sorted(range(len(exact)), key=lambda i: whole[i] - exact[i])[:max(short, 0)]:
        whole[i] += 1
    return list(whole)
