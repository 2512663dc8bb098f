"""Editing plans (issue 13, items 4 and 7) against the sample district in a real PostGIS:
partial edits (only the changed features, matched by code) fitted among the other units,
GCJ-02 edits, invalid polygons refused naming the feature, and a plan that reports before
commit what commit would refuse."""

from __future__ import annotations

import json
import re

import numpy as np
import psycopg
import pytest
import shapely
import shapely.affinity

from geo.coords import crs, datums
from geo.errors import Conflict, InvalidInput
from geo.usecases import plan_edits, plans

# ---- helpers (the API tests use them too) -----------------------------------------------------


def oversized_community(conn) -> int:
    return conn.execute("SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'community' "
                        "AND households > 3000 ORDER BY code LIMIT 1").fetchone()[0]


def to_metric(geom, metric):
    return crs.transform(np.array([geom], dtype=object), crs.WGS84, metric)[0]


def to_wgs84(geom_m, metric):
    return crs.transform(np.array([geom_m], dtype=object), metric, crs.WGS84)[0]


def gcj02(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(datums.wgs84_to_gcj02(xy[:, 0], xy[:, 1])))


def with_spike(part_m, outline_m, height: float):
    """`part_m` (metric) with a spike 0.4 m wide pushed `height` metres out of `outline_m` from
    the middle of one of its edges that runs along the outline (a vertex added and moved out,
    as in QGIS): 0.2 m² per metre of height, under the 1 m² of tiling rounding at 3 m."""
    poly = max(shapely.get_parts(part_m), key=lambda p: p.area)
    ring = np.asarray(poly.exterior.coords)
    edge = outline_m.boundary
    for k in range(len(ring) - 1):
        p, q = ring[k], ring[k + 1]
        length = float(np.hypot(*(q - p)))
        if length < 4 or edge.distance(shapely.Point(p)) > 1e-3 or edge.distance(shapely.Point(q)) > 1e-3:
            continue
        t = (q - p) / length
        mid = (p + q) / 2
        if edge.distance(shapely.Point(mid)) > 1e-3:
            continue
        n = np.array([-t[1], t[0]])
        if outline_m.contains(shapely.Point(mid + n * 0.05)):
            n = -n  # outwards
        spike = [mid - 0.2 * t, mid + height * n, mid + 0.2 * t]
        coords = [*ring[:k + 1], *spike, *ring[k + 1:]]
        return shapely.Polygon(coords, [i.coords for i in poly.interiors])
    raise AssertionError("no edge of the part runs along the outline")


def feature(code: str, geom) -> dict:
    return {"type": "Feature", "properties": {"code": code}, "geometry": shapely.geometry.mapping(geom)}


def exported(conn, plan_id: int) -> dict[str, dict]:
    """The plan's own export, by code."""
    return {f["properties"]["code"]: f for f in json.loads(plans.plan_geojson(conn, plan_id))["features"]}


def _shapes(conn, plan_id: int, metric) -> dict[str, object]:
    return {c: to_metric(shapely.geometry.shape(f["geometry"]), metric) for c, f in exported(conn, plan_id).items()}


def _neighbours(shapes: dict[str, object]) -> tuple[str, str]:
    """Two proposed units sharing the longest edge."""
    codes = sorted(shapes)
    pairs = [(shapely.intersection(shapes[a].boundary, shapes[b].boundary).length, a, b)
             for i, a in enumerate(codes) for b in codes[i + 1:]]
    _, a, b = max(pairs)
    return a, b


def same_figures(m: dict, drawn: dict) -> None:
    """The figures of an edited plan are those of the plan as drawn (areas to the rounding of
    a trip through lon/lat and the 1 mm grid)."""
    for k in ("households", "contiguous", "commit_problems", "targets_missed"):
        assert m[k] == drawn[k], k
    for k in ("gap_m2", "overlap_m2", "outside_m2", "road_or_wall_share", "polsby_popper_mean"):
        assert m[k] == pytest.approx(drawn[k], abs=0.01), k


@pytest.fixture
def grid_plan(sample_url):
    """A connection, a plan splitting the first oversized community into grids, and its context."""
    with psycopg.connect(sample_url, autocommit=True) as conn:
        community = oversized_community(conn)
        plan = plans.draw_split(conn, community, "grid", seed=0)
        assert plan["metrics"]["targets_missed"] == [] and plan["metrics"]["commit_problems"] == []
        yield conn, plan, plans.load_context(conn, community)


