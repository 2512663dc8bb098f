"""Load -> export round trips, and bad files rejected whole with the database unchanged."""

import json

import geopandas as gpd
import numpy as np
import psycopg
import pyogrio
import pytest
import shapely

from geo.coords import crs as crsmod
from geo.coords import datums
from geo.coords.points import CHINA
from geo.errors import InvalidInput
from geo.units.model import UnitInput, prepare
from geo.usecases.units import SAMPLE_PATH, load_file
from tests import shapes
from tests.conftest import run_cli


def _load_upper_levels(url=None):
    load_file(SAMPLE_PATH, "street", layer="street", url=url)
    load_file(SAMPLE_PATH, "community", layer="community", url=url)


def _max_distance_m(a: np.ndarray, b: np.ndarray) -> float:
    am, metric = crsmod.to_metric(a)
    bm = crsmod.transform(b, crsmod.WGS84, metric)
    return float(np.max(shapely.hausdorff_distance(am, bm)))


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
def test_load_export_round_trip_within_a_centimetre(db_url, tmp_path, fmt):
    """Grids written in CGCS2000 / Gauss-Kruger (EPSG:4547, metres), loaded, exported, compared."""
    _load_upper_levels()
    original = gpd.read_file(SAMPLE_PATH, layer="grid").sort_values("code").reset_index(drop=True)
    projected = original.to_crs(4547)
    src = tmp_path / "grids_4547.gpkg"
    projected.to_file(src, driver="GPKG")

    loaded = run_cli("load", str(src), "--level", "grid")
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stderr.strip().splitlines()[-1])["created"] == len(original)

    out = tmp_path / f"grids.{fmt}"
    exported = run_cli("export", "--level", "grid", "--format", fmt, "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    back = gpd.read_file(out).sort_values("code").reset_index(drop=True)
    assert back.crs.to_epsg() == 4326
    assert list(back["code"]) == list(original["code"])
    assert list(back["name"]) == list(original["name"])  # Chinese names survive, Shapefile too
    assert list(back["households"]) == list(original["households"])
    parent = "commun_cd" if fmt == "shp" else "community_code"
    assert list(back[parent]) == list(original["community_code"])
    assert _max_distance_m(original.geometry.values, back.geometry.values) < 0.01

    # the exported file loads again as "nothing changed"
    again = load_file(out, "grid")
    assert (again["created"], again["changed"], again["unchanged"]) == (0, 0, len(original))


def _state(url):
    with psycopg.connect(url) as conn:
        return (
            conn.execute("SELECT count(*) FROM unit_version").fetchone()[0],
            conn.execute("SELECT count(*) FROM change_set").fetchone()[0],
            conn.execute("SELECT count(*) FROM unit").fetchone()[0],
        )


def _grid_file(tmp_path, bad_row, name="bad.geojson", crs=4326):
    rows = shapes.grid_rows() + [bad_row]
    return shapes.write(tmp_path / name, rows, crs=crs)


@pytest.fixture
def small(db_url, tmp_path):
    load_file(shapes.write(tmp_path / "s.geojson", shapes.street_rows()), "street")
    load_file(shapes.write(tmp_path / "c.geojson", shapes.community_rows()), "community")
    return db_url


def test_broken_geometry_is_rejected_whole(small, tmp_path):
    x0, y0 = shapes.rect(300, 300, 300, 300).exterior.coords[0]
    d = 0.001
    bowtie = shapely.Polygon([(x0, y0), (x0 + d, y0 + d), (x0 + d, y0), (x0, y0 + d), (x0, y0)])
    path = _grid_file(tmp_path, {"code": shapes.COMMUNITY + "003", "name": "坏网格", "geometry": bowtie})
    before = _state(small)
    with pytest.raises(InvalidInput, match=r"feature 3 \(grid 420199001001003\): invalid geometry \(Self-intersection"):
        load_file(path, "grid")
    assert _state(small) == before


def test_slightly_invalid_geometry_is_repaired(small, tmp_path):
    """A ring that touches itself at a point (a 'bow' of zero width) repairs within 0.1 %."""
    poly = shapes.rect(0, 0, 200, 400)
    coords = list(poly.exterior.coords)[:-1]
    # repeat a vertex out and back: a zero-area spike, invalid, repaired to the same area
    spike = [coords[0], coords[1], shapes.rect(100, -0.0, 100, 0).exterior.coords[0], coords[1], *coords[2:]]
    bad = shapely.Polygon(spike)
    assert not bad.is_valid
    rows = [{"code": shapes.COMMUNITY + "001", "name": "修复网格", "households": 400, "geometry": bad}]
    result = load_file(shapes.write(tmp_path / "spike.geojson", rows), "grid")
    assert result["created"] == 1
    with psycopg.connect(small) as conn:
        assert conn.execute("SELECT bool_and(ST_IsValid(geom)) FROM unit_version").fetchone()[0]


def test_child_outside_parent_is_rejected_whole(small, tmp_path):
    row = {"code": shapes.COMMUNITY + "003", "name": "越界网格", "geometry": shapes.rect(300, 0, 430, 100)}
    before = _state(small)
    with pytest.raises(InvalidInput,
                       match=r"grid 420199001001003\): reaches 30\.0 m outside its community 420199001001"):
        load_file(_grid_file(tmp_path, row), "grid")
    assert _state(small) == before


def test_child_within_half_a_metre_of_its_parent_is_accepted(small, tmp_path):
    rows = [{"code": shapes.COMMUNITY + "001", "name": "贴边网格", "geometry": shapes.rect(-0.4, 0, 200, 400.3)}]
    assert load_file(shapes.write(tmp_path / "edge.geojson", rows), "grid")["created"] == 1


def test_child_outside_every_parent_is_rejected(small, tmp_path):
    row = {"code": "420199001009001", "name": "远处网格", "geometry": shapes.rect(5000, 5000, 5100, 5100)}
    with pytest.raises(InvalidInput, match="lies outside every stored community"):
        load_file(_grid_file(tmp_path, row), "grid")


def test_code_that_names_another_parent_is_rejected(small, tmp_path):
    rows = [{"code": "420199001002001", "name": "错码网格", "geometry": shapes.rect(0, 0, 200, 400)}]
    with pytest.raises(InvalidInput, match="lies in community 420199001001, but its code says community 420199001002"):
        load_file(shapes.write(tmp_path / "code.geojson", rows), "grid")


def test_wrong_crs_is_named(small, tmp_path):
    """A file in Web Mercator metres read as if it were lon/lat."""
    frame = gpd.GeoDataFrame(shapes.grid_rows(), crs=4326).to_crs(3857)
    path = tmp_path / "mercator.gpkg"
    frame.to_file(path, driver="GPKG")
    before = _state(small)
    with pytest.raises(InvalidInput, match=r"look projected \(metres\): pass the file's CRS with --crs"):
        load_file(path, "grid", crs_text="wgs84")
    assert _state(small) == before
    # with its own CRS it loads
    assert load_file(path, "grid")["created"] == 2


def test_swapped_lat_lon_is_named(small, tmp_path):
    rows = shapes.grid_rows()
    rows[1]["geometry"] = shapely.transform(rows[1]["geometry"], lambda c: c[:, ::-1])
    before = _state(small)
    with pytest.raises(InvalidInput, match="look like latitude, longitude"):
        load_file(shapes.write(tmp_path / "swapped.geojson", rows), "grid")
    assert _state(small) == before


@pytest.mark.parametrize("text,message", [
    ("EPSG:999999", "unknown CRS 'EPSG:999999'"),
    ("not a crs", "unknown CRS"),
    ("", "no CRS given"),
])
def test_unknown_crs_is_refused(small, tmp_path, text, message):
    path = shapes.write(tmp_path / "g.geojson", shapes.grid_rows())
    with pytest.raises(InvalidInput, match=message):
        crsmod.parse(text)
    if text:
        with pytest.raises(InvalidInput, match=message):
            load_file(path, "grid", crs_text=text)


@pytest.mark.parametrize("name,forward", [
    ("gcj02", lambda x, y: datums.wgs84_to_gcj02(x, y)),
    ("bd09", lambda x, y: datums.wgs84_to_bd09(x, y)),
])
def test_gcj02_and_bd09_files_land_where_their_wgs84_originals_are(small, tmp_path, name, forward):
    """A file from Amap (GCJ-02) or Baidu (BD-09) loads onto the same ground, within 1 cm."""
    rows = shapes.grid_rows()
    originals = [r["geometry"] for r in rows]
    for r in rows:
        r["geometry"] = shapely.transform(r["geometry"], lambda c: np.column_stack(forward(c[:, 0], c[:, 1])))
    shifted = shapely.centroid(rows[0]["geometry"]).distance(shapely.centroid(originals[0]))
    assert shifted > 0.004  # hundreds of metres off before conversion
    load_file(shapes.write(tmp_path / f"{name}.geojson", rows), "grid", crs_text=name)
    with psycopg.connect(small) as conn:
        stored = [shapely.from_wkb(bytes(r[0])) for r in conn.execute(
            "SELECT ST_AsBinary(geom) FROM unit_version WHERE level = 'grid' ORDER BY code")]
    originals = [shapely.multipolygons([g]) for g in originals]
    assert _max_distance_m(np.array(originals, dtype=object), np.array(stored, dtype=object)) < 0.01


def test_file_without_crs_asks_for_one(small, tmp_path):
    path = tmp_path / "nocrs.shp"
    frame = gpd.GeoDataFrame(shapes.grid_rows(), crs=None)
    pyogrio.write_dataframe(frame, path, encoding="UTF-8")
    with pytest.raises(InvalidInput, match="does not say which CRS it is in: pass --crs"):
        load_file(path, "grid")
    assert load_file(path, "grid", crs_text="cgcs2000")["created"] == 2


def test_cli_reports_a_bad_file_and_exits_non_zero(small, tmp_path):
    row = {"code": shapes.COMMUNITY + "003", "name": "越界网格", "geometry": shapes.rect(300, 0, 430, 100)}
    before = _state(small)
    result = run_cli("load", str(_grid_file(tmp_path, row)), "--level", "grid")
    assert result.returncode == 2
    assert "reaches 30.0 m outside its community 420199001001" in result.stderr
    assert "Traceback" not in result.stderr
    assert _state(small) == before


def test_missing_parent_level_says_what_to_load_first(db_url, tmp_path):
    path = shapes.write(tmp_path / "g.geojson", shapes.grid_rows())
    with pytest.raises(InvalidInput, match="no community is stored: load the community level first"):
        load_file(path, "grid")


def test_duplicate_codes_in_one_file_are_refused(small, tmp_path):
    rows = shapes.grid_rows()
    rows[1]["code"] = rows[0]["code"]
    with pytest.raises(InvalidInput, match="appears twice"):
        load_file(shapes.write(tmp_path / "dup.geojson", rows), "grid")


def test_a_building_may_be_a_point_and_finds_its_compound_and_grid(sample_url, tmp_path):
    with psycopg.connect(sample_url) as conn:
        code, compound_id, grid_id, x, y = conn.execute(
            "SELECT v.code, v.compound_id, v.grid_id, ST_X(p), ST_Y(p) FROM unit_version v, "
            "ST_PointOnSurface(v.geom) p WHERE v.level = 'neighbourhood' ORDER BY v.code LIMIT 1"
        ).fetchone()
        compound_code = conn.execute("SELECT code FROM unit_version WHERE unit_id = %s", [compound_id]).fetchone()[0]
    rows = [{"code": compound_code + "B901", "name": "点状楼栋", "households": 24, "geometry": shapely.Point(x, y)}]
    result = load_file(shapes.write(tmp_path / "point.geojson", rows), "building")
    assert result["created"] == 1
    with psycopg.connect(sample_url) as conn:
        kind, c_id, g_id = conn.execute(
            "SELECT GeometryType(geom), compound_id, grid_id FROM unit_version WHERE code = %s",
            [compound_code + "B901"],
        ).fetchone()
    assert (kind, c_id, g_id) == ("POINT", compound_id, grid_id)


def test_a_grid_must_be_a_polygon(small, tmp_path):
    rows = [{"code": shapes.COMMUNITY + "001", "name": "点网格", "geometry": shapely.Point(114.301, 30.551)}]
    with pytest.raises(InvalidInput, match="a grid must be a polygon, not a point"):
        load_file(shapes.write(tmp_path / "p.geojson", rows), "grid")


def test_roads_load_with_the_district(sample_url):
    with psycopg.connect(sample_url) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM road GROUP BY kind").fetchall())
    assert set(kinds) == {"arterial", "local", "lane"} and sum(kinds.values()) == 1137


def test_a_child_covering_a_hole_of_its_parent_is_refused(db_url, tmp_path):
    """The street has a hole (an enclave that is not its land): a community over it is outside."""
    street = shapely.Polygon(shapes.rect(0, 0, 1000, 1000).exterior.coords,
                             [shapes.rect(300, 300, 700, 700).exterior.coords])
    load_file(shapes.write(tmp_path / "s.geojson", [{"code": shapes.STREET, "name": "有洞街道", "geometry": street}]),
              "street")
    rows = [{"code": shapes.COMMUNITY, "name": "跨洞社区", "geometry": shapes.rect(100, 100, 900, 900)}]
    with pytest.raises(InvalidInput, match=r"covers 160,000 m² that is not part of its street 420199001000"):
        load_file(shapes.write(tmp_path / "c.geojson", rows), "community")


def test_shapefile_export_replaces_only_its_own_files(sample_url, tmp_path):
    keep = [tmp_path / "grids.gpkg", tmp_path / "grids.csv"]
    for path in keep:
        path.write_text("mine")
    for _ in range(2):
        result = run_cli("export", "--level", "grid", "--format", "shp", "-o", str(tmp_path / "grids.shp"))
        assert result.returncode == 0, result.stderr
    assert all(p.read_text() == "mine" for p in keep)
    assert len(gpd.read_file(tmp_path / "grids.shp")) > 250


def test_counts_too_big_and_nul_characters_are_refused(small, tmp_path):
    rows = shapes.grid_rows()
    rows[0]["households"] = 3_000_000_000
    with pytest.raises(InvalidInput, match="households must be a whole number from 0 to 2147483647"):
        load_file(shapes.write(tmp_path / "big.geojson", rows), "grid")
    # GDAL cuts text at a NUL, so one can only arrive through the API or the store itself
    unit = UnitInput("grid", shapes.COMMUNITY + "001", "坏\x00名", shapes.rect(0, 0, 10, 10))
    with pytest.raises(InvalidInput, match="name contains a NUL character"):
        prepare([unit], "grid", CHINA)


def test_numeric_code_columns_load_as_codes(small, tmp_path):
    """Codes read as numbers (a column of digits, one parent code missing) still match."""
    rows = shapes.grid_rows()
    for r in rows:
        r["code"] = float(r["code"])
    rows[0]["community_code"] = float(shapes.COMMUNITY)
    rows[1]["community_code"] = None
    result = load_file(shapes.write(tmp_path / "numeric.gpkg", rows, driver="GPKG"), "grid")
    assert result["created"] == 2
    with psycopg.connect(small) as conn:
        codes = [r[0] for r in conn.execute("SELECT code FROM unit_version WHERE level = 'grid' ORDER BY code")]
    assert codes == [shapes.COMMUNITY + "001", shapes.COMMUNITY + "002"]


def test_gbk_shapefile_without_cpg_keeps_its_chinese_names(small, tmp_path):
    path = tmp_path / "gbk.shp"
    pyogrio.write_dataframe(gpd.GeoDataFrame(shapes.grid_rows(), crs=4326), path, encoding="GBK")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    load_file(path, "grid")
    with psycopg.connect(small) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM unit_version WHERE level = 'grid' ORDER BY code")]
    assert names == ["测试社区第1网格", "测试社区第2网格"]


def test_a_file_without_a_count_field_keeps_the_stored_counts(small, tmp_path):
    load_file(shapes.write(tmp_path / "g.geojson", shapes.grid_rows()), "grid")
    rows = shapes.grid_rows()
    for r in rows:
        del r["households"]
        r["name"] = r["name"] + "（改）"
    result = load_file(shapes.write(tmp_path / "names.geojson", rows), "grid")
    assert result["changed"] == 2
    with psycopg.connect(small) as conn:
        counts = [r[0] for r in conn.execute(
            "SELECT households FROM unit_version WHERE level = 'grid' AND valid_to IS NULL ORDER BY code")]
    assert counts == [450, 450]


def test_z_coordinates_are_dropped_and_empty_files_refused(small, tmp_path):
    rows = shapes.grid_rows()
    for r in rows:
        r["geometry"] = shapely.force_3d(r["geometry"], 12.5)
    assert load_file(shapes.write(tmp_path / "z.geojson", rows), "grid")["created"] == 2
    empty = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame({"code": [], "name": []}, geometry=[], crs=4326).to_file(empty, driver="GPKG")
    with pytest.raises(InvalidInput, match="has no features"):
        load_file(empty, "grid")


def test_a_grid_outside_every_community_says_so_when_communities_exist(small, tmp_path):
    rows = [{"code": shapes.COMMUNITY + "009", "name": "远方网格", "geometry": shapes.rect(3000, 3000, 3100, 3100)}]
    with pytest.raises(InvalidInput, match="lies outside every stored community"):
        load_file(shapes.write(tmp_path / "far.geojson", rows), "grid")
