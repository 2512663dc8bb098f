"""Point-in-grid over a real HTTP server: chains, boundary rule, coordinate systems,
fresh boundaries after a change, as_of, and every kind of bad input."""

import httpx
import numpy as np
import psycopg
import pytest
from shapely.geometry import box

from geo.coords import datums
from geo.db import units
from geo.units.model import UnitInput
from geo.usecases import boundaries
from geo.usecases.units import load_file
from tests import shapes

LEVELS = ("street", "community", "grid", "compound", "neighbourhood", "building")


def _ids(answer):
    return {lv: (answer[lv]["id"] if answer[lv] else None) for lv in LEVELS}


def test_a_point_in_each_neighbourhood_gets_its_whole_chain(client, sample_url):
    with psycopg.connect(sample_url) as conn:
        rows = conn.execute(
            "SELECT unit_id, street_id, community_id, grid_id, compound_id, ST_X(p), ST_Y(p) "
            "FROM unit_version, ST_PointOnSurface(geom) p WHERE level = 'neighbourhood' ORDER BY code"
        ).fetchall()
    body = [[r[5], r[6]] for r in rows]
    answer = client.post("/locate", json=body).json()
    assert answer["count"] == len(rows) > 2000
    for r, got in zip(rows, answer["results"], strict=True):
        assert got["inside"]
        assert (got["neighbourhood"], got["street"], got["community"], got["grid"], got["compound"]) == \
            (r[0], r[1], r[2], r[3], r[4])


@pytest.mark.parametrize("level", ["grid", "compound", "building", "community", "street"])
def test_a_point_in_each_unit_of_a_level_resolves_to_it(client, sample_url, level):
    with psycopg.connect(sample_url) as conn:
        rows = conn.execute(
            "SELECT unit_id, ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
            "WHERE level = %s ORDER BY code", [level],
        ).fetchall()
    answer = client.post("/locate", json=[[r[1], r[2]] for r in rows]).json()
    assert [a[level] for a in answer["results"]] == [r[0] for r in rows]


def test_random_points_agree_with_postgis_st_covers(client, sample_url):
    """An independent answer: PostGIS, unit by unit, for 3,000 random points around the district."""
    with psycopg.connect(sample_url) as conn:
        minx, miny, maxx, maxy = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) e FROM unit_version WHERE level = 'street') s").fetchone()
        rng = np.random.default_rng(42)
        xs = rng.uniform(minx - 0.003, maxx + 0.003, 3000)
        ys = rng.uniform(miny - 0.003, maxy + 0.003, 3000)
        truth = conn.execute(
            "SELECT p.i, v.level, v.unit_id FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY p(x, y, i) "
            "JOIN unit_version v ON v.valid_to IS NULL AND ST_Covers(v.geom, ST_SetSRID(ST_Point(p.x, p.y), 4326))",
            [xs.tolist(), ys.tolist()],
        ).fetchall()
    expected = [dict.fromkeys(LEVELS) for _ in range(3000)]
    for i, level, unit_id in truth:
        assert expected[i - 1][level] is None, "a random point landed on a boundary"
        expected[i - 1][level] = unit_id
    answer = client.post("/locate", json=np.column_stack([xs, ys]).tolist()).json()["results"]
    got = [{lv: a[lv] for lv in LEVELS} for a in answer]
    assert got == expected
    assert 0 < sum(a["inside"] for a in answer) < 3000  # some inside, some outside


def test_units_dictionary_and_get_agree_with_post(client):
    points = [[114.29, 30.54], [114.2951, 30.5432], [110.0, 20.0]]
    batch = client.post("/locate", json=points).json()
    for (lon, lat), result in zip(points, batch["results"], strict=True):
        one = client.get("/locate", params={"lon": lon, "lat": lat}).json()
        assert _ids(one) == {lv: result[lv] for lv in LEVELS}
        assert one["grid_boundary_distance_m"] == result["grid_boundary_distance_m"]
        for level in LEVELS:
            if result[level] is not None:
                table = batch["units"][level]
                assert table["code"][table["id"].index(result[level])] == one[level]["code"]


