"""The levels as one table and the codes that tell a unit's chain of parents."""

from __future__ import annotations

import pytest

from geo.errors import InvalidInput
from geo.units import codes, levels


def test_every_list_of_levels_is_read_from_the_one_table():
    assert levels.LEVELS == tuple(lv.name for lv in levels.TABLE)
    assert levels.CHAIN_COLUMNS == ("street_id", "community_id", "grid_id", "compound_id", "neighbourhood_id")
    assert levels.STATS_LEVELS == ("street", "community", "grid", "compound", "neighbourhood")
    assert levels.HOUSEHOLD_BANDS == {"community": (1500, 5000), "grid": (300, 500), "neighbourhood": (10, 80)}
    assert levels.ancestors("neighbourhood") == ("street", "community", "grid", "compound")
    assert levels.children("community") == ("grid", "compound")


@pytest.mark.parametrize("typed, level", [("网格", "grid"), ("Grids", "grid"), ("微网格", "neighbourhood"),
                                          ("片区", "compound"), (" street ", "street")])
def test_levels_are_read_in_english_or_chinese(typed, level):
    assert levels.parse_level(typed) == level


def test_bands_and_band_status():
    assert levels.parse_band(None, "grid") == (300, 500)
    assert levels.parse_band("200–400", "grid") == (200, 400)
    with pytest.raises(InvalidInput, match="LOW-HIGH"):
        levels.parse_band("lots", "grid")
    assert [levels.band_status("grid", n) for n in (299, 300, 500, 501, None)] == ["below", "in", "in", "above", None]


def test_a_code_tells_its_parents():
    assert codes.implied_parent("grid", "420106011003002", "community") == "420106011003"
    assert codes.implied_parent("community", "420106011003", "street") == "420106011000"
    assert codes.implied_parent("building", "420106011003C012B007", "compound") == "420106011003C012"
    assert codes.implied_parent("compound", "my-own-code", "community") is None
    with pytest.raises(InvalidInput, match="street's code"):
        codes.check("community", "420106011000")
