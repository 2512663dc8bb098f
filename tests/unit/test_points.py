"""Positions and boxes as clients send them: one rule for axes sent latitude first, one bbox
parser, and points converted from the coordinate systems users name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.coords import points
from geo.coords.points import CHINA
from geo.errors import InvalidInput


@given(st.floats(73.5, 135.5), st.floats(18.5, 53.5))
def test_any_point_in_china_given_latitude_first_is_named_so(lon, lat):
    assert not points.latitude_first([lon], [lat], CHINA).any()
    assert points.latitude_first([lat], [lon], CHINA).all()
    with pytest.raises(InvalidInput, match="looks like latitude, longitude"):
        points.check_points([lat], [lon], CHINA)


def test_a_latitude_beyond_90_that_would_be_a_longitude_is_latitude_first_anywhere():
    assert points.latitude_first([-33.9], [151.2], CHINA).all()  # Sydney, lat first
    assert not points.latitude_first([114.3], [95.0], CHINA).any()  # simply out of range


@pytest.mark.parametrize("text, words", [
    ("114.2,30.5,114.3", "not four numbers"),
    ("114.2,30.5,114.3,30.6,0,100", "six numbers"),
    ("30.5,114.2,30.6,114.3", "longitude first"),
    ("30.5,114.2,30.6,114.3", "lon first"),
    ("114.3,30.5,114.2,30.6", "west edge first"),
    ("114.2,30.6,114.3,30.5", "south edge first"),
    ("530000,3380000,540000,3390000", "not projected metres"),
    ("114.2,nan,114.3,30.6", "not four numbers"),
])
def test_one_bbox_parser_names_every_mistake(text, words):
    with pytest.raises(InvalidInput, match=words):
        points.parse_bbox(text)


def test_a_good_bbox_and_none():
    assert points.parse_bbox("114.2,30.5,114.3,30.6") == (114.2, 30.5, 114.3, 30.6)
    assert points.parse_bbox(None) is None and points.parse_bbox("") is None
    with pytest.raises(InvalidInput, match="give a bbox"):
        points.parse_bbox(None, required=True)


def test_gcj02_input_lands_about_585_m_from_where_it_was_given():
    lon, lat, source = points.point_to_wgs84(114.3055, 30.5928, "gcj02", CHINA)
    assert source == "GCJ-02"
    assert 0.003 < abs(lon - 114.3055) + abs(lat - 30.5928) < 0.01


def test_projected_input_landing_outside_the_area_blames_the_crs():
    with pytest.raises(InvalidInput, match="check the CRS"):
        points.to_wgs84([3_380_000.0], [530_000.0], "EPSG:4547", CHINA)
