"""GCJ-02 and BD-09 conversions: reference values and round trips across China."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.coords import datums

# Published reference values (the widely used coordtransform libraries agree on these).
REFERENCE = [
    ("wgs84_to_gcj02", (116.404, 39.915), (116.41024449916938, 39.91640428150164)),
    ("gcj02_to_bd09", (116.404, 39.915), (116.41036949371029, 39.92133699351021)),
]


def metres(lon1, lat1, lon2, lat2):
    """Distance in metres between nearby lon/lat points (equirectangular, fine below 1 km)."""
    k = math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot((lon2 - lon1) * 111_320 * k, (lat2 - lat1) * 110_574)


@pytest.mark.parametrize("name,given_,expected", REFERENCE)
def test_reference_values(name, given_, expected):
    got = getattr(datums, name)(*given_)
    assert got == pytest.approx(expected, abs=1e-12)


def test_published_one_step_bd09_inverse_is_within_5_cm_of_ours():
    # coordtransform's one-step bd09togcj02(116.404, 39.915); ours iterates to the exact inverse
    one_step = (116.39762729119315, 39.90865673957631)
    ours = datums.bd09_to_gcj02(116.404, 39.915)
    assert metres(*ours, *one_step) < 0.05
    assert datums.gcj02_to_bd09(*ours) == pytest.approx((116.404, 39.915), abs=1e-10)


def test_wuhan_offset_is_about_585_m():
    lon, lat = datums.wgs84_to_gcj02(114.30, 30.55)
    assert 560 < metres(114.30, 30.55, lon, lat) < 610


def test_points_the_offset_carries_across_the_box_edge_come_back():
    minx, miny, maxx, maxy = datums.CHINA_BOX
    for lon, lat in [(137.83, 40.0), (120.0, 55.826), (72.0045, 30.0), (110.0, 0.83)]:
        back = datums.gcj02_to_wgs84(*datums.wgs84_to_gcj02(lon, lat))
        assert metres(lon, lat, *back) < 0.01


def test_outside_china_passes_through():
    assert datums.wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert datums.gcj02_to_wgs84(-74.0, 40.7) == (-74.0, 40.7)
    assert datums.wgs84_to_gcj02(139.7, 35.7) == (139.7, 35.7)  # Tokyo lies outside the box


def test_arrays_convert_like_scalars():
    lon = np.array([114.3, 116.404, 2.35])
    lat = np.array([30.55, 39.915, 48.85])
    glon, glat = datums.wgs84_to_gcj02(lon, lat)
    for i in range(3):
        assert (glon[i], glat[i]) == pytest.approx(datums.wgs84_to_gcj02(lon[i], lat[i]), abs=0)


china = st.tuples(st.floats(73.5, 135.0), st.floats(18.0, 53.5))
# the whole box in which web maps shift coordinates, edges included
box = st.tuples(st.floats(datums.CHINA_BOX[0], datums.CHINA_BOX[2]),
                st.floats(datums.CHINA_BOX[1], datums.CHINA_BOX[3]))


@settings(max_examples=1000, deadline=None)
@given(box)
def test_gcj02_round_trip_within_1_cm_across_the_whole_box(point):
    lon, lat = point
    back = datums.gcj02_to_wgs84(*datums.wgs84_to_gcj02(lon, lat))
    assert metres(lon, lat, *back) < 0.01


@settings(max_examples=500, deadline=None)
@given(china)
def test_gcj02_inverse_round_trip_within_1_cm(point):
    """Starting from GCJ-02 (what WeChat sends): to WGS84 and back lands on the same spot.
    (Within ~0.01 degree of the box's edges some GCJ-02 points have no WGS84 origin at all,
    so this direction is checked on China itself.)"""
    lon, lat = point
    again = datums.wgs84_to_gcj02(*datums.gcj02_to_wgs84(lon, lat))
    assert metres(lon, lat, *again) < 0.01


@settings(max_examples=300, deadline=None)
@given(china)
def test_bd09_round_trips_within_1_cm(point):
    lon, lat = point
    assert metres(lon, lat, *datums.bd09_to_wgs84(*datums.wgs84_to_bd09(lon, lat))) < 0.01
    assert metres(lon, lat, *datums.wgs84_to_bd09(*datums.bd09_to_wgs84(lon, lat))) < 0.01


def test_one_step_inverse_would_be_off_by_metres_ours_is_not():
    """The naive inverse (subtract the offset at the GCJ point) errs by metres; ours by < 1 mm."""
    worst_naive, worst_ours = 0.0, 0.0
    for lon in np.linspace(74, 134, 25):
        for lat in np.linspace(19, 53, 25):
            glon, glat = datums.wgs84_to_gcj02(lon, lat)
            dlon, dlat = datums.wgs84_to_gcj02(glon, glat)
            naive = (2 * glon - dlon, 2 * glat - dlat)
            worst_naive = max(worst_naive, metres(lon, lat, *naive))
            worst_ours = max(worst_ours, metres(lon, lat, *datums.gcj02_to_wgs84(glon, glat)))
    assert worst_naive > 0.5
    assert worst_ours < 0.001
