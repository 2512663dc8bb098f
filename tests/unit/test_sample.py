"""The sample district: deterministic, realistic, and every level tiles its parent."""

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo.coords import crs as crsmod
from geo.sample import district as sample
from geo.units import codes
from geo.usecases.units import SAMPLE_PATH


@pytest.fixture(scope="module")
def layers():
    return {name: gpd.read_file(SAMPLE_PATH, layer=name) for name in
            ("street", "community", "grid", "compound", "neighbourhood", "building", "road")}


@pytest.fixture(scope="module")
def metric(layers):
    """Every layer in a local metric CRS (metres)."""
    out = {}
    _, m = crsmod.to_metric(layers["street"].geometry.values)
    for name, frame in layers.items():
        out[name] = (frame.set_geometry(crsmod.transform(frame.geometry.values, crsmod.WGS84, m))
                     .set_crs(m, allow_override=True))
    return out


def test_shipped_sample_is_what_the_generator_makes_for_seed_7(layers):
    fresh = sample.generate(seed=7).layers
    for name, frame in layers.items():
        other = fresh[name]
        assert list(frame["code"]) == list(other["code"]), name
        assert list(frame["name"]) == list(other["name"]), name
        assert np.all(shapely.equals_exact(frame.geometry.values, other.geometry.values, 1e-9)), name


def test_same_seed_same_district_other_seed_other_district():
    a = sample.generate(seed=3, scale=0.25).layers["grid"]
    b = sample.generate(seed=3, scale=0.25).layers["grid"]
    c = sample.generate(seed=4, scale=0.25).layers["grid"]
    assert list(a["households"]) == list(b["households"])
    assert np.all(shapely.equals_exact(a.geometry.values, b.geometry.values, 0))
    assert list(a["households"]) != list(c["households"])


def test_sample_has_the_size_and_mix_the_planning_work_needs(layers):
    assert 3 <= len(layers["street"]) <= 6
    assert 35 <= len(layers["community"]) <= 60
    hh = layers["community"]["households"]
    assert (hh > 3000).sum() >= 3, "some oversized communities"
    assert (hh < 1000).sum() >= 3, "some undersized communities"
    grid_hh = layers["grid"]["households"]
    assert ((grid_hh >= 300) & (grid_hh <= 500)).mean() > 0.8
    nb = layers["neighbourhood"]["households"]
    assert nb.min() >= 10 and nb.max() <= 80
    assert (layers["building"]["floors"] >= 5).all()
    assert set(layers["road"]["kind"]) == {"arterial", "local", "lane"}
    assert all("社区" in n for n in layers["community"]["name"])
    assert set(layers["compound"]["kind"]) >= {"gated", "open_block"}


@pytest.mark.parametrize("child,parent", [
    ("community", "street"), ("grid", "community"), ("compound", "community"),
    ("neighbourhood", "compound"),
])
def test_children_tile_their_parent_without_gaps_or_overlaps(metric, child, parent):
    kids = metric[child]
    key = f"{parent}_code"
    parents = metric[parent]
    if child == "neighbourhood":  # neighbourhoods tile the compounds people live in
        parents = parents[parents["households"] > 0]
    for code, geom in zip(parents["code"], parents.geometry, strict=True):
        mine = kids[kids[key] == code].geometry.values
        assert len(mine), f"{parent} {code} has no {child}"
        union = shapely.union_all(mine)
        gap_or_spill = shapely.symmetric_difference(union, geom).area
        overlap = shapely.area(mine).sum() - union.area
        assert gap_or_spill < 1.0, f"{parent} {code}: {gap_or_spill:.2f} m² of gap"
        assert overlap < 1.0, f"{parent} {code}: {overlap:.2f} m² of overlap"


def test_every_grid_is_contiguous_and_no_grid_cuts_a_building(metric):
    grids = metric["grid"]
    assert all(len(g.geoms) == 1 for g in grids.geometry)
    tree = shapely.STRtree(grids.geometry.values)
    for b in metric["building"].geometry.values:
        hits = [i for i in tree.query(b) if shapely.intersection(grids.geometry.values[i], b).area > 0.01]
        assert len(hits) == 1


def test_neighbourhoods_lie_in_one_compound_and_one_grid(metric):
    nb = metric["neighbourhood"]
    for level in ("compound", "grid"):
        parents = metric[level].set_index("code").geometry
        outer = parents.loc[nb[f"{level}_code"]].values
        assert np.all(shapely.covers(shapely.buffer(outer, 0.01), nb.geometry.values))


def test_codes_tell_the_chain_of_parents(layers):
    for code in layers["street"]["code"]:
        codes.check("street", code)
    for _, row in layers["grid"].iterrows():
        assert codes.check("grid", row["code"])[:12] == row["community_code"]
    for _, row in layers["neighbourhood"].iterrows():
        assert codes.implied_parent("neighbourhood", row["code"], "compound") == row["compound_code"]
    for _, row in layers["community"].iterrows():
        assert codes.implied_parent("community", row["code"], "street") == row["street_code"]
