"""The bad-input catalogue, over real HTTP against the real app: invalid, huge and
self-intersecting geometries, NaN and infinite coordinates, bodies over the size limit, SQL
metacharacters and Chinese text in string fields, unknown fields, malformed JSON. Each gets
a clear 4xx in the one error shape (naming what is wrong), and nothing stored changes."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from tests.conftest import launch_server, stop_server

SQL = "'; DROP TABLE unit_version; --"
ZH = "武昌区黄鹤楼街道“测试”"
NASTY = f"{ZH} {SQL} \\ \" %s %(x)s $1"


def _fingerprint(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT (SELECT md5(string_agg(id::text || version || coalesce(valid_to::text, ''), ',' ORDER BY id)) "
            "        FROM unit_version), "
            "(SELECT count(*) FROM incident), (SELECT count(*) FROM incident_event), (SELECT count(*) FROM plan), "
            "(SELECT count(*) FROM worker), (SELECT count(*) FROM change_set), (SELECT count(*) FROM unit_lineage)"
        ).fetchone()


@pytest.fixture(scope="module")
def target(databases, sample_template, tmp_path_factory):
    url = databases.url(databases.create(template=sample_template))
    with psycopg.connect(url) as conn:
        grid = conn.execute("SELECT unit_id, version FROM unit_version WHERE valid_to IS NULL AND level = 'grid' "
                            "ORDER BY code LIMIT 1").fetchone()
    log = tmp_path_factory.mktemp("bad") / "server.log"
    proc, base = launch_server(url, log=log)
    with httpx.Client(base_url=base, timeout=60) as http:
        plan = http.post("/plans/split", json={"unit": "420199001005", "into": "grids"}).json()
        yield {"http": http, "url": url, "grid": grid, "plan": plan, "log": log}
    stop_server(proc)


def _polygon(ring):
    return {"type": "Polygon", "coordinates": [ring]}


def _cases(t) -> list[tuple[str, str, str, dict]]:
    """(name, method, path, request kwargs); every one must be refused."""
    gid, version = t["grid"]
    plan_id = t["plan"]["id"]
    bowtie = _polygon([[114.30, 30.50], [114.31, 30.51], [114.31, 30.50], [114.30, 30.51], [114.30, 30.50]])
    world = _polygon([[-179, -89], [179, -89], [179, 89], [-179, 89], [-179, -89]])
    many = _polygon([[114.3 + 0.01 * (i % 2), 30.5 + 1e-7 * i] for i in range(400_000)] + [[114.3, 30.5]])
    big = "x" * (9 * 1024 * 1024)
    return [
        ("self-intersecting geometry", "PUT", f"/units/{gid}", {"json": {"version": version, "geometry": bowtie}}),
        ("geometry around the world", "PUT", f"/units/{gid}", {"json": {"version": version, "geometry": world}}),
        ("geometry of 400,000 vertices", "PUT", f"/units/{gid}", {"json": {"version": version, "geometry": many}}),
        ("geometry that is not GeoJSON", "PUT", f"/units/{gid}",
         {"json": {"version": version, "geometry": {"type": "Polygon", "coordinates": "(114 30)"}}}),
        ("NaN longitude", "POST", "/incidents",
         {"content": '{"category": "garbage", "lon": NaN, "lat": 30.5}',
          "headers": {"content-type": "application/json"}}),
        ("infinite latitude", "POST", "/incidents",
         {"content": '{"category": "garbage", "lon": 114.3, "lat": Infinity}',
          "headers": {"content-type": "application/json"}}),
        ("overflowing number", "POST", "/incidents", {"content": '{"category": "garbage", "lon": 1e999, "lat": 30.5}',
                                                      "headers": {"content-type": "application/json"}}),
        ("NaN in a point batch", "POST", "/locate", {"content": '{"points": [[114.3, NaN]]}',
                                                     "headers": {"content-type": "application/json"}}),
        ("NaN in a query", "GET", "/locate?lon=nan&lat=30.5", {}),
        ("swapped lat/lon", "POST", "/incidents", {"json": {"category": "garbage", "lon": 30.55, "lat": 114.33}}),
        ("body over the limit", "POST", "/incidents", {"json": {"category": "garbage", "lon": 114.3, "lat": 30.5,
                                                                "description": big}}),
        ("plan edit over the limit", "PUT", f"/plans/{plan_id}/units",
         {"json": {"revision": 1, "features": [], "pad": big}}),
        ("SQL and Chinese as a category", "POST", "/incidents",
         {"json": {"category": NASTY, "lon": 114.3, "lat": 30.5}}),
        ("SQL and Chinese as a CRS", "POST", "/incidents",
         {"json": {"category": "garbage", "lon": 114.3, "lat": 30.5, "crs": NASTY}}),
        ("SQL and Chinese as a unit to split", "POST", "/plans/split", {"json": {"unit": NASTY, "into": "grids"}}),
        ("SQL and Chinese as a band", "POST", "/plans/split",
         {"json": {"unit": "420199001005", "into": "grids", "households": NASTY}}),
        ("SQL and Chinese as a level", "GET", "/units", {"params": {"level": NASTY}}),
        ("SQL and Chinese as a time", "GET", "/units", {"params": {"level": "grid", "as_of": NASTY}}),
        ("SQL and Chinese as a bbox", "GET", "/units", {"params": {"level": "grid", "bbox": NASTY}}),
        ("SQL and Chinese as a state", "GET", "/incidents", {"params": {"state": NASTY}}),
        ("SQL and Chinese as a worker role", "POST", "/workers",
         {"json": {"name": NASTY, "role": NASTY, "unit_id": gid}}),
        ("SQL and Chinese as a transition", "POST", "/incidents/1/transitions",
         {"json": {"to": NASTY, "version": 1, "actor": NASTY}}),
        ("unknown field in a unit edit", "PUT", f"/units/{gid}",
         {"json": {"version": version, "name": "x", "colour": 1}}),
        ("unknown field in a report", "POST", "/incidents",
         {"json": {"category": "garbage", "lon": 114.3, "lat": 30.5, "priority": "high"}}),
        ("unknown field in a split", "POST", "/plans/split",
         {"json": {"unit": "420199001005", "into": "grids", "x": 1}}),
        ("malformed JSON", "POST", "/incidents", {"content": '{"category": "garbage", "lon": 114.3,',
                                                  "headers": {"content-type": "application/json"}}),
        ("JSON that is not UTF-8", "POST", "/plans/merge", {"content": b'{"level": "\xff\xfe"}',
                                                           "headers": {"content-type": "application/json"}}),
        ("stale unit edit", "PUT", f"/units/{gid}", {"json": {"version": version + 5, "name": ZH}}),
    ]


def test_every_bad_input_gets_a_clear_4xx_and_changes_nothing(target):
    http = target["http"]
    before = _fingerprint(target["url"])
    for name, method, path, kwargs in _cases(target):
        r = http.request(method, path, **kwargs)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
        body = r.json()
        assert body["error"] and len(body["detail"]) > 10, (name, body)
        assert len(r.content) < 20_000, (name, "the error echoes the request back", len(r.content))
        assert _fingerprint(target["url"]) == before, name
    assert "Traceback" not in target["log"].read_text(errors="replace")


def test_sql_and_chinese_in_free_text_are_stored_as_written(target):
    http = target["http"]
    r = http.post("/incidents", json={"category": "garbage", "lon": 114.3352, "lat": 30.5528,
                                      "description": NASTY, "contact": f"{ZH} 13800138000"})
    assert r.status_code == 201, r.text
    got = http.get(f"/incidents/{r.json()['id']}").json()
    assert got["description"] == NASTY
    gid, version = target["grid"]
    r = http.put(f"/units/{gid}", json={"version": version, "name": NASTY, "note": SQL})
    assert r.status_code == 200, r.text
    assert http.get(f"/units/{gid}").json()["name"] == NASTY
    with psycopg.connect(target["url"]) as conn:  # the table the SQL names is still there
        assert conn.execute("SELECT count(*) FROM unit_version").fetchone()[0] > 5000
    assert json.loads(http.get("/units", params={"level": "grid", "code": SQL}).text)["features"] == []
