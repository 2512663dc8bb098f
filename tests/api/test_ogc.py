"""OGC API - Features over a real HTTP server and the sample district: GDAL's OAPIF driver
(through pyogrio, and ogrinfo when installed) reads the same features PostGIS holds, paging
walks every feature once, datetime reads old versions and filters incidents by report time,
and every bad parameter gets its 4xx naming the problem."""

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import httpx
import psycopg
import pyogrio
import pytest
import shapely

from geo.db import features
from geo.units import levels

COLLECTIONS = [*levels.LEVELS, "incidents"]


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


def _items(client, collection, **params):
    answer = client.get(f"/ogc/collections/{collection}/items", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/geo+json"
    return answer.json()


def _link(body, rel):
    found = [link["href"] for link in body["links"] if link["rel"] == rel]
    assert len(found) <= 1
    return found[0] if found else None


def _grids_in_postgis(url, bbox=None):
    where = ""
    if bbox:
        where = " AND ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT unit_id, code, households, ST_AsBinary(geom) FROM unit_version "
            f"WHERE level = 'grid' AND valid_to IS NULL{where} ORDER BY unit_id", list(bbox or ())).fetchall()
    return {r[0]: (r[1], r[2], shapely.from_wkb(bytes(r[3]))) for r in rows}


def _same_as_postgis(frame, expected):
    assert frame["id"].is_unique
    assert sorted(frame["id"]) == sorted(expected)
    for row in frame.itertuples():
        code, households, geom = expected[row.id]
        assert (row.code, row.households) == (code, households)
        assert shapely.equals_exact(shapely.normalize(row.geometry), shapely.normalize(geom), 1e-7), row.code


