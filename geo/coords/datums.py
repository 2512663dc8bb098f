"""GCJ-02 and BD-09: the obfuscated datums of Chinese web maps, both ways.

GCJ-02 (国测局坐标, used by Amap/Gaode, Tencent maps and WeChat) shifts WGS84 by a
published, deliberately non-linear offset of 30-710 m inside China (about 585 m in Wuhan).
BD-09 (Baidu) applies a further rotation-and-scale to GCJ-02. PROJ implements neither.

Forward conversions follow the published formulas (Krasovsky 1940 ellipsoid). The
inverses have no closed form: the usual one-step inverse is off by up to a few metres, so
`gcj02_to_wgs84` and `bd09_to_gcj02` iterate the forward formula until the round trip
closes to well under a millimetre. Points outside China pass through unchanged, as the
web maps do (the rough box below). Everything works on numpy arrays as well as floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

_A = 6378245.0  # Krasovsky 1940 semi-major axis
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0
# The box inside which web maps apply the offset (a rough outline of China).
CHINA_BOX = (72.004, 0.8293, 137.8347, 55.8271)
_TOLERANCE_DEG = 1e-10  # ~0.01 mm
_MAX_ITERATIONS = 30

# Each conversion takes floats and returns floats, or arrays (or lists) and returns arrays.
FloatArray = npt.NDArray[np.float64]
Floats = npt.NDArray[Any] | Sequence[float]
Converted = tuple[float, float] | tuple[FloatArray, FloatArray]


def in_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    minx, miny, maxx, maxy = CHINA_BOX
    return (lon >= minx) & (lon <= maxx) & (lat >= miny) & (lat <= maxy)


def _offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The GCJ-02 shift (dlon, dlat) in degrees at a WGS84 point."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    wave = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat = dlat + wave
    dlat = dlat + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon = dlon + wave
    dlon = dlon + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat


def _result(lon: FloatArray, lat: FloatArray, scalar: bool) -> Converted:
    if scalar:
        return float(lon), float(lat)
    return lon, lat


def _arrays(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray, bool]:
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), scalar


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lon: Floats, lat: Floats) -> tuple[FloatArray, FloatArray]: ...
@overload
def wgs84_to_gcj02(lon: float | Floats, lat: float | Floats) -> Converted: ...
def wgs84_to_gcj02(lon: float | Floats, lat: float | Floats) -> Converted:
    lon, lat, scalar = _arrays(lon, lat)
    dlon, dlat = _offset(lon, lat)
    inside = in_china(lon, lat)
    return _result(np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat), scalar)


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon: Floats, lat: Floats) -> tuple[FloatArray, FloatArray]: ...
@overload
def gcj02_to_wgs84(lon: float | Floats, lat: float | Floats) -> Converted: ...
def gcj02_to_wgs84(lon: float | Floats, lat: float | Floats) -> Converted:
    """Iterative inverse: accurate to < 0.01 mm wherever the GCJ-02 point has a WGS84 origin.

    Near the edges of the box the offset can carry a point across the edge, so points up to
    0.1 degree outside the box are inverted too; a result whose WGS84 origin would lie outside
    the box (and so was never shifted) passes through unchanged.
    """
    lon, lat, scalar = _arrays(lon, lat)
    lon, lat = np.atleast_1d(lon), np.atleast_1d(lat)
    minx, miny, maxx, maxy = CHINA_BOX
    margin = 0.1
    near_box = (lon >= minx - margin) & (lon <= maxx + margin) & (lat >= miny - margin) & (lat <= maxy + margin)
    wlon, wlat = lon.copy(), lat.copy()
    active = np.flatnonzero(near_box)
    for _ in range(_MAX_ITERATIONS):
        if len(active) == 0:
            break
        dlon, dlat = _offset(wlon[active], wlat[active])
        elon = wlon[active] + dlon - lon[active]
        elat = wlat[active] + dlat - lat[active]
        wlon[active] -= elon
        wlat[active] -= elat
        active = active[(np.abs(elon) >= _TOLERANCE_DEG) | (np.abs(elat) >= _TOLERANCE_DEG)]
    eps = 1e-9  # the converged origin of a point exactly on the box edge may land a hair outside
    origin_in_box = (wlon >= minx - eps) & (wlon <= maxx + eps) & (wlat >= miny - eps) & (wlat <= maxy + eps)
    keep = near_box & origin_in_box
    out_lon, out_lat = np.where(keep, wlon, lon), np.where(keep, wlat, lat)
    if scalar:
        return float(out_lon[0]), float(out_lat[0])
    return out_lon, out_lat


@overload
def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_bd09(lon: Floats, lat: Floats) -> tuple[FloatArray, FloatArray]: ...
@overload
def gcj02_to_bd09(lon: float | Floats, lat: float | Floats) -> Converted: ...
def gcj02_to_bd09(lon: float | Floats, lat: float | Floats) -> Converted:
    lon, lat, scalar = _arrays(lon, lat)
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return _result(z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006, scalar)


def _bd09_to_gcj02_step(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = lon - 0.0065
    y = lat - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta), z * np.sin(theta)


@overload
def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_gcj02(lon: Floats, lat: Floats) -> tuple[FloatArray, FloatArray]: ...
@overload
def bd09_to_gcj02(lon: float | Floats, lat: float | Floats) -> Converted: ...
def bd09_to_gcj02(lon: float | Floats, lat: float | Floats) -> Converted:
    """The published one-step inverse, refined by iterating the forward formula."""
    lon, lat, scalar = _arrays(lon, lat)
    glon, glat = _bd09_to_gcj02_step(lon, lat)
    for _ in range(_MAX_ITERATIONS):
        blon, blat = gcj02_to_bd09(glon, glat)
        elon, elat = blon - lon, blat - lat
        glon = glon - elon
        glat = glat - elat
        if np.all(np.abs(elon) < _TOLERANCE_DEG) and np.all(np.abs(elat) < _TOLERANCE_DEG):
            break
    return _result(glon, glat, scalar)


@overload
def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_bd09(lon: Floats, lat: Floats) -> tuple[FloatArray, FloatArray]: ...
@overload
def wgs84_to_bd09(lon: float | Floats, lat: float | Floats) -> Converted: ...
def wgs84_to_bd09(lon: float | Floats, lat: float | Floats) -> Converted:
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


@overload
def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_wgs84(lon: Floats, lat: Floats) -> tuple[FloatArray, FloatArray]: ...
@overload
def bd09_to_wgs84(lon: float | Floats, lat: float | Floats) -> Converted: ...
def bd09_to_wgs84(lon: float | Floats, lat: float | Floats) -> Converted:
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
