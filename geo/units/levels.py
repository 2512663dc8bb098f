"""The nested unit levels of grid governance, as one table, and how they nest.

street (街道) > community (社区) > grid (网格) and compound (小区); a small
neighbourhood (小邻里) lies in one grid and one compound; a building (楼栋) lies in
one compound and one grid. Grids and compounds both nest in their community but
not in each other (a large compound holds several grids, a grid in an old area
spans several small open compounds). docs/domain.md tells the why.

LEVELS below is the one table; every other list of levels in gridmap is read from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from geo.errors import InvalidInput


@dataclass(frozen=True)
class Level:
    """What gridmap knows of one level."""

    name: str
    zh: str  # what users call it
    plural: str  # in English, for legends
    title: str  # in English, for catalogues (OGC collections)
    parents: tuple[str, ...]  # the units it must lie inside, its direct parents
    column: str | None  # the column holding a unit's id at this level as a parent (None: nobody's parent)
    band: tuple[int, int] | None = None  # typical households (docs/domain.md); planning and checks use it
    tiles: str | None = None  # the parent it must cover without gaps
    merge_within: str | None = None  # merging joins siblings under this parent
    merge_floor: int | None = None  # merging takes units below this many households by default
    min_zoom: int = 0  # vector tiles of the level start at this zoom (below: too many to read)


TABLE: tuple[Level, ...] = (
    Level("street", "街道", "streets", "Streets", (), "street_id"),
    Level("community", "社区", "communities", "Communities", ("street",), "community_id", (1500, 5000),
          tiles="street", merge_within="street", merge_floor=1000, min_zoom=10),
    Level("grid", "网格", "grids", "Grids", ("community",), "grid_id", (300, 500),
          tiles="community", merge_within="community", merge_floor=200, min_zoom=13),
    Level("compound", "小区", "compounds", "Residential compounds", ("community",), "compound_id", min_zoom=14),
    Level("neighbourhood", "小邻里", "small neighbourhoods", "Small neighbourhoods", ("grid", "compound"),
          "neighbourhood_id", (10, 80), merge_within="compound", merge_floor=10, min_zoom=14),
    Level("building", "楼栋", "buildings", "Buildings", ("compound", "grid"), None, min_zoom=15),
)
BY_NAME: dict[str, Level] = {lv.name: lv for lv in TABLE}

# The table's columns, as the rest of gridmap reads them.
LEVELS: tuple[str, ...] = tuple(lv.name for lv in TABLE)
LABEL_ZH: dict[str, str] = {lv.name: lv.zh for lv in TABLE}
PARENTS: dict[str, tuple[str, ...]] = {lv.name: lv.parents for lv in TABLE}
# Levels whose id a unit_version row (and an incident) can carry as a parent, and the column.
PARENT_COLUMNS: dict[str, str] = {lv.name: lv.column for lv in TABLE if lv.column}
# Every parent column, outermost first: a unit's chain of parents.
CHAIN_COLUMNS: tuple[str, ...] = tuple(PARENT_COLUMNS.values())
# The zoom from which each level's vector tiles hold its units (a grid tile at z10 held 32,000
# grids, 3.3 MB: nobody reads that; communities and streets stand for them there).
MIN_ZOOM: dict[str, int] = {lv.name: lv.min_zoom for lv in TABLE}
HOUSEHOLD_BANDS: dict[str, tuple[int, int]] = {lv.name: lv.band for lv in TABLE if lv.band}
# Incident statistics are kept per unit of every level that holds others.
STATS_LEVELS: tuple[str, ...] = tuple(PARENT_COLUMNS)

_ALIASES = {
    "streets": "street", "subdistrict": "street", "街道": "street",
    "communities": "community", "社区": "community",
    "grids": "grid", "网格": "grid",
    "compounds": "compound", "小区": "compound", "片区": "compound",
    "neighbourhoods": "neighbourhood", "neighborhood": "neighbourhood",
    "neighborhoods": "neighbourhood", "small_neighbourhood": "neighbourhood",
    "小邻里": "neighbourhood", "微网格": "neighbourhood",
    "buildings": "building", "楼栋": "building",
}


def parse_level(text: str) -> str:
    """The canonical level name for what a user typed (English or Chinese)."""
    key = (text or "").strip().lower()
    level = key if key in LEVELS else _ALIASES.get(key)
    if level is None:
        raise InvalidInput(f"unknown level {text!r}: use one of {', '.join(LEVELS)}")
    return level


def ancestors(level: str) -> tuple[str, ...]:
    """Every level above `level` in its chain, outermost first (street first)."""
    seen: list[str] = []

    def walk(lv: str) -> None:
        for parent in PARENTS[lv]:
            walk(parent)
            if parent not in seen:
                seen.append(parent)

    walk(level)
    return tuple(sorted(seen, key=LEVELS.index))


def children(level: str) -> tuple[str, ...]:
    """Levels that have `level` as a direct parent."""
    return tuple(lv for lv in LEVELS if level in PARENTS[lv])


def band_status(level: str, households: int | None) -> str | None:
    """'below', 'in' or 'above' the level's household band (None without a band or a count)."""
    band = HOUSEHOLD_BANDS.get(level)
    if band is None or households is None:
        return None
    return "below" if households < band[0] else "above" if households > band[1] else "in"


def parse_band(text: str | None, level: str) -> tuple[int, int]:
    """A household band LOW-HIGH as typed (e.g. 300-500); none given: the level's own."""
    if text is None or str(text).strip() == "":
        if level not in HOUSEHOLD_BANDS:
            raise InvalidInput(f"give a household band for {level} units, e.g. 300-500")
        return HOUSEHOLD_BANDS[level]
    match = re.fullmatch(r"\s*(\d+)\s*[-–,:]\s*(\d+)\s*", str(text))
    if not match:
        raise InvalidInput(f"household band {text!r} is not LOW-HIGH, e.g. 300-500")
    lo, hi = int(match.group(1)), int(match.group(2))
    if not 0 < lo <= hi:
        raise InvalidInput(f"household band {text!r}: the floor must be above 0 and not above the ceiling")
    return lo, hi
