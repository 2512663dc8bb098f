"""The API over a real HTTP server (uvicorn in its own process) and the sample district."""

import pytest
import shapely
from shapely.geometry import shape


def test_health_reports_schema_and_units(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["migrations"][0] == "0001_units" and len(body["migrations"]) >= 2
    assert body["units"]["grid"] > 250


def test_units_level_grid_is_geojson_of_the_sample_grids(client):
    response = client.get("/units", params={"level": "grid"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection"
    total = int(response.headers["x-total-count"])
    assert len(body["features"]) == total > 250
    feature = body["features"][0]
    props = feature["properties"]
    assert props["level"] == "grid" and len(props["code"]) == 15 and "网格" in props["name"]
    assert props["community_id"] and props["street_id"] and props["version"] == 1
    geom = shape(feature["geometry"])
    assert geom.geom_type == "MultiPolygon" and geom.is_valid
    assert 114.2 < geom.centroid.x < 114.4 and 30.5 < geom.centroid.y < 30.6


def test_units_accepts_chinese_level_names_bbox_and_paging(client):
    everything = client.get("/units", params={"level": "社区"}).json()["features"]
    page = client.get("/units", params={"level": "community", "limit": 5, "offset": 5})
    assert [f["id"] for f in page.json()["features"]] == [f["id"] for f in everything[5:10]]
    assert 'rel="next"' in page.headers["link"]
    first = shape(everything[0]["geometry"])
    minx, miny, maxx, maxy = first.bounds
    hits = client.get("/units", params={"level": "community", "bbox": f"{minx},{miny},{maxx},{maxy}"}).json()
    assert everything[0]["id"] in {f["id"] for f in hits["features"]}
    assert len(hits["features"]) < len(everything)


def test_edit_opens_a_new_version_and_as_of_reads_the_old(client):
    grid = client.get("/units", params={"level": "grid", "limit": 1}).json()["features"][0]
    unit_id = grid["id"]
    before = grid["properties"]["valid_from"]
    edited = client.put(f"/units/{unit_id}", json={"version": 1, "name": "幸福网格", "households": 420})
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2
    assert client.get(f"/units/{unit_id}").json()["name"] == "幸福网格"
    old = client.get(f"/units/{unit_id}", params={"as_of": before}).json()
    assert old["version"] == 1 and old["name"] == grid["properties"]["name"]
    history = client.get(f"/units/{unit_id}/history").json()
    assert [h["version"] for h in history] == [1, 2]
    stale = client.put(f"/units/{unit_id}", json={"version": 1, "name": "过期"})
    assert stale.status_code == 409
    assert "reload the unit" in stale.json()["detail"]
    assert client.get(f"/units/{unit_id}").json()["name"] == "幸福网格"


def test_boundary_edit_outside_the_parent_is_refused(client):
    grid = client.get("/units", params={"level": "grid", "limit": 1}).json()["features"][0]
    community = client.get(f"/units/{grid['properties']['community_id']}").json()
    bigger = shape(community["geometry"]).buffer(0.0005)  # ~50 m beyond the community all round
    response = client.put(f"/units/{grid['id']}", json={"version": 1, "geometry": bigger.__geo_interface__})
    assert response.status_code == 422
    assert f"m outside its community {community['code']}" in response.json()["detail"]
    moved = shapely.affinity.translate(shape(grid["geometry"]), xoff=0.02)  # ~2 km east, another community
    response = client.put(f"/units/{grid['id']}", json={"version": 1, "geometry": moved.__geo_interface__})
    assert response.status_code == 422
    assert f"but its code says community {community['code']}" in response.json()["detail"]
    assert client.get(f"/units/{grid['id']}").json()["version"] == 1


@pytest.mark.parametrize("method,path,kwargs,status,needle", [
    ("get", "/units", {"params": {"level": "village"}}, 422, "unknown level 'village'"),
    ("get", "/units", {}, 422, "level"),
    ("get", "/units", {"params": {"level": "grid", "as_of": "yesterday"}}, 422, "not ISO 8601"),
    ("get", "/units", {"params": {"level": "grid", "bbox": "30.5,114.3,30.6,114.4"}}, 422, "lon first"),
    ("get", "/units", {"params": {"level": "grid", "limit": 0}}, 422, "limit"),
    ("get", "/units/999999999", {}, 404, "no unit with id 999999999"),
    ("put", "/units/1", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
    ("put", "/units/1", {"json": {"name": "无版本"}}, 422, "version"),
    ("put", "/units/1", {"json": {"version": 1, "colour": "red"}}, 422, "colour"),
    ("put", "/units/1", {"json": {"version": 1, "geometry": {"type": "Polygon", "coordinates": [[[30.55, 114.3],
      [30.56, 114.3], [30.56, 114.31], [30.55, 114.3]]]}}}, 422, "latitude, longitude"),
    ("put", "/units/1", {"json": {"version": 1, "geometry": {"type": "Nonsense"}}}, 422, "not valid GeoJSON"),
])
def test_bad_requests_get_a_clear_4xx(client, method, path, kwargs, status, needle):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert needle in response.text


def test_paging_link_keeps_the_query_and_lineage_of_unknown_unit_is_404(client):
    page = client.get("/units", params={"level": "grid", "limit": 10, "as_of": "2100-01-01"})
    link = page.headers["link"]
    assert "as_of=2100-01-01" in link and "offset=10" in link
    following = client.get(link[1:link.index(">")])
    assert following.status_code == 200 and len(following.json()["features"]) == 10
    assert client.get("/units/999999999/lineage").status_code == 404


@pytest.mark.parametrize("body,needle", [
    ({"version": 1, "households": 3_000_000_000}, "households"),
    ({"version": 1, "name": "   "}, "name"),
    ({"version": 1, "name": "a\u0000b"}, "NUL"),
    ({"version": 1, "attributes": {"k": "a\u0000b"}}, "NUL"),
])
def test_values_that_cannot_be_stored_get_422(client, body, needle):
    grid = client.get("/units", params={"level": "grid", "limit": 1}).json()["features"][0]
    response = client.put(f"/units/{grid['id']}", json=body)
    assert response.status_code == 422, response.text
    assert needle in response.text
    assert client.get(f"/units/{grid['id']}").json()["version"] == 1


@pytest.mark.parametrize("params,needle", [
    ({"level": "grid", "bbox": "nan,nan,nan,nan"}, "bbox"),
    ({"level": "grid", "code": "\u0000"}, "NUL"),
    ({"level": "grid", "as_of": "2026-11-25T08:00:00 08:00"}, "%2B"),
])
def test_odd_query_values_get_422(client, params, needle):
    response = client.get("/units", params=params)
    assert response.status_code == 422, response.text
    assert needle in response.text
