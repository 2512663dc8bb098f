"""Coordinate systems users hand to gridmap, and reprojection to WGS84 (EPSG:4326).

Accepted: wgs84, cgcs2000 (EPSG:4490, within centimetres of WGS84), any EPSG code or
PROJ string pyproj understands. GCJ-02 (Amap, Tencent, WeChat) and BD-09 (Baidu)
are obfuscated datums PROJ does not implement; they are named here so that they are
refused with a clear message rather than mistaken for WGS84.
"""

from __future__ import annotations

import numpy as np
import pyproj
import shapely

from geo.errors import InvalidInput

WGS84 = pyproj.CRS.from_epsg(4326)

_ALIASES = {
    "wgs84": "EPSG:4326", "wgs-84": "EPSG:4326", "wgs 84": "EPSG:4326", "4326": "EPSG:4326",
    "cgcs2000": "EPSG:4490", "4490": "EPSG:4490",
}
OBFUSCATED = {"gcj02", "gcj-02", "gcj", "bd09", "bd-09", "bd09ll", "baidu", "amap"}


def parse(text: str | None) -> pyproj.CRS:
    """A pyproj CRS for what a user typed, or InvalidInput naming the problem."""
    raw = (text or "").strip()
    key = raw.lower()
    if not key:
        raise InvalidInput("no CRS given: pass one of wgs84, cgcs2000, gcj02, bd09 or EPSG:nnnn")
    if key in OBFUSCATED:
        raise InvalidInput(
            f"CRS {raw!r}: GCJ-02/BD-09 input is not supported yet (it arrives with the "
            "point-in-grid work); convert the file to WGS84 or CGCS2000 first"
        )
    try:
        return pyproj.CRS.from_user_input(_ALIASES.get(key, raw))
    except pyproj.exceptions.CRSError:
        raise InvalidInput(
            f"unknown CRS {raw!r}: use wgs84, cgcs2000, gcj02, bd09 or an EPSG code like EPSG:4547"
        ) from None


def name(crs: pyproj.CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def is_wgs84(crs: pyproj.CRS) -> bool:
    return crs.to_epsg() == 4326


def to_wgs84(geoms: np.ndarray, crs: pyproj.CRS) -> np.ndarray:
    """Reproject an array of shapely geometries from `crs` to lon/lat WGS84."""
    if is_wgs84(crs):
        return geoms
    return transform(geoms, crs, WGS84)


def transform(geoms: np.ndarray, source: pyproj.CRS, target: pyproj.CRS) -> np.ndarray:
    transformer = pyproj.Transformer.from_crs(source, target, always_xy=True)

    def apply(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, apply)


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
