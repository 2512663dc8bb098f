"""Base maps the maps offer, and the datum each one is drawn in.

OpenStreetMap is WGS84 (Web Mercator). Amap/Gaode tiles are drawn in GCJ-02, about 585 m
off in Wuhan: when one of them is the base layer, every overlay is shifted to GCJ-02 in
the browser (maps/static/gridmap/gridmap.js, the same formulas as geo/datums.py) and
vector tiles are asked for with `?datum=gcj02`.

Base tiles stay external (an intranet deployment points these URLs at its own tile
server); everything else a map needs is served by the app itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Basemap:
    key: str
    name: str  # as shown in the layer control
    url: str
    attribution: str
    datum: str  # "wgs84" or "gcj02"
    subdomains: str = "abc"
    max_zoom: int = 19
    max_native_zoom: int = 19


BASEMAPS: tuple[Basemap, ...] = (
    Basemap(
        "osm", "OpenStreetMap 标准地图",
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
        "wgs84",
    ),
    Basemap(
        "amap", "高德地图 Amap",
        "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
        "&copy; 高德地图 AutoNavi (GCJ-02)", "gcj02", subdomains="1234", max_native_zoom=18,
    ),
    Basemap(
        "amap_satellite", "高德影像 Amap satellite",
        "https://webst0{s}.is.autonavi.com/appmaptile?style=6&x={x}&y={y}&z={z}",
        "&copy; 高德地图 AutoNavi (GCJ-02)", "gcj02", subdomains="1234", max_native_zoom=18,
    ),
)
BY_KEY = {b.key: b for b in BASEMAPS}
DEFAULT = "osm"
# hosts the base tiles come from (the browser tests answer them with a local tile)
TILE_HOSTS = ("tile.openstreetmap.org", "is.autonavi.com")


def choose(key: str | None) -> Basemap:
    """The base map a `?base=` parameter names; OpenStreetMap for anything unknown."""
    return BY_KEY.get((key or DEFAULT).strip().lower(), BY_KEY[DEFAULT])
