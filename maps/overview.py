"""/maps/overview: every level as a layer, coloured by households against the level's band.

A level with up to TILE_THRESHOLD current units is embedded in the page as GeoJSON; a
larger one is drawn from the vector tiles at /tiles/{level}/{z}/{x}/{y}.mvt (when the app
serves them), so the page stays small however big the city.
"""

from __future__ import annotations

from geo import levels, store
from maps import page, units

TILE_THRESHOLD = 2000
TILE_URL = "/tiles/{level}/{z}/{x}/{y}.mvt"
# labels show for one level at a time: the finest visible level whose label zoom is reached
LABEL_ZOOM = {"street": 11, "community": 14, "grid": 16, "compound": 17, "neighbourhood": 18, "building": 18}
# tile levels are drawn from this zoom on (below it they would be a grey smear)
TILE_MIN_ZOOM = {"neighbourhood": 14, "building": 15}
SHOWN = ("street", "community", "grid")
EN = {"street": "streets", "community": "communities", "grid": "grids", "compound": "compounds",
      "neighbourhood": "small neighbourhoods", "building": "buildings"}
API = {"unit": "/maps/api/units/", "search": "/maps/api/search", "labels": "/maps/api/labels",
       "units": "/units/"}


def level_mode(count: int, tiles_available: bool, threshold: int = TILE_THRESHOLD) -> str:
    """'geojson' (embedded), 'tiles' (vector tiles) or 'none' (too many to embed, no tiles)."""
    if count <= threshold:
        return "geojson"
    return "tiles" if tiles_available else "none"


def layer_configs(conn, wanted: tuple[str, ...], tiles_available: bool, threshold: int,
                  shown: tuple[str, ...]) -> tuple[list[dict], dict[str, str]]:
    """Per level: how it is drawn, its count, band and label zoom; and the embedded GeoJSON."""
    counts = store.count_units(conn)
    configs, data = [], {}
    for level in wanted:
        count = counts.get(level, 0)
        if not count:
            continue
        mode = level_mode(count, tiles_available, threshold)
        configs.append({
            "level": level, "zh": levels.LABEL_ZH[level], "en": EN[level], "count": count, "mode": mode,
            "band": list(units.band_of(level)) if units.band_of(level) else None,
            "labelZoom": LABEL_ZOOM[level], "show": level in shown and mode != "none",
            "minZoom": TILE_MIN_ZOOM.get(level, 0) if mode == "tiles" else 0, "tiles": TILE_URL,
        })
        if mode == "geojson":
            data[level] = units.layer_geojson(conn, level)
    return configs, data


def embed(data: dict[str, str]) -> str:
    """One JSON object of GeoJSON texts as PostGIS wrote them (no parsing, no re-encoding)."""
    return "{" + ",".join(f'"{level}":{text}' for level, text in data.items()) + "}"


def render(conn, *, base: str | None = None, tiles_available: bool = False,
           threshold: int = TILE_THRESHOLD, colour_by: str = "grid") -> str:
    colour_by = levels.parse_level(colour_by) if colour_by not in ("", "none") else "none"
    configs, data = layer_configs(conn, units.MAP_LEVELS, tiles_available, threshold, SHOWN + (colour_by,))
    config = {
        "levels": configs, "extent": units.extent(conn), "colourBy": colour_by, "api": API,
        "bands": {lv: list(b) for lv, b in levels.HOUSEHOLD_BANDS.items()},
    }
    plugins = ("vectorgrid",) if any(c["mode"] == "tiles" for c in configs) else ()
    return page.render("overview", "网格地图总览 Overview · gridmap", config, data=embed(data),
                       plugins=plugins, base=base)