def test_a_point_outside_every_unit_is_200_with_nulls(client):
    answer = client.get("/locate", params={"lon": 110.0, "lat": 20.0})
    assert answer.status_code == 200
    body = answer.json()
    assert body["inside"] is False
    assert all(body[lv] is None for lv in LEVELS)
    assert body["grid_boundary_distance_m"] is None and body["near_grids"] == []


@pytest.mark.parametrize("crs,forward", [
    ("gcj02", datums.wgs84_to_gcj02),
    ("bd09", datums.wgs84_to_bd09),
])
def test_gcj02_and_bd09_reports_land_in_the_grid_of_their_wgs84_original(client, sample_url, crs, forward):
    with psycopg.connect(sample_url) as conn:
        rows = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
            "WHERE level = 'neighbourhood' ORDER BY code LIMIT 300").fetchall()
    wgs = np.array(rows)
    shifted = np.column_stack(forward(wgs[:, 0], wgs[:, 1]))
    original = client.post("/locate", json=wgs.tolist()).json()["results"]
    converted = client.post("/locate", params={"crs": crs}, json=shifted.tolist()).json()["results"]
    naive = client.post("/locate", json=shifted.tolist()).json()["results"]
    assert [r["neighbourhood"] for r in converted] == [r["neighbourhood"] for r in original]
    # read as WGS84, the same reports land hundreds of metres away: mostly in other units
    assert sum(a["neighbourhood"] != b["neighbourhood"] for a, b in zip(naive, original, strict=True)) > 250
    one = client.get("/locate", params={"lon": shifted[0, 0], "lat": shifted[0, 1], "crs": crs}).json()
    assert one["neighbourhood"]["id"] == original[0]["neighbourhood"]
    assert one["wgs84"]["lon"] == pytest.approx(wgs[0, 0], abs=1e-9)


def test_cgcs2000_and_projected_input(client):
    lon, lat = 114.29, 30.54
    plain = client.get("/locate", params={"lon": lon, "lat": lat}).json()
    assert _ids(client.get("/locate", params={"lon": lon, "lat": lat, "crs": "cgcs2000"}).json()) == _ids(plain)
    import pyproj

    x, y = pyproj.Transformer.from_crs(4326, 4547, always_xy=True).transform(lon, lat)
    projected = client.get("/locate", params={"lon": x, "lat": y, "crs": "EPSG:4547"}).json()
    assert _ids(projected) == _ids(plain)


def test_levels_filter_and_geojson_body(client):
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [114.29, 30.54]}, "properties": {}}]}
    answer = client.post("/locate", params={"levels": "grid,社区"}, json=fc).json()
    result = answer["results"][0]
    assert set(result) == {"inside", "community", "grid", "grid_boundary_distance_m", "near_grids"}
    objects = client.post("/locate", json=[{"lon": 114.29, "lat": 30.54}]).json()["results"][0]
    assert objects["grid"] == result["grid"]


@pytest.mark.parametrize("params,status,needle", [
    ({"lon": 114.3, "lat": 95}, 422, "not a longitude/latitude"),
    ({"lon": 30.55, "lat": 114.3}, 422, "looks like latitude, longitude"),
    ({"lon": 114.3, "lat": 30.55, "crs": "EPSG:999999"}, 422, "unknown CRS"),
    ({"lon": 114.3, "lat": 30.55, "crs": "mars"}, 422, "unknown CRS"),
    ({"lat": 30.55}, 422, "lon is required"),
    ({"lon": "x", "lat": 30.55}, 422, "lon must be a number"),
    ({"lon": "nan", "lat": 30.55}, 422, "finite"),
    ({"lon": 114.3, "lat": 30.55, "near": -1}, 422, "near"),
    ({"lon": 114.3, "lat": 30.55, "levels": "village"}, 422, "unknown level"),
    ({"lon": 114.3, "lat": 30.55, "as_of": "last week"}, 422, "ISO 8601"),
])
def test_bad_get_input_is_4xx(client, params, status, needle):
    answer = client.get("/locate", params=params)
    assert answer.status_code == status, answer.text
    assert needle in answer.json()["detail"]


