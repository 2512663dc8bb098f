"""The nested unit levels of grid governance, and how they nest.

street (街道) > community (社区) > grid (网格) and compound (小区); a small
neighbourhood (小邻里) lies in one grid and one compound; a building (楼栋) lies in
one compound and one grid. Grids and compounds both nest in their community but
not in each other (a large compound holds several grids, a grid in an old area
spans several small open compounds).
"""

from __future__ import annotations

from geo.errors import InvalidInput

LEVELS: tuple[str, ...] = ("street", "community", "grid", "compound", "neighbourhood", "building")

LABEL_ZH = {
    "street": "街道",
    "community": "社区",
    "grid": "网格",
    "compound": "小区",
    "neighbourhood": "小邻里",
    "building": "楼栋",
}

# The direct parents of each level: the units it must lie inside.
PARENTS: dict[str, tuple[str, ...]] = {
    "street": (),
    "community": ("street",),
    "grid": ("community",),
    "compound": ("community",),
    "neighbourhood": ("grid", "compound"),
    "building": ("compound", "grid"),
}

# Levels whose id a unit_version row can carry as a parent.
PARENT_COLUMNS: dict[str, str] = {
    "street": "street_id",
    "community": "community_id",
    "grid": "grid_id",
    "compound": "compound_id",
    "neighbourhood": "neighbourhood_id",
}

# Typical household bands (DOMAIN.md); planning and validation use them.
HOUSEHOLD_BANDS: dict[str, tuple[int, int]] = {
    "community": (1500, 5000),
    "grid": (300, 500),
    "neighbourhood": (10, 80),
}

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