def test_landing_conformance_and_collections(client, server, sample_url):
    landing = client.get("/ogc")
    assert landing.status_code == 200 and landing.headers["content-type"] == "application/json"
    links = {link["rel"]: link for link in landing.json()["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(links)
    assert all(link["href"].startswith(server + "/") for link in links.values())
    assert client.get(urlparse(links["service-desc"]["href"]).path).json()["openapi"].startswith("3.")
    conforms = client.get(urlparse(links["conformance"]["href"]).path).json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conforms
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conforms
    listed = client.get("/ogc/collections", params={"f": "json"}).json()["collections"]
    assert [c["id"] for c in listed] == COLLECTIONS
    with psycopg.connect(sample_url) as conn:
        extent = conn.execute("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                              "(SELECT ST_Extent(geom) e FROM unit_version WHERE level = 'grid') x").fetchone()
    for c in listed:
        assert c["itemType"] == "feature" and c["crs"] == ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]
        rels = {link["rel"]: link for link in c["links"]}
        assert rels["items"]["href"] == f"{server}/ogc/collections/{c['id']}/items"
        assert rels["items"]["type"] == "application/geo+json"
        if c["id"] == "incidents":
            assert "extent" not in c  # none reported yet
    grid = client.get("/ogc/collections/grid").json()
    assert grid["extent"]["spatial"]["bbox"] == [pytest.approx(list(extent), abs=1e-9)]
    start, end = grid["extent"]["temporal"]["interval"][0]
    assert datetime.fromisoformat(start) < datetime.now(UTC) and end is None


def test_gdal_reads_the_grids_postgis_holds_whole_by_bbox_and_in_pages(server, sample_url):
    source = f"OAPIF:{server}/ogc"
    assert [name for name, _ in pyogrio.list_layers(source)] == COLLECTIONS
    expected = _grids_in_postgis(sample_url)
    _same_as_postgis(pyogrio.read_dataframe(source, layer="grid"), expected)
    # small pages: the driver follows the next links (each page holds at most 40)
    paged = pyogrio.read_dataframe(source, layer="grid", PAGE_SIZE=40)
    assert len(expected) > 40 * 5
    _same_as_postgis(paged, expected)
    box = (114.29, 30.54, 114.30, 30.55)
    inside = _grids_in_postgis(sample_url, box)
    assert 10 < len(inside) < len(expected)
    _same_as_postgis(pyogrio.read_dataframe(source, layer="grid", bbox=box, PAGE_SIZE=15), inside)
    assert pyogrio.read_info(source, layer="grid")["features"] == len(expected)
    if shutil.which("ogrinfo"):
        info = subprocess.run(["ogrinfo", "-ro", "-so", source, "grid"], capture_output=True, text=True, timeout=120)
        assert f"Feature Count: {len(expected)}" in info.stdout, info.stdout + info.stderr


def test_paging_walks_every_feature_once_forward_and_back(client, sample_url):
    with psycopg.connect(sample_url) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT unit_id FROM unit_version WHERE level = 'compound' AND valid_to IS NULL ORDER BY unit_id")]
    body = _items(client, "compound", limit=25)
    assert _link(body, "prev") is None
    pages = []
    while True:
        assert body["numberMatched"] == len(ids) and body["numberReturned"] == len(body["features"]) <= 25
        assert datetime.fromisoformat(body["timeStamp"])
        pages.append([f["id"] for f in body["features"]])
        if len(pages) == 3:  # an edit in the middle of the walk changes nothing in it
            later = ids[-1]
            unit = client.get(f"/units/{later}").json()
            assert client.put(f"/units/{later}",
                              json={"version": unit["version"], "name": "改名小区"}).status_code == 200
        nxt = _link(body, "next")
        if nxt is None:
            break
        assert nxt.startswith(str(client.base_url))
        body = client.get(nxt).json()
    assert [i for page in pages for i in page] == ids
    assert len(pages) == -(-len(ids) // 25)
    last = body["features"][-1]["properties"]
    assert last["id"] == ids[-1] and last["name"] != "改名小区" and last["version"] == 1
    back = []
    while (prev := _link(body, "prev")) is not None:
        body = client.get(prev).json()
        back.append([f["id"] for f in body["features"]])
    assert back == pages[-2::-1]
    # a fresh walk sees the edit
    fresh = _items(client, "compound", after=ids[-2])["features"]
    assert [(f["id"], f["properties"]["name"]) for f in fresh] == [(ids[-1], "改名小区")]


def test_datetime_reads_the_version_valid_then(client, server):
    grid = _items(client, "grid", limit=1)["features"][0]
    unit_id, before = grid["id"], grid["properties"]["valid_from"]
    edited = client.put(f"/units/{unit_id}", json={"version": 1, "name": "幸福网格", "households": 421})
    assert edited.status_code == 200, edited.text
    now = _items(client, "grid", limit=1)["features"][0]["properties"]
    assert (now["name"], now["households"], now["version"], now["valid_to"]) == ("幸福网格", 421, 2, None)
    old = _items(client, "grid", limit=1, datetime=before)["features"][0]["properties"]
    assert (old["name"], old["households"], old["version"]) == (grid["properties"]["name"],
                                                               grid["properties"]["households"], 1)
    assert old["valid_to"] is not None
    one = client.get(f"/ogc/collections/grid/items/{unit_id}", params={"datetime": before})
    assert one.status_code == 200 and one.headers["content-type"] == "application/geo+json"
    assert one.json()["properties"]["version"] == 1
    assert client.get(f"/ogc/collections/grid/items/{unit_id}").json()["properties"]["version"] == 2
    # GDAL passes datetime through its DATETIME open option
    frame = pyogrio.read_dataframe(f"OAPIF:{server}/ogc", layer="grid", DATETIME=before)
    assert frame.set_index("id").loc[unit_id, "name"] == grid["properties"]["name"]


def test_incidents_filter_by_report_time_and_never_carry_contact(client, sample_url):
    with psycopg.connect(sample_url) as conn:
        lon, lat = conn.execute("SELECT ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
                                "WHERE level = 'neighbourhood' ORDER BY code LIMIT 1 OFFSET 50").fetchone()
    old_time = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    made = []
    for k, extra in enumerate([{"reported_at": old_time.isoformat()}, {}, {}, {}]):
        body = {"category": "garbage", "lon": lon + k * 1e-5, "lat": lat, "channel": "wechat",
                "contact": "13800000000", "description": "楼下垃圾堆放, 电话13800000000",
                "photos": ["https://img.example.cn/1.jpg"], "external_id": f"wx-{k}", **extra}
        answer = client.post("/incidents", json=body)
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    everything = _items(client, "incidents")
    assert [f["id"] for f in everything["features"]] == [m["id"] for m in made]
    for feature, incident in zip(everything["features"], made, strict=True):
        props = feature["properties"]
        assert set(props) == {"id", "category", "category_zh", "state", "channel", "reported_at", "deadline",
                              "overdue", "resolved_at", "closed_at", "unassigned", "handled_at_level",
                              "street_code", "community_code", "grid_code"}
        assert "13800000000" not in str(feature) and "img.example" not in str(feature)
        assert feature["geometry"]["type"] == "Point"
        assert feature["geometry"]["coordinates"] == pytest.approx(
            [incident["wgs84"]["lon"], incident["wgs84"]["lat"]], abs=1e-9)
        assert props["grid_code"] == (incident["grid"] or {}).get("code")
    assert everything["features"][1]["properties"]["grid_code"]  # reported after the load: in a grid
    single = client.get(f"/ogc/collections/incidents/items/{made[1]['id']}").json()
    assert "contact" not in single["properties"] and single["properties"]["category_zh"] == "垃圾堆放"

    times = [m["reported_at"] for m in made]

    def ids(when):
        return [f["id"] for f in _items(client, "incidents", datetime=when)["features"]]

    assert ids(times[2]) == [made[2]["id"]]
    assert ids(f"{times[1]}/..") == [m["id"] for m in made[1:]]
    assert ids(f"../{times[1]}") == [m["id"] for m in made[:2]]
    assert ids(f"{times[1]}/{times[2]}") == [m["id"] for m in made[1:3]]
    hits = _items(client, "incidents", bbox=f"{lon - 1e-6},{lat - 1e-6},{lon + 1e-6},{lat + 1e-6}")["features"]
    assert [f["id"] for f in hits] == [made[0]["id"]]
    extent = client.get("/ogc/collections/incidents").json()["extent"]
    assert datetime.fromisoformat(extent["temporal"]["interval"][0][0]) == old_time


BAD = [
    ("grid/items", {"bbox": "114.2,30.5,114.3"}, 400, "not four numbers"),
    ("grid/items", {"bbox": "114.2,30.5,114.3,30.6,0,100"}, 400, "six numbers"),
    ("grid/items", {"bbox": "30.5,114.2,30.6,114.3"}, 400, "longitude first"),
    ("grid/items", {"bbox": "114.3,30.5,114.2,30.6"}, 400, "west edge first"),
    ("grid/items", {"bbox": "114.2,30.6,114.3,30.5"}, 400, "south edge first"),
    ("grid/items", {"bbox": "530000,3380000,540000,3390000"}, 400, "not projected metres"),
    ("grid/items", {"bbox": "114.2,nan,114.3,30.6"}, 400, "not four numbers"),
    ("grid/items", {"limit": "0"}, 400, "limit"),
    ("grid/items", {"limit": "10001"}, 400, "limit"),
    ("grid/items", {"limit": "many"}, 400, "limit"),
    ("grid/items", {"after": "-1"}, 400, "after"),
    ("grid/items", {"after": "3", "before": "9"}, 400, "not both"),
    ("grid/items", {"datetime": "2026-01-01/2026-02-01"}, 400, "versioned"),
    ("grid/items", {"datetime": "yesterday"}, 400, "ISO 8601"),
    ("grid/items", {"as_of": "2026-01-01"}, 400, "use datetime"),
    ("grid/items", {"f": "html"}, 400, "f=json"),
    ("incidents/items", {"datetime": "2026-02-01/2026-01-01"}, 400, "ends before it starts"),
    ("incidents/items", {"datetime": "../.."}, 400, "open at both ends"),
    ("incidents/items", {"datetime": "2026-01-01/2026-01-02/2026-01-03"}, 400, "interval"),
    ("incidents/items/1", {"datetime": "2026-01-01"}, 400, "unknown query parameter"),
    ("grids/items", {}, 404, "street, community, grid"),
    ("roads", {}, 404, "no collection"),
    ("grid/items/abc", {}, 404, "whole numbers"),
    ("grid/items/99999999", {}, 404, "no grid with id 99999999"),
    ("street/items/{grid}", {}, 404, "no street with id"),
    ("grid/items/{grid}", {"datetime": "2001-01-01"}, 404, "as of 2001-01-01"),
    ("incidents/items/1", {}, 404, "no incident with id 1"),
]


def test_bad_parameters_get_their_4xx_naming_the_problem(client, sample_url):
    with psycopg.connect(sample_url) as conn:
        grid = conn.execute("SELECT min(unit_id) FROM unit_version WHERE level = 'grid'").fetchone()[0]
    for path, params, status, needle in BAD:
        answer = client.get(f"/ogc/collections/{path.format(grid=grid)}", params=params)
        assert answer.status_code == status, (path, params, answer.text)
        body = answer.json()
        assert body["error"] and needle in body["detail"], (path, params, body)


def test_number_matched_is_left_out_above_the_cap(sample_url, monkeypatch):
    monkeypatch.setattr(features, "COUNT_CAP", 300)
    with psycopg.connect(sample_url) as conn:
        grids = features.page(conn, "grid", features.Selection(limit=5))
        communities = features.page(conn, "community", features.Selection(limit=5))
    assert grids.matched is None and grids.returned == 5 and grids.more_after
    assert communities.matched == 49