@pytest.mark.parametrize("body,status,needle", [
    (b"[[114.3, 30.5", 422, "not valid JSON"),
    (b'{"points": []}', 422, "must be a JSON array"),
    (b"[[114.3]]", 422, "is not [lon, lat]"),
    (b'[[114.3, 30.5], ["a", 30.5]]', 422, "point 2"),
    (b'[{"lon": 114.3}]', 422, 'needs "lon" and "lat"'),
    (b'[[114.3, 30.5], [30.5, 114.3]]', 422, "point 2: (30.5, 114.3) looks like latitude, longitude"),
    (b'{"type": "FeatureCollection", "features": [{"geometry": {"type": "Polygon"}}]}', 422, "must be a Point"),
])
def test_bad_post_input_is_4xx(client, body, status, needle):
    answer = client.post("/locate", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert needle in answer.json()["detail"]


def test_more_than_100000_points_is_413_and_100000_is_fine(client):
    too_many = client.post("/locate", json=[[114.29, 30.54]] * 100_001)
    assert too_many.status_code == 413
    assert "at most 100,000 points" in too_many.json()["detail"]
    ok = client.post("/locate", json=[[114.29, 30.54]] * 100_000)
    assert ok.status_code == 200 and ok.json()["count"] == 100_000


# ---- hand-made grids with edges along lines of longitude and latitude --------------------

WEST, EAST, SOUTH, NORTH = 114.300, 114.320, 30.550, 30.570
MID_X, MID_Y = 114.310, 30.560


def _one_community(tmp_path, grids: list[dict]) -> None:
    """A street and a community covering the square, and the given grids in it."""
    cell = box(WEST, SOUTH, EAST, NORTH)
    load_file(shapes.write(tmp_path / "s.geojson", [{"code": shapes.STREET, "name": "街道", "geometry": cell}]),
              "street")
    load_file(shapes.write(tmp_path / "c.geojson", [{"code": shapes.COMMUNITY, "name": "社区", "geometry": cell}]),
              "community")
    load_file(shapes.write(tmp_path / "g.geojson", grids), "grid")


@pytest.fixture
def square_server(db_url, tmp_path, start_server):
    """One street, one community, four grids meeting at (MID_X, MID_Y)."""
    grids = [
        {"code": shapes.COMMUNITY + "001", "name": "西北", "geometry": box(WEST, MID_Y, MID_X, NORTH)},
        {"code": shapes.COMMUNITY + "002", "name": "东北", "geometry": box(MID_X, MID_Y, EAST, NORTH)},
        {"code": shapes.COMMUNITY + "003", "name": "西南", "geometry": box(WEST, SOUTH, MID_X, MID_Y)},
        {"code": shapes.COMMUNITY + "004", "name": "东南", "geometry": box(MID_X, SOUTH, EAST, MID_Y)},
    ]
    _one_community(tmp_path, grids)
    return start_server(db_url)


def _grid_name(client, lon, lat):
    body = client.get("/locate", params={"lon": lon, "lat": lat}).json()
    return body["grid"]["name"] if body["grid"] else None


def test_boundary_points_belong_to_exactly_one_grid_east_then_north(square_server):
    with httpx.Client(base_url=square_server) as client:
        assert _grid_name(client, MID_X, 30.565) == "东北"  # on the north-south line: east side
        assert _grid_name(client, MID_X, 30.555) == "东南"
        assert _grid_name(client, 114.305, MID_Y) == "西北"  # on the east-west line: north side
        assert _grid_name(client, 114.315, MID_Y) == "东北"
        assert _grid_name(client, MID_X, MID_Y) == "东北"  # the corner of all four
        # the outer edges of the covered area still belong to their grid, never to none
        assert _grid_name(client, EAST, 30.565) == "东北"
        assert _grid_name(client, 114.305, NORTH) == "西北"
        assert _grid_name(client, WEST, SOUTH) == "西南"
        # the same question always gets the same answer, one at a time or in a batch
        points = [[MID_X, 30.565], [114.305, MID_Y], [MID_X, MID_Y]] * 50
        batch = client.post("/locate", json=points).json()
        table = batch["units"]["grid"]
        names = {table["name"][table["id"].index(r["grid"])] for r in batch["results"]}
        assert names == {"东北", "西北"}
        assert [r["grid"] for r in batch["results"]] == [r["grid"] for r in batch["results"][:3]] * 50
        # just outside (1 m east of the district) is outside
        outside = client.get("/locate", params={"lon": EAST + 0.00001, "lat": 30.565}).json()
        assert outside["inside"] is False


def test_distance_to_boundary_and_near_grids(square_server):
    with httpx.Client(base_url=square_server) as client:
        # ~9.6 m west of the north-south line inside the north-west grid
        body = client.get("/locate", params={"lon": MID_X - 0.0001, "lat": 30.565}).json()
        assert body["grid"]["name"] == "西北"
        assert body["grid_boundary_distance_m"] == pytest.approx(9.59, abs=0.05)
        assert [g["name"] for g in body["near_grids"]] == ["东北"]
        far = client.get("/locate", params={"lon": MID_X - 0.0001, "lat": 30.565, "near": 5}).json()
        assert far["near_grids"] == []


def test_the_next_lookup_after_a_committed_change_sees_it_and_as_of_sees_the_old(db_url, square_server):
    point = {"lon": 114.3125, "lat": 30.565}  # in the north-east grid, 240 m east of the line
    with httpx.Client(base_url=square_server) as client:
        before = client.get("/locate", params=point).json()
        assert before["grid"]["name"] == "东北"
        with psycopg.connect(db_url) as conn:
            stamp = conn.execute("SELECT now()").fetchone()[0]
            conn.commit()
            old = [r[0] for r in conn.execute(
                "SELECT unit_id FROM unit_version WHERE level = 'grid' AND code IN (%s, %s) AND valid_to IS NULL",
                [shapes.COMMUNITY + "001", shapes.COMMUNITY + "002"])]
            west = UnitInput("grid", shapes.COMMUNITY + "005", "新西北", box(WEST, MID_Y, 114.315, NORTH))
            east = UnitInput("grid", shapes.COMMUNITY + "006", "新东北", box(114.315, MID_Y, EAST, NORTH))
            with conn.transaction():
                boundaries.replace_units(conn, old, [west, east], kind="redraw")
        after = client.get("/locate", params=point).json()
        assert after["grid"]["name"] == "新西北"
        then = client.get("/locate", params={**point, "as_of": stamp.isoformat()}).json()
        assert then["grid"]["name"] == "东北" and then["as_of"] is not None
        batch_then = client.post("/locate", params={"as_of": stamp.isoformat()},
                                 json=[[point["lon"], point["lat"]]]).json()
        assert batch_then["results"][0]["grid"] == before["grid"]["id"]


def test_single_point_path_answers_exactly_like_the_batch_path(sample_url):
    """GET uses a plain-Python path, POST the numpy one: same units, distances and neighbours,
    on random points and on points exactly on boundaries and vertices."""

    with psycopg.connect(sample_url) as conn:
        index = units.locator(conn)
        vertices = np.array(conn.execute(
            "SELECT ST_X(p.geom), ST_Y(p.geom) FROM (SELECT geom FROM unit_version WHERE level = 'grid' "
            "ORDER BY code LIMIT 60) g, ST_DumpPoints(g.geom) p").fetchall())
    grid = index.indexes["grid"]
    rng = np.random.default_rng(7)
    x0, y0 = grid.x0, grid.y0
    xs = np.concatenate([rng.uniform(x0, x0 + grid.nx * grid.sx, 3000), vertices[:, 0],
                         (vertices[:-1, 0] + vertices[1:, 0]) / 2])
    ys = np.concatenate([rng.uniform(y0, y0 + grid.ny * grid.sy, 3000), vertices[:, 1],
                         (vertices[:-1, 1] + vertices[1:, 1]) / 2])
    batch = index.locate(xs, ys)
    distance = grid.distance_to_boundary(xs, ys, batch["grid"])
    near = grid.near(xs, ys, 20.0, batch["grid"])
    for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
        one = index.locate_one(x, y)
        assert one == {lv: int(batch[lv][i]) for lv in LEVELS}, (i, x, y)
        d = grid.distance_one(x, y, one["grid"])
        assert (np.isnan(d) and np.isnan(distance[i])) or d == pytest.approx(distance[i], abs=1e-6)
        assert grid.near_one(x, y, 20.0, one["grid"]) == sorted(near[i])
    on_vertices = batch["grid"][3000:3000 + len(vertices)]
    assert (on_vertices >= 0).all()  # a vertex of a grid is never in no grid


@pytest.mark.parametrize("params,needle", [
    ({"lon": 114.3, "lat": 30.55, "crs": "IAU_2015:49900"}, "cannot be converted to WGS84"),
    ({"lon": 114.3, "lat": 30.55, "crs": "EPSG:5773"}, "not a two-dimensional"),
    ({"lon": 114.29, "lat": 30.54, "crs": "EPSG:3857"}, "check the CRS"),
    ({"lon": 3380000, "lat": 527000, "crs": "EPSG:4547"}, "check the CRS"),
    ({"lon": 114.3, "lat": 30.55, "levels": ","}, "names no level"),
    ({"lon": 114.3, "lat": 30.55, "near": 501}, "near"),
])
def test_more_bad_get_input_is_4xx(client, params, needle):
    answer = client.get("/locate", params=params)
    assert answer.status_code == 422, answer.text
    assert needle in answer.json()["detail"]


@pytest.mark.parametrize("body", [b"[[true, false]]", b'[["114.3", "30.5"]]', b"[[114.3, 30.5, 1, 2]]",
                                  b"[[[114.3, 30.5]]]"])
def test_points_must_be_numbers(client, body):
    answer = client.post("/locate", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert "is not [lon, lat]" in answer.json()["detail"]


def test_empty_batch_and_wide_near_radius(client):
    empty = client.post("/locate", json=[])
    assert empty.status_code == 200 and empty.json()["count"] == 0
    rng = np.random.default_rng(5)
    points = np.column_stack([rng.uniform(114.27, 114.31, 20_000), rng.uniform(30.53, 30.56, 20_000)])
    wide = client.post("/locate", params={"near": 500, "levels": "grid"}, json=points.tolist())
    assert wide.status_code == 200
    assert np.mean([len(r["near_grids"]) for r in wide.json()["results"]]) > 5


@pytest.fixture
def overlap_server(db_url, tmp_path, start_server):
    """Two grids that overlap by about 380 m (the store does not yet refuse overlaps)."""
    _one_community(tmp_path, [
        {"code": shapes.COMMUNITY + "002", "name": "乙", "geometry": box(WEST, SOUTH, MID_X + 0.002, NORTH)},
        {"code": shapes.COMMUNITY + "001", "name": "甲", "geometry": box(MID_X - 0.002, SOUTH, EAST, NORTH)},
    ])
    return start_server(db_url)


def test_points_in_an_overlap_go_to_the_lower_code_on_both_paths(overlap_server):
    rng = np.random.default_rng(9)
    xs = rng.uniform(MID_X - 0.00199, MID_X + 0.00199, 400)
    ys = rng.uniform(SOUTH + 0.0001, NORTH - 0.0001, 400)
    with httpx.Client(base_url=overlap_server) as client:
        batch = client.post("/locate", json=np.column_stack([xs, ys]).tolist()).json()
        table = batch["units"]["grid"]
        names = {table["name"][table["id"].index(r["grid"])] for r in batch["results"]}
        assert names == {"甲"}
        for x, y in zip(xs[:40], ys[:40], strict=True):
            assert _grid_name(client, x, y) == "甲"
