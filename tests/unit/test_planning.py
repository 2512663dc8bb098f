"""The split planner on its own (metric geometry, no database): the notes it writes and the
rules every split keeps, whatever the buildings."""

from __future__ import annotations

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.planning.atoms import Feature, Infeasible
from geo.planning.search import part_counts, split


def test_split_explains_a_building_too_big_for_the_band():
    # one tower of 900 households among small houses: the part holding it is over the band,
    # and the planner says why
    outline = shapely.box(0, 0, 400, 200)
    buildings = [Feature("T", shapely.box(20, 20, 80, 80), 900)]
    for k in range(30):
        x, y = 120 + (k % 10) * 27, 20 + (k // 10) * 55
        buildings.append(Feature(f"H{k}", shapely.box(x, y, x + 15, y + 25), 40))
    result = split(outline, [], buildings, [], (300, 500), seed=0)
    assert any("T alone has 900 households" in n for n in result.notes)
    tower_part = next(p for p in result.parts if "T" in p.buildings)
    assert tower_part.households >= 900
    assert sum(p.households for p in result.parts) == 900 + 30 * 40
    assert shapely.union_all([p.geom for p in result.parts]).symmetric_difference(outline).area < 1e-3


@st.composite
def neighbourhoods(draw):
    """A block of land with a few rows of houses, each of 20 to 120 households."""
    columns = draw(st.integers(3, 8))
    rows = draw(st.integers(2, 4))
    households = draw(st.lists(st.integers(20, 120), min_size=columns * rows, max_size=columns * rows))
    outline = shapely.box(0, 0, 30 * columns + 20, 60 * rows + 20)
    houses = [Feature(f"H{k}", shapely.box(20 + (k % columns) * 30, 20 + (k // columns) * 60,
                                            35 + (k % columns) * 30, 50 + (k // columns) * 60), hh)
              for k, hh in enumerate(households)]
    return outline, houses


@settings(max_examples=12, deadline=None)
@given(neighbourhoods(), st.integers(0, 3))
def test_every_split_tiles_the_area_keeps_every_building_whole_and_counts_every_household(case, seed):
    outline, houses = case
    total = sum(h.households for h in houses)
    try:
        result = split(outline, [], houses, [], (300, 500), seed=seed, tries=2)
    except Infeasible:  # only when no number of parts can hold the households within the band
        with pytest.raises(Infeasible):
            part_counts(total, 300, 500)
        return
    assert sum(p.households for p in result.parts) == total
    assert sorted(b for p in result.parts for b in p.buildings) == sorted(h.code for h in houses)
    union = shapely.union_all([p.geom for p in result.parts])
    assert union.symmetric_difference(outline).area < 1e-3
    overlap = sum(p.geom.area for p in result.parts) - union.area
    assert overlap < 1e-3
    for house in houses:  # a building lies in one part
        holders = [p for p in result.parts if p.geom.intersection(house.geom).area > 1e-6]
        assert len(holders) == 1