# ---- item 4: partial edits are the normal path --------------------------------------------------


def test_one_feature_sent_back_unchanged_from_the_export_is_a_new_revision_that_changes_nothing(grid_plan):
    conn, plan, ctx = grid_plan
    before = _shapes(conn, plan["id"], ctx.metric)
    code = sorted(before)[0]
    edited = plan_edits.edit_plan(conn, plan["id"], [exported(conn, plan["id"])[code]], expected_revision=1)
    assert edited["revision"] == 2
    m = edited["metrics"]
    same_figures(m, plan["metrics"])
    assert m["edit"] == {"codes": [code], "cut_beyond_outline_m2": {}, "given_way_m2": {}}
    after = _shapes(conn, plan["id"], ctx.metric)
    assert all(after[c].symmetric_difference(before[c]).area < 0.01 for c in before)
    [row] = conn.execute("SELECT detail FROM audit_log WHERE action = 'plan.edit' AND subject_ids = %s::bigint[]",
                         [[plan["id"]]]).fetchall()
    assert row[0]["codes"] == [code]
    assert plans.commit_plan(conn, plan["id"], expected_revision=2)["status"] == "committed"


def test_an_edit_wins_over_its_neighbour_which_gives_way(grid_plan):
    conn, plan, ctx = grid_plan
    shapes = _shapes(conn, plan["id"], ctx.metric)
    a, b = _neighbours(shapes)
    taken = shapely.intersection(shapes[b], shapes[a].buffer(12, join_style="mitre"))
    grown = shapely.union_all([shapes[a], taken])
    edited = plan_edits.edit_plan(conn, plan["id"], [feature(a, to_wgs84(grown, ctx.metric))], expected_revision=1)
    m = edited["metrics"]
    assert m["edit"]["given_way_m2"] == {b: pytest.approx(taken.area, rel=0.01)}
    after = _shapes(conn, plan["id"], ctx.metric)
    assert after[b].area == pytest.approx(shapes[b].area - taken.area, rel=0.01)
    assert after[a].area == pytest.approx(grown.area, rel=0.01)
    assert m["overlap_m2"] <= 1 and m["gap_m2"] <= 1 and m["outside_m2"] <= 1
    assert sum(m["households"]) == sum(plan["metrics"]["households"])
    # the units share their edge vertex for vertex: no overlap, no gap between them
    assert shapely.intersection(after[a], after[b]).area < 1e-3
    assert not any("tile" in t or "gap" in t for t in m["targets_missed"])


def test_a_gap_left_by_an_edit_is_reported_and_commit_refuses_it_for_the_same_reason(grid_plan):
    conn, plan, ctx = grid_plan
    code = sorted(exported(conn, plan["id"]))[1]
    shrunk = to_metric(shapely.geometry.shape(exported(conn, plan["id"])[code]["geometry"]), ctx.metric).buffer(-8)
    edited = plan_edits.edit_plan(conn, plan["id"], [feature(code, to_wgs84(shrunk, ctx.metric))],
                                  expected_revision=1)
    m = edited["metrics"]
    assert m["gap_m2"] > 100
    [gap] = [p for p in m["commit_problems"] if "gap" in p]
    assert any(t.startswith("commit would be refused: the plan leaves a gap") for t in m["targets_missed"])
    with pytest.raises(InvalidInput, match=re.escape(gap.removeprefix("the plan "))):
        plans.commit_plan(conn, plan["id"])


def test_a_feature_covering_a_whole_neighbour_is_refused_naming_both(grid_plan):
    conn, plan, ctx = grid_plan
    shapes = _shapes(conn, plan["id"], ctx.metric)
    a, b = _neighbours(shapes)
    both = to_wgs84(shapely.union_all([shapes[a], shapes[b]]), ctx.metric)
    with pytest.raises(InvalidInput, match=f"feature 1 \\({a}\\): covers all of grid {b}"):
        plan_edits.edit_plan(conn, plan["id"], [feature(a, both)], expected_revision=1)
    assert plans.get_plan(conn, plan["id"])["revision"] == 1


