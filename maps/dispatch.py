"""/maps/dispatch: incidents for dispatchers (一屏总览、一图指挥).

The page holds the boundaries (grids, communities, streets) and asks /maps/api/incidents
every few seconds for the incidents that match its filters: their points (clustered and
coloured by state), a heat map binned on the server, open and overdue counts per grid, and
the names and codes of the units they lie in. Above MAX_MARKERS matching incidents it gets
no points, only the heat map and the counts, so the answer stays small however many there are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geo.incidents.lifecycle import OPEN_STATES, STATE_ZH, STATES
from maps import overview, page

MAX_MARKERS = 10_000
REFRESH_S = 20
LEVELS = ("street", "community", "grid")  # the boundaries the dispatch map draws
# one character on each marker (the category at a glance)
GLYPH = {"manhole": "井", "road_damage": "路", "garbage": "垃", "noise": "噪", "water_leak": "水",
         "street_light": "灯", "dispute": "纠", "parking": "停", "illegal_building": "违", "fire_hazard": "火",
         "other": "他"}
WINDOWS = [(None, "全部 all time"), (24, "近24小时 last 24 h"), (24 * 7, "近7天 last 7 days"),
           (24 * 30, "近30天 last 30 days"), (24 * 90, "近90天 last 90 days")]
CHANNEL_ZH = {"hotline": "热线", "wechat": "微信", "app": "App", "patrol": "巡查", "rider": "骑手", "web": "网页",
              "open311": "Open311", "import": "导入"}


def render(configs: list[dict[str, Any]], data: Mapping[str, str], extent: list[float] | None,
           categories: list[dict[str, Any]], api: dict[str, str], *, base: str | None = None,
           refresh: int = REFRESH_S, max_markers: int = MAX_MARKERS) -> str:
    """The page: the layers of streets, communities and grids (maps/overview.py layer_configs)
    with their embedded GeoJSON, the incident categories, and `api` the URLs it asks, from
    the router (incidents, incident, unit)."""
    config = {
        "levels": configs, "extent": extent, "refresh": refresh, "maxMarkers": max_markers,
        "states": [{"key": s, "zh": STATE_ZH[s], "open": s in OPEN_STATES} for s in STATES],
        "categories": [{"code": c["code"], "zh": c["name_zh"], "deadline_hours": c["deadline_hours"],
                        "glyph": GLYPH.get(c["code"], c["name_zh"][:1])} for c in categories],
        "channels": CHANNEL_ZH,
        "windows": [{"hours": h, "label": label} for h, label in WINDOWS],
        "api": api,
    }
    plugins = ("markercluster", "heat") + (("vectorgrid",) if any(c["mode"] == "tiles" for c in configs) else ())
    return page.render("dispatch", "事件调度 Dispatch · gridmap", config, data=overview.embed(data),
                       plugins=plugins, base=base)
