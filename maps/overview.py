"""/maps/overview: every level as a layer, coloured by households against the level's band.

A level with up to TILE_THRESHOLD current units is embedded in the page as GeoJSON; a
larger one is drawn from the vector tiles (when the app serves them), so the page stays
small however big the city.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo.units import levels
from maps import page

TILE_THRESHOLD = 2000
# labels show for one level at a time: the finest visible level whose label zoom is reached
LABEL_ZOOM = {"street": 11, "community": 14, "grid": 16, "compound": 17, "neighbourhood": 18, "building": 18}
SHOWN = ("street", "community", "grid")


def level_mode(count: int, tiles_available: bool, threshold: int = TILE_THRESHOLD) -> str:
    """'geojson' (embedded), 'tiles' (vector tiles) or 'none' (too many to embed, no tiles)."""
    if count <= threshold:
        return "geojson"
    return "tiles" if tiles_available else "none"


def layer_configs(counts: Mapping[str, int], wanted: tuple[str, ...], tile_url: str | None, threshold: int,
                  shown: tuple[str, ...], states: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Per level holding units: how it is drawn, its count, band and label zoom. `tile_url` is
    the vector tiles' URL template (None when the app serves no tiles); `states` each level's
    state, which tile URLs carry (`?v=`) so browsers and caches keep them as immutable. Tile
    levels are drawn from their first zoom on (geo/units/levels.py MIN_ZOOM)."""
    configs = []
    for level in wanted:
        count = counts.get(level, 0)
        if not count:
            continue
        mode = level_mode(count, tile_url is not None, threshold)
        band = levels.HOUSEHOLD_BANDS.get(level)
        configs.append({
            "level": level, "zh": levels.LABEL_ZH[level], "en": levels.BY_NAME[level].plural, "count": count,
            "mode": mode, "band": list(band) if band else None,
            "labelZoom": LABEL_ZOOM[level], "show": level in shown and mode != "none",
            "minZoom": levels.MIN_ZOOM[level] if mode == "tiles" else 0,
            "tiles": _versioned(tile_url, (states or {}).get(level)) if mode == "tiles" else tile_url,
        })
    return configs


def _versioned(url: str | None, state: str | None) -> str | None:
    if url is None or state is None:
        return url
    return url + ("&" if "?" in url else "?") + "v=" + state


def embedded(configs: list[dict[str, Any]]) -> list[str]:
    """The levels whose GeoJSON the page embeds."""
    return [c["level"] for c in configs if c["mode"] == "geojson"]


def embed(data: Mapping[str, str]) -> str:
    """One JSON object of GeoJSON texts as PostGIS wrote them (no parsing, no re-encoding)."""
    return "{" + ",".join(f'"{level}":{text}' for level, text in data.items()) + "}"


def colour_level(colour_by: str) -> str:
    return levels.parse_level(colour_by) if colour_by not in ("", "none") else "none"


def render(configs: list[dict[str, Any]], data: Mapping[str, str], extent: list[float] | None,
           colour_by: str, api: dict[str, str], *, base: str | None = None) -> str:
    """The page: `configs` from layer_configs, `data` the embedded levels' GeoJSON, `api` the
    URLs the page asks (unit, search, labels, units), from the router."""
    config = {
        "levels": configs, "extent": extent, "colourBy": colour_by, "api": api,
        "bands": {lv: list(b) for lv, b in levels.HOUSEHOLD_BANDS.items()},
    }
    plugins = ("vectorgrid",) if any(c["mode"] == "tiles" for c in configs) else ()
    return page.render("overview", "网格地图总览 Overview · gridmap", config, data=embed(data),
                       plugins=plugins, base=base)