def test_a_gcj02_edit_lands_where_the_wgs84_one_does(grid_plan):
    conn, plan, ctx = grid_plan
    before = _shapes(conn, plan["id"], ctx.metric)
    code = sorted(before)[2]
    sent = gcj02(shapely.geometry.shape(exported(conn, plan["id"])[code]["geometry"]))
    assert to_metric(sent, ctx.metric).centroid.distance(before[code].centroid) > 300  # GCJ-02 is off by ~585 m
    edited = plan_edits.edit_plan(conn, plan["id"], [feature(code, sent)], expected_revision=1, crs_text="gcj02")
    assert edited["revision"] == 2
    same_figures(edited["metrics"], plan["metrics"])
    assert _shapes(conn, plan["id"], ctx.metric)[code].symmetric_difference(before[code]).area < 0.01


def test_a_self_intersecting_ring_is_made_valid_or_refused_naming_the_feature(grid_plan):
    conn, plan, ctx = grid_plan
    shapes = _shapes(conn, plan["id"], ctx.metric)
    code = sorted(shapes)[0]
    poly = max(shapely.get_parts(shapes[code]), key=lambda p: p.area)
    ring = np.asarray(poly.exterior.coords)
    k = int(np.argmax(np.hypot(*np.diff(ring, axis=0).T)))
    p, q = ring[k], ring[k + 1]
    t = (q - p) / np.hypot(*(q - p))
    n, mid = np.array([-t[1], t[0]]), (p + q) / 2
    # a small loop from the middle of the longest edge, across the edge and back: the ring crosses itself
    loop = [mid, mid + 0.5 * t + 0.3 * n, mid + 0.5 * t - 0.3 * n, mid]
    crossed = shapely.Polygon([*ring[:k + 1], *loop, *ring[k + 1:]])
    assert not crossed.is_valid
    edited = plan_edits.edit_plan(conn, plan["id"], [feature(code, to_wgs84(crossed, ctx.metric))],
                                  expected_revision=1)
    assert edited["revision"] == 2 and edited["metrics"]["commit_problems"] == []
    # a bowtie cannot be repaired without changing it beyond recognition: refused, naming it
    x0, y0, x1, y1 = shapes[code].bounds
    bowtie = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    with pytest.raises(InvalidInput, match=f"feature 2 \\({code}\\): invalid geometry \\(Self-intersection"):
        plan_edits.edit_plan(conn, plan["id"], [exported(conn, plan["id"])[sorted(shapes)[1]],
                                                feature(code, to_wgs84(bowtie, ctx.metric))], expected_revision=2)
    assert plans.get_plan(conn, plan["id"])["revision"] == 2


def test_features_that_are_not_the_plans_are_refused(grid_plan):
    conn, plan, ctx = grid_plan
    f = next(iter(exported(conn, plan["id"]).values()))
    with pytest.raises(InvalidInput, match="feature 2 .*same code"):
        plan_edits.edit_plan(conn, plan["id"], [f, f], expected_revision=1)
    with pytest.raises(InvalidInput, match="code 'nope' is not a unit of plan"):
        plan_edits.edit_plan(conn, plan["id"], [f | {"properties": {"code": "nope"}}], expected_revision=1)
    far = shapely.affinity.translate(shapely.geometry.shape(f["geometry"]), xoff=0.05)  # ~5 km east
    with pytest.raises(InvalidInput, match="nothing of it lies inside the area the plan redraws.*crs"):
        plan_edits.edit_plan(conn, plan["id"], [feature(f["properties"]["code"], far)], expected_revision=1)


# ---- item 7: what a plan reports is what commit checks ------------------------------------------


