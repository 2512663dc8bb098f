"""Merging when neighbours' vertices do not line up, and the codes, names and figures of new
units (issue 13, items 5 and 6), on hand-made polygons: no database."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely import Polygon

from geo.coords import crs
from geo.planning import merge, naming, neighbourhoods
from geo.planning.atoms import Feature

LON, LAT = 114.30, 30.56
METRIC = crs.local_metric(LON, LAT)

# Two communities sharing a 190 m edge whose vertices do not line up: the neighbour has one
# vertex on it, the small one two others, each up to 0.3 m off the line. An exact intersection
# of the two boundaries finds points, not a shared edge. A third and a fourth community lie west
# and east of both, matching them vertex for vertex.
INTO = Polygon([(0, 0), (95, 0.1), (190, 0), (190, 150), (0, 150)])
SMALL = Polygon([(0, 0), (0, -120), (190, -120), (190, 0), (130, 0.3), (60, -0.25)])
WEST = Polygon([(-100, -120), (0, -120), (0, 0), (0, 150), (-100, 150)])
EAST = Polygon([(190, -120), (300, -120), (300, 150), (190, 150), (190, 0)])


def _wgs84(*geoms: shapely.Geometry) -> list[shapely.Geometry]:
    return list(crs.transform(np.array(geoms, dtype=object), METRIC, crs.WGS84))


def _row(code: str, geom: shapely.Geometry, households: int, street: int = 1) -> dict:
    return {"code": code, "geom": geom, "households": households, "street_id": street}


# ---- 5. merge finds neighbours whose vertices do not line up -----------------------------------

def test_merge_finds_a_neighbour_whose_shared_edge_vertices_do_not_line_up():
    assert shapely.intersection(SMALL.boundary, INTO.boundary).length < 1.0  # the old measure: nothing shared
    small, into, west, east = _wgs84(SMALL, INTO, WEST, EAST)
    rows = [_row("420199001001", small, 578), _row("420199001002", into, 1756),
            _row("420199001003", west, 4800), _row("420199001004", east, 4900)]
    groups, notes = merge.propose(rows, "community", 1000, 5000)
    assert notes == []
    assert [(g["small"]["code"], g["into"]["code"]) for g in groups] == [("420199001001", "420199001002")]
    assert groups[0]["shared_m"] == pytest.approx(190, abs=1.5)
    assert groups[0]["households"] == 578 + 1756


def test_merge_still_refuses_units_that_only_come_near():
    # 2 m apart, more than the tolerance: not neighbours
    apart = shapely.affinity.translate(SMALL, 0, -2)
    rows = [_row("420199001001", *_wgs84(apart), 578), _row("420199001002", *_wgs84(INTO), 1756)]
    groups, notes = merge.propose(rows, "community", 1000, 5000)
    assert groups == [] and "has no neighbour" in notes[0]


def test_small_neighbourhoods_merge_only_within_one_grid_and_one_compound():
    """Found by the redraw fuzzer: two neighbourhoods of one compound but different grids were
    merged, and the merged one reached 29.6 m outside its grid at commit."""
    small, into = _wgs84(SMALL, INTO)
    rows = [{"code": "420199001001C001N001", "geom": small, "households": 5, "grid_id": 1, "compound_id": 9},
            {"code": "420199001001C001N002", "geom": into, "households": 20, "grid_id": 2, "compound_id": 9}]
    groups, notes = merge.propose(rows, "neighbourhood", 10, 80)
    assert groups == [] and "same grid and compound" in notes[0]
    rows[1]["grid_id"] = 1
    groups, _ = merge.propose(rows, "neighbourhood", 10, 80)
    assert [(g["small"]["code"], g["into"]["code"]) for g in groups] == [
        ("420199001001C001N001", "420199001001C001N002")]


def _vertices(g: shapely.Geometry) -> set[tuple[float, float]]:
    return {(float(x), float(y)) for x, y in shapely.get_coordinates(g)}


def test_merged_geometry_leaves_no_sliver_and_still_matches_the_other_neighbours():
    merged = merge.merged_geometry(SMALL, INTO, "community", "test", merge.SHARE_TOLERANCE_M)
    assert merged.geom_type == "MultiPolygon" and len(merged.geoms) == 1
    assert all(len(p.interiors) == 0 for p in merged.geoms)  # no sliver hole along the old seam
    assert merged.area == pytest.approx(190 * 270, abs=0.01)  # the seam's slivers are filled
    assert _vertices(INTO) - {(95, 0.1)} <= _vertices(merged)  # the neighbour's outline is kept exactly
    # the other neighbours meet it vertex for vertex: a valid coverage, no gap, no overlap
    assert shapely.coverage_is_valid([merged, WEST, EAST])
    assert shapely.union_all([merged, WEST, EAST]).area == pytest.approx(400 * 270, abs=0.01)


def test_merged_geometry_fills_a_seam_open_at_its_ends():
    # the small unit stops 0.3 m short of the neighbour along the whole edge, and its corners lie
    # on the other neighbours' edges, not at the neighbour's vertices: the notch is filled, and the
    # small unit's corners stay, so the neighbours west and east still match
    small = Polygon([(0, -0.3), (0, -120), (190, -120), (190, -0.3)])
    west = Polygon([(-100, -120), (0, -120), (0, -0.3), (0, 0), (0, 150), (-100, 150)])
    east = Polygon([(190, -120), (300, -120), (300, 150), (190, 150), (190, 0), (190, -0.3)])
    merged = merge.merged_geometry(small, INTO, "community", "test", merge.SHARE_TOLERANCE_M)
    assert merged.area == pytest.approx(190 * 270, abs=0.05)
    assert {(0, -0.3), (190, -0.3)} <= _vertices(merged)
    assert shapely.coverage_is_valid([merged, west, east])


def _mm(low: int, high: int) -> st.SearchStrategy[float]:
    return st.integers(low, high).map(lambda v: v / 1000)  # surveyed to the millimetre


seam_vertices = st.lists(st.tuples(_mm(1000, 189_000), _mm(-200, 200)), max_size=6)
corner_gap = st.one_of(st.just(0.0), _mm(10, 200))


@settings(max_examples=60, deadline=None)
@given(seam_vertices, seam_vertices, corner_gap, corner_gap)
def test_merged_geometry_closes_any_seam_within_the_tolerance(on_into, on_small, west_gap, east_gap):
    # whatever vertices each side has along the shared edge, each up to 0.2 m off it, and
    # wherever the small unit's corners stop short of the neighbour's: one piece, no hole, the
    # land of both, every corner kept, the neighbours west and east still matched
    into = Polygon([(0, 0), *sorted(on_into), (190, 0), (190, 150), (0, 150)])
    small = Polygon([(0, -west_gap), (0, -120), (190, -120), (190, -east_gap), *sorted(on_small, reverse=True)])
    assume(into.is_valid and small.is_valid)
    west = Polygon([(-100, -120), (0, -120), (0, -west_gap), (0, 0), (0, 150), (-100, 150)])
    east = Polygon([(190, -120), (300, -120), (300, 150), (190, 150), (190, 0), (190, -east_gap)])
    merged = merge.merged_geometry(small, into, "community", "test", merge.SHARE_TOLERANCE_M)
    assert len(merged.geoms) == 1 and len(merged.geoms[0].interiors) == 0
    assert merged.area == pytest.approx(190 * 270, abs=0.01)
    assert {(0, -west_gap), (190, -east_gap), (0, 0), (190, 0), (0, 150), (190, 150)} <= _vertices(merged)
    assert shapely.coverage_is_valid([merged, west, east])


def test_merged_geometry_in_degrees_keeps_the_stored_vertices():
    small, into, west, east = _wgs84(SMALL, INTO, WEST, EAST)
    merged = merge.merged_geometry(small, into, "community", "test", merge.degrees(merge.SHARE_TOLERANCE_M))
    assert shapely.coverage_is_valid([merged, west, east])
    merged_m = crs.transform(np.array([merged], dtype=object), crs.WGS84, METRIC)[0]
    assert merged_m.area == pytest.approx(190 * 270, abs=0.05) and len(merged_m.geoms[0].interiors) == 0


# ---- 6c. a code stays with its land ------------------------------------------------------------

def _in_use(codes: set[str]):
    return lambda level, prefix: {c for c in codes if c.startswith(prefix)}


def _by_part(out: list[dict]) -> list[dict]:
    """name_parts lists the parts in code order (seq 1, 2, ...): back in the order given."""
    assert [p["seq"] for p in out] == list(range(1, len(out) + 1))
    assert [p["code"] for p in out] == sorted(p["code"] for p in out)
    return sorted(out, key=lambda p: p["part"])


def test_a_grid_code_passes_only_to_the_unit_holding_most_of_its_land():
    # old grids 008 (west) and 015 (east) of community 420199001005, 001-016 used before;
    # the redraw has a west part holding 40 % of 008, a middle part holding 60 % of 008 and
    # an east part holding all of 015
    community = {"level": "community", "code": "420199001005", "name": "黄鹤湖社区"}
    old = [("420199001005008", shapely.box(0, 0, 100, 100)), ("420199001005015", shapely.box(100, 0, 200, 100))]
    parts = [(shapely.box(0, 0, 40, 100), 300, None), (shapely.box(40, 0, 100, 100), 320, None),
             (shapely.box(100, 0, 200, 100), 400, None)]
    used = {f"420199001005{k:03d}" for k in range(1, 17)}
    out = _by_part(naming.name_parts(community, "grid", parts, old, _in_use(used)))
    codes = [p["code"] for p in out]
    assert codes[1] == "420199001005008" and codes[2] == "420199001005015"
    assert codes[0] == "420199001005017"  # fresh: never used, not even by a retired grid
    assert out[0]["name"] == "黄鹤湖社区第17网格"


def test_no_code_passes_when_no_part_holds_more_than_half():
    community = {"level": "community", "code": "420199001005", "name": "黄鹤湖社区"}
    old = [("420199001005003", shapely.box(0, 0, 90, 100))]
    parts = [(shapely.box(0, 0, 45, 100), 300, None), (shapely.box(45, 0, 90, 100), 300, None)]
    out = naming.name_parts(community, "grid", parts, old, _in_use({"420199001005003"}))
    assert sorted(p["code"] for p in out) == ["420199001005001", "420199001005002"]


def test_one_new_unit_keeps_one_code_the_one_it_holds_most_of():
    old = [("A", shapely.box(0, 0, 100, 100)), ("B", shapely.box(100, 0, 200, 100))]
    new = [shapely.box(0, 0, 190, 100), shapely.box(190, 0, 200, 100)]
    assert naming.successors(old, new) == {0: "A"}  # holds all of A, 90 % of B; B's code retires


def test_a_unit_split_into_its_own_level_keeps_its_code_only_on_most_of_its_land():
    grid = {"level": "grid", "code": "420199001005007", "name": "黄鹤湖社区第7网格"}
    outline = shapely.box(0, 0, 100, 100)
    used = {f"420199001005{k:03d}" for k in range(1, 25)}
    # the part with most households holds less than half of the land: it does not keep the code
    parts = [(shapely.box(0, 0, 30, 100), 450, None), (shapely.box(30, 0, 100, 100), 250, None)]
    out = _by_part(naming.name_parts(grid, "grid", parts, [(grid["code"], outline)], _in_use(used)))
    assert [p["code"] for p in out] == ["420199001005025", "420199001005007"]
    assert out[1]["name"] == "黄鹤湖社区第7网格（一）"
    # three parts, none holding half: every code is new, numbered west to east
    parts = [(shapely.box(x, 0, x + 100 / 3, 100), 200, None) for x in (200 / 3, 0, 100 / 3)]
    out = _by_part(naming.name_parts(grid, "grid", parts, [(grid["code"], outline)], _in_use(used)))
    assert [p["code"][-3:] for p in out] == ["027", "025", "026"]


# ---- 6b. small neighbourhoods named after their buildings --------------------------------------

def _building(code: str, name: str, x: float, households: int) -> Feature:
    return Feature(code, shapely.box(x, 10, x + 60, 22), households, "420199001001C001", name)


def test_small_neighbourhoods_are_named_after_their_buildings_and_entrances():
    b1 = _building("420199001001C001B001", "首义岭片区1栋", 10, 120)  # 4 entrances of 30
    b2 = _building("420199001001C001B002", "首义岭片区2栋", 90, 40)
    attrs = {b1.code: {"entrances": 4}, b2.code: {"entrances": 2}}
    comp = "420199001001C001"
    pieces = [(shapely.box(0, 0, 40, 40), 60, comp), (shapely.box(40, 0, 85, 40), 60, comp),
              (shapely.box(85, 0, 160, 40), 40, comp), (shapely.box(160, 0, 200, 40), 0, comp)]
    held = neighbourhoods.holdings(pieces, [b1, b2], 80, attrs)
    labels = [neighbourhoods.label(h, "首义岭片区") for h in held]
    assert labels == ["首义岭片区1栋1-2单元", "首义岭片区1栋3-4单元", "首义岭片区2栋1-2单元", "首义岭片区"]
    assert [neighbourhoods.attributes(h) for h in held] == [
        {"building_code": b1.code}, {"building_code": b1.code}, {"building_code": b2.code}, {}]
    two = neighbourhoods.label([(b1, [4], 4, 30), (b2, [1, 2], 2, 40)], "首义岭片区")
    assert two == "首义岭片区1栋4单元、2栋1-2单元"
    assert neighbourhoods.attributes([(b1, [4], 4, 30), (b2, [1, 2], 2, 40)]) == {
        "building_code": b2.code, "building_codes": [b1.code, b2.code]}


def test_small_neighbourhood_names_are_unique_in_their_grid():
    grid = {"level": "grid", "code": "420199001005001", "name": "黄鹤湖社区第1网格"}
    parts = [(shapely.box(0, 0, 10, 10), 20, "420199001005C001"), (shapely.box(10, 0, 20, 10), 20, "420199001005C002"),
             (shapely.box(20, 0, 30, 10), 20, "420199001005C002")]
    out = _by_part(naming.name_parts(grid, "neighbourhood", parts, [], _in_use(set()),
                                     labels=["桂园1栋", "桂园1栋", "荷塘苑"]))
    names = [p["name"] for p in out]
    assert len(set(names)) == 3 and names[0] == "桂园1栋邻里" and names[2] == "荷塘苑邻里"
    assert not any(n.startswith(grid["name"]) for n in names)
    assert [p["code"] for p in out] == ["420199001005C001N001", "420199001005C002N001", "420199001005C002N002"]


# ---- 6a. figures are the sums of what a unit holds ---------------------------------------------

def test_population_is_apportioned_and_totals_are_kept():
    parts = [shapely.box(0, 0, 50, 100), shapely.box(50, 0, 100, 100)]
    sources = [(shapely.box(0, 0, 50, 50), 101), (shapely.box(25, 50, 75, 100), 99), (shapely.Point(80, 10), 7),
               (shapely.box(60, 60, 70, 70), None)]
    pops = naming.apportion(naming.by_area(parts, sources))
    assert sum(pops) == 101 + 99 + 7
    assert pops == [101 + 50, 49 + 7] or pops == [101 + 49, 50 + 7]
    assert naming.apportion(naming.by_area(parts, [(shapely.box(0, 0, 10, 10), None)])) == [None, None]
    # a merge: the sum of the two, a missing figure counting as none
    assert naming.apportion([[(1.0, 578), (1.0, None)]]) == [578]
    assert naming.apportion([[(1.0, 0), (1.0, 0)]]) == [0]


def test_a_small_neighbourhood_counts_its_share_of_its_buildings_people():
    b = _building("B1", "1栋", 0, 120)
    held = [(b, [1, 2, 3], 4, 90)]
    assert naming.apportion([neighbourhoods.population_shares(held, {"B1": 300})]) == [225]
