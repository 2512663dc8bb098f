"""Small hand-made districts for tests: rectangles in metres around Wuhan, in WGS84."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from shapely.geometry import Polygon, box

PLANE = pyproj.CRS.from_proj4("+proj=tmerc +lat_0=30.55 +lon_0=114.3 +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m")
_TO_LONLAT = pyproj.Transformer.from_crs(PLANE, 4326, always_xy=True)
_TO_PLANE = pyproj.Transformer.from_crs(4326, PLANE, always_xy=True)

STREET = "420199001000"
COMMUNITY = "420199001001"


def _via(transformer, geom):
    def apply(coords):
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, apply)


def rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """A rectangle given in metres east/north of (114.30 E, 30.55 N), as lon/lat."""
    return _via(_TO_LONLAT, box(x0, y0, x1, y1))


def to_metres(geom):
    return _via(_TO_PLANE, geom)


def write(path: Path, rows: list[dict], crs=4326, driver: str | None = None) -> Path:
    frame = gpd.GeoDataFrame(rows, geometry=[r.pop("geometry") for r in rows], crs=crs)
    frame.to_file(path, driver=driver, engine="pyogrio")
    return path


def street_rows():
    return [{"code": STREET, "name": "测试街道", "households": 1000, "geometry": rect(0, 0, 1000, 1000)}]


def community_rows():
    return [{"code": COMMUNITY, "name": "测试社区", "households": 900, "geometry": rect(0, 0, 400, 400)}]


def grid_rows():
    return [
        {"code": COMMUNITY + "001", "name": "测试社区第1网格", "households": 450, "geometry": rect(0, 0, 200, 400)},
        {"code": COMMUNITY + "002", "name": "测试社区第2网格", "households": 450, "geometry": rect(200, 0, 400, 400)},
    ]