def test_a_vertex_moved_out_of_the_outline_is_reported_before_commit(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        grid = conn.execute("SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'grid' "
                            "ORDER BY code OFFSET 40 LIMIT 1").fetchone()[0]
        plan = plans.draw_split(conn, grid, "neighbourhood", seed=0)
        assert plan["metrics"]["commit_problems"] == []
        ctx = plans.load_context(conn, grid)
        outline = plans._outline_for(ctx, "neighbourhood")
        shapes = _shapes(conn, plan["id"], ctx.metric)
        along = outline.boundary.buffer(0.01)
        code = next(c for c in sorted(shapes) if shapes[c].boundary.intersection(along).length > 10)
        # 0.3 m out is rounding: cut off, and the plan still commits
        near = plan_edits.edit_plan(conn, plan["id"], [feature(code, to_wgs84(
            with_spike(shapes[code], outline, 0.3), ctx.metric))], expected_revision=1)
        assert near["metrics"]["commit_problems"] == [] and near["metrics"]["edit"]["cut_beyond_outline_m2"]
        # 3 m out: under 1 m², so the tiling passes, but the unit reaches outside its parent
        far = plan_edits.edit_plan(conn, plan["id"], [feature(code, to_wgs84(
            with_spike(shapes[code], outline, 3.0), ctx.metric))], expected_revision=2)
        m = far["metrics"]
        assert m["outside_m2"] < 1
        [problem] = m["commit_problems"]
        assert re.match(f"neighbourhood {code}: reaches 3\\.\\d m outside its (grid|compound) ", problem), problem
        assert m["targets_missed"] == [f"commit would be refused: {problem}"]
        reach = problem.split(": ", 1)[1]
        with pytest.raises(InvalidInput, match=re.escape(reach)):
            plans.commit_plan(conn, plan["id"])
        # the refusal speaks of the commit, not of an edit
        with pytest.raises(Conflict, match=f"plan {plan['id']} is at revision 3, but the commit was asked for "
                                           "revision 2: review revision 3 and commit it"):
            plans.commit_plan(conn, plan["id"], expected_revision=2)
        with pytest.raises(Conflict, match="but the edit was made on revision 2: reload revision 3"):
            plan_edits.edit_plan(conn, plan["id"], [feature(code, to_wgs84(shapes[code], ctx.metric))],
                                 expected_revision=2)
        # sent back as drawn, it commits
        plan_edits.edit_plan(conn, plan["id"], [feature(code, to_wgs84(shapes[code], ctx.metric))],
                             expected_revision=3)
        assert plans.get_plan(conn, plan["id"])["metrics"]["targets_missed"] == []
        assert plans.commit_plan(conn, plan["id"], expected_revision=4)["status"] == "committed"


def test_a_merge_plan_edit_reports_what_commit_would_refuse(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        plan = plans.draw_merge(conn, "community", floor=1000)
        unit = exported(conn, plan["id"])
        code = sorted(unit)[0]
        same = plan_edits.edit_plan(conn, plan["id"], [unit[code]], expected_revision=1)
        assert same["metrics"]["commit_problems"] == [] and same["metrics"]["targets_missed"] == []
        geom = shapely.geometry.shape(unit[code]["geometry"])
        lon, lat = geom.centroid.coords[0]
        metric = crs.local_metric(lon, lat)
        shrunk = to_wgs84(to_metric(geom, metric).buffer(-20), metric)
        gap = plan_edits.edit_plan(conn, plan["id"], [feature(code, shrunk)], expected_revision=2)
        assert any("leaves a gap" in p for p in gap["metrics"]["commit_problems"])
        assert gap["metrics"]["targets_missed"][0].startswith("commit would be refused")
        with pytest.raises(InvalidInput, match="gap"):
            plans.commit_plan(conn, plan["id"])


def test_an_edit_of_a_plan_whose_units_were_retired_since_is_a_409(sample_url):
    """Found by the 500-step redraw walk: editing a merge plan whose units another commit had
    retired answered 500 (an empty target); a split plan whose parent was retired, 404."""
    import psycopg as pg

    with pg.connect(sample_url, autocommit=True) as conn:
        first = plans.draw_merge(conn, "community", floor=1000)
        second = plans.draw_merge(conn, "community", floor=1000)
        plans.commit_plan(conn, first["id"])
        shapes = plan_edits_export(conn, second["id"])
        code = sorted(shapes)[0]
        with pytest.raises(Conflict, match="draw the plan again"):
            plan_edits.edit_plan(conn, second["id"], [shapes[code]], expected_revision=1)


def plan_edits_export(conn, plan_id):
    data = json.loads(plans.plan_geojson(conn, plan_id))
    return {f["properties"]["code"]: {"type": "Feature", "properties": {"code": f["properties"]["code"]},
                                      "geometry": f["geometry"]} for f in data["features"]}
