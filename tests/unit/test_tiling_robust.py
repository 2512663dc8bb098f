"""Tiling and quality figures never let a GEOS TopologyException out (geo/planning/tiling.py
`valid`, `overlay`): a merged unit sent back from lon/lat can come out of the projection with a
spike whose sides cross an edge by micrometres, and GEOS then fails every overlay with it
("side location conflict"). Pure: hand-made polygons in metres."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.errors import GEOSException

from geo.coords import crs
from geo.errors import InvalidInput
from geo.planning import quality, tiling


def spiked(d: float = 0.01, d2: float = 0.01001, e: float = 1e-6, f: float = 2e-4) -> tuple[shapely.Polygon,
                                                                                               shapely.MultiPolygon]:
    """A unit with a 0.5 m spike up from A = (0, 0) whose return to B (`e`, `f`: a few hundred
    nanometres off A) runs on along an edge nearly parallel to the spike's (slopes `d`, `d2`):
    the edges cross a hair above A. And what it merges, two units meeting at A and B."""
    a, tip, b, nxt = (0.0, 0.0), (d * 0.5, 0.5), (e, f), (e + d2 * 30, f + 30)
    part = shapely.Polygon([(-80, 1), a, tip, b, nxt, (50, 30), (50, -30), (-80, -28)])
    below = shapely.Polygon([(-80, 1), a, (50, 0), (50, -30), (-80, -28)])
    above = shapely.Polygon([b, nxt, (50, 30), (50, 0)])
    return part, shapely.MultiPolygon([below, above])


# the merged neighbourhood of the sample (420199001006C001N006 + N007) in its local metric CRS,
# as it failed commit: a spike 0.5 m high whose sides cross the edge beside it
SAMPLE_PART = shapely.from_wkt(
    "POLYGON ((-76.29330783847286 7.984666222746633, 6.556721060586548 6.791293067160643, "
    "6.560829661064649 7.2892149670962105, 6.556722552045899 6.791473795927687, "
    "6.805123229448703 36.89526995986268, 54.15123382835636 36.49608388207974, "
    "53.71457662827634 6.112314185127473, 53.27791941077808 -24.27145551111668, "
    "-76.21096705351687 -21.627253962874153, -76.29330783847286 7.984666222746633))")
SAMPLE_TARGET = shapely.from_wkt(
    "MULTIPOLYGON (((53.27791941077808 -24.27145551111668, -76.21096705351687 -21.627253962874153, "
    "-76.29330783847286 7.984666222746633, 53.71457662827634 6.112314185127473, "
    "53.27791941077808 -24.27145551111668)), ((6.556722552045899 6.791473795927687, "
    "6.805123229448703 36.89526995986268, 54.15123382835636 36.49608388207974, "
    "53.71457662827634 6.112314185127473, 6.556722552045899 6.791473795927687)))")

METRIC = crs.local_metric(114.3, 30.55)
CASES = [pytest.param(*spiked(), id="hand-made spike"), pytest.param(SAMPLE_PART, SAMPLE_TARGET, id="sample merge")]


@pytest.mark.parametrize(("part", "target"), CASES)
def test_the_cases_do_break_a_plain_overlay(part, target):
    assert not part.is_valid
    with pytest.raises(GEOSException, match="side location conflict"):
        shapely.difference(target, part)


@pytest.mark.parametrize(("part", "target"), CASES)
def test_figures_and_problems_measure_a_part_made_invalid_by_projection(part, target):
    t = tiling.figures([part], target)
    assert t.gap < 0.01 and t.overlap < 0.01 and t.spill < 0.01
    assert t.union.is_valid
    assert tiling.problems(np.array([part], dtype=object), target, METRIC) == []
    # the other way round too: the target is the invalid one
    assert tiling.problems(np.array([target], dtype=object), part, METRIC) == []


@pytest.mark.parametrize(("part", "target"), CASES)
def test_quality_measures_such_parts(part, target):
    m = quality.measure([part], target, (1, 10**6), [], [], [shapely.LineString([(-100, 0), (100, 0)])])
    assert m["gap_m2"] < 0.01 and m["overlap_m2"] < 0.01 and m["outside_m2"] < 0.01
    assert m["parts"] == 1 and m["contiguous"] == 1
    # two parts of a tiling, one cut from the spiked part (the plain overlay fails on it)
    below = shapely.get_parts(target)[0]
    rest = tiling.overlay(shapely.difference, part, below)
    assert rest.is_valid and rest.area == pytest.approx(part.area - below.area, abs=0.01)
    m = quality.measure([below, rest], target, (1, 10**6), [], [], [])
    assert m["overlap_m2"] < 0.01 and m["gap_m2"] < 0.01 and m["outside_m2"] < 0.01
    assert quality.households_of(np.array([part], dtype=object), [], []).tolist() == [0]


def test_many_near_collinear_spikes_all_measure():
    failed = 0
    for d in (0.0, 0.003, 0.01, 0.1):
        for dd in (1e-6, 1e-5, 1e-4):
            for e in (0.0, 1e-7, 1e-6):
                for f in (1e-5, 1e-4, 2e-4):
                    part, target = spiked(d, d + dd, e, f)
                    try:
                        shapely.union_all([part, target])
                        shapely.difference(target, part)
                    except GEOSException:
                        failed += 1
                    t = tiling.figures([part], target)
                    assert t.gap < 0.01 and t.overlap < 0.01 and t.spill < 0.01, (d, dd, e, f)
    assert failed >= 10  # the scan does reach GEOS's failures


def test_repair_keeps_the_area_a_bad_part_covers():
    overlapping = shapely.MultiPolygon([shapely.box(0, 0, 2, 2), shapely.box(1, 0, 3, 2)])
    self_touching = shapely.Polygon([(0, 0), (4, 0), (4, 4), (2, 4), (3, 2), (2, 1), (1, 2), (2, 4), (0, 4)])
    bow_tie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    fixed = tiling.valid(np.array([overlapping, self_touching, bow_tie, None], dtype=object))
    assert shapely.is_valid(fixed[:3]).all() and fixed[3] is None
    assert fixed[0].area == pytest.approx(6.0)
    assert fixed[1].area == pytest.approx(16 - 3)  # the pocket the ring touches around stays out
    assert fixed[2].area == pytest.approx(50.0)  # both lobes, not one
    # overlapping parts of one unit are not an overlap between units
    t = tiling.figures([overlapping, shapely.box(3, 0, 4, 2)], shapely.box(0, 0, 4, 2))
    assert t.gap == pytest.approx(0) and t.overlap == pytest.approx(0) and t.spill == pytest.approx(0)
    # a self-touching ring tiles with what fills its pocket
    pocket = shapely.Polygon([(2, 4), (3, 2), (2, 1), (1, 2)])
    t = tiling.figures([self_touching, pocket], shapely.box(0, 0, 4, 4))
    assert t.gap == pytest.approx(0, abs=1e-9) and t.overlap == pytest.approx(0, abs=1e-9)


def test_snap_rounding_alone_does_not_save_an_invalid_part():
    part, target = spiked()
    with pytest.raises(GEOSException):
        shapely.difference(part, shapely.get_parts(target)[0], grid_size=1e-6)
    assert tiling.overlay(shapely.difference, part, shapely.get_parts(target)[0]).is_valid


def test_what_geos_cannot_overlay_is_invalid_input_naming_the_units():
    part, target = spiked()
    with pytest.raises(GEOSException) as caught:
        shapely.difference(target, part)
    far = shapely.box(1000, 1000, 1010, 1010)
    exc = tiling.unmeasurable(caught.value, np.array([far, part], dtype=object), ["neighbourhood A", "neighbourhood B"],
                              METRIC)
    assert isinstance(exc, InvalidInput)
    message = str(exc)
    assert "neighbourhood B" in message and "neighbourhood A" not in message  # the one where it failed
    assert "near " in message and "side location conflict" in message


def test_an_edit_next_to_a_spiked_neighbour_fits():
    neighbour, _ = spiked()  # as projected: invalid
    outline = shapely.box(-80, -30, 50, 30)
    edited = shapely.Polygon([(-80, -30), (50, -30), (50, -20), (-80, -20)])
    fitted = tiling.fit([neighbour, edited], [1], outline, ["neighbourhood A", "neighbourhood B"])
    assert all(shapely.is_valid(np.array(fitted.parts, dtype=object)))
    assert not shapely.intersection(fitted.parts[0], fitted.parts[1]).area > 0.01


@pytest.mark.parametrize(("part", "target"), CASES)
def test_validation_of_siblings_made_invalid_by_projection_reports_and_never_raises(part, target):
    """Found by the 500-step redraw walk: /validate answered 500 (side location conflict in
    geo/planning/checks.py siblings) on units valid in lon/lat but not once projected."""
    from geo.planning import checks

    neighbour = shapely.difference(target.buffer(5), target)  # a unit wrapped around the target
    rows = [{"code": "a", "households": 40}, {"code": "b", "households": 40}]
    geoms = np.array([part, neighbour], dtype=object)
    found = checks.siblings("neighbourhood", rows, geoms, METRIC, [0, 1], None, None)
    assert all(f["properties"]["problem"] in ("overlap", "not_checked") for f in found)
    grid = {"code": "g", "level": "grid"}
    found = checks.siblings("neighbourhood", rows, geoms, METRIC, [0, 1], grid, target.buffer(5).exterior.convex_hull)
    assert all(f["properties"]["problem"] in ("overlap", "gap", "outside_parent", "not_checked") for f in found)
