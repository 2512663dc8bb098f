"""Coordinate systems users hand to gridmap, and reprojection to WGS84 (EPSG:4326).

Accepted: wgs84, cgcs2000 (EPSG:4490, within centimetres of WGS84), gcj02 (Amap,
Tencent, WeChat), bd09 (Baidu), any EPSG code or PROJ string pyproj understands.
GCJ-02 and BD-09 are obfuscated datums PROJ does not implement: geo.coords.datums converts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyproj
import shapely

from geo.coords import datums
from geo.errors import InvalidInput

WGS84 = pyproj.CRS.from_epsg(4326)

_ALIASES = {
    "wgs84": "EPSG:4326", "wgs-84": "EPSG:4326", "wgs 84": "EPSG:4326", "4326": "EPSG:4326",
    "cgcs2000": "EPSG:4490", "4490": "EPSG:4490",
}


@dataclass(frozen=True)
class Obfuscated:
    """GCJ-02 or BD-09: lon/lat with a published offset from WGS84."""

    name: str

    def to_wgs84_xy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.name == "GCJ-02":
            return datums.gcj02_to_wgs84(x, y)
        return datums.bd09_to_wgs84(x, y)


GCJ02 = Obfuscated("GCJ-02")
BD09 = Obfuscated("BD-09")
OBFUSCATED = {"gcj02": GCJ02, "gcj-02": GCJ02, "gcj": GCJ02, "amap": GCJ02, "wechat": GCJ02,
              "bd09": BD09, "bd-09": BD09, "bd09ll": BD09, "baidu": BD09}
Source = pyproj.CRS | Obfuscated


@lru_cache(maxsize=256)
def parse(text: str | None) -> Source:
    """The coordinate system a user named, or InvalidInput naming the problem."""
    raw = (text or "").strip()
    key = raw.lower()
    if not key:
        raise InvalidInput("no CRS given: pass one of wgs84, cgcs2000, gcj02, bd09 or EPSG:nnnn")
    if key in OBFUSCATED:
        return OBFUSCATED[key]
    try:
        crs = pyproj.CRS.from_user_input(_ALIASES.get(key, raw))
    except pyproj.exceptions.CRSError:
        raise InvalidInput(
            f"unknown CRS {raw!r}: use wgs84, cgcs2000, gcj02, bd09 or an EPSG code like EPSG:4547"
        ) from None
    if not (crs.is_geographic or crs.is_projected) or len(crs.axis_info) != 2:
        raise InvalidInput(
            f"CRS {raw!r} ({crs.name}) is not a two-dimensional geographic or projected CRS of the Earth"
        )
    try:
        _transformer(crs, WGS84)
    except pyproj.exceptions.ProjError:
        raise InvalidInput(f"CRS {raw!r} ({crs.name}) cannot be converted to WGS84") from None
    return crs


def name(crs: Source) -> str:
    if isinstance(crs, Obfuscated):
        return crs.name
    epsg = _epsg(crs)
    return f"EPSG:{epsg}" if epsg else crs.name


def is_wgs84(crs: Source) -> bool:
    return not isinstance(crs, Obfuscated) and _epsg(crs) == 4326


_EPSG: dict[int, tuple[pyproj.CRS, int | None]] = {}


def _epsg(crs: pyproj.CRS) -> int | None:
    """crs.to_epsg(), remembered per CRS object (it is slow, and hashing a CRS is slower).
    The entry holds the object, so its id cannot be reused by another."""
    entry = _EPSG.get(id(crs))
    if entry is None or entry[0] is not crs:
        entry = _EPSG[id(crs)] = (crs, crs.to_epsg())
    return entry[1]


def points_to_wgs84(x: np.ndarray, y: np.ndarray, crs: Source) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat WGS84 arrays for coordinate arrays in `crs`."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if is_wgs84(crs):
        return x, y
    if isinstance(crs, Obfuscated):
        return crs.to_wgs84_xy(x, y)
    try:
        return _transformer(crs, WGS84).transform(x, y, errcheck=True)
    except pyproj.exceptions.ProjError:
        raise InvalidInput(f"coordinates cannot be converted from {name(crs)} to WGS84: check the CRS") from None


def to_wgs84(geoms: np.ndarray, crs: Source) -> np.ndarray:
    """Reproject an array of shapely geometries from `crs` to lon/lat WGS84."""
    if is_wgs84(crs):
        return geoms
    if isinstance(crs, Obfuscated):
        def apply(coords: np.ndarray) -> np.ndarray:
            return np.column_stack(crs.to_wgs84_xy(coords[:, 0], coords[:, 1]))

        moved: np.ndarray = shapely.transform(geoms, apply)
        return moved
    return transform(geoms, crs, WGS84)


_TRANSFORMERS: dict[tuple[str, str], pyproj.Transformer] = {}


def _transformer(source: pyproj.CRS, target: pyproj.CRS) -> pyproj.Transformer:
    key = (source.to_wkt(), target.to_wkt())
    if key not in _TRANSFORMERS:
        _TRANSFORMERS[key] = pyproj.Transformer.from_crs(source, target, always_xy=True)
    return _TRANSFORMERS[key]


def transform(geoms: np.ndarray, source: pyproj.CRS, target: pyproj.CRS) -> np.ndarray:
    transformer = _transformer(source, target)

    def apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    moved: np.ndarray = shapely.transform(geoms, apply)
    return moved


def local_metric(lon: float, lat: float) -> pyproj.CRS:
    """A metric CRS for measuring around lon/lat: a transverse Mercator centred there
    (scale 1 on its meridian, so distances within a city are true to a few mm per km)."""
    return pyproj.CRS.from_proj4(
        f"+proj=tmerc +lat_0={lat:.6f} +lon_0={lon:.6f} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
    )


def to_metric(geoms: np.ndarray) -> tuple[np.ndarray, pyproj.CRS]:
    """WGS84 geometries in a local UTM zone (metres), and that zone's CRS."""
    geoms = np.asarray(geoms, dtype=object)
    valid = geoms[~shapely.is_empty(geoms)]
    if len(valid):
        minx, miny, maxx, maxy = shapely.total_bounds(valid)
        metric = local_metric((minx + maxx) / 2, (miny + maxy) / 2)
    else:
        metric = local_metric(114.3, 30.55)
    return transform(geoms, WGS84, metric), metric
