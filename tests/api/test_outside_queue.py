"""A report outside every unit is never a dead end: it waits in the queue of the nearest
street's dispatchers (filed under that street's district), shows in that street's list, and a
dispatcher hands it to any active worker, saying why. Real app, real PostGIS; the nearest
street is checked against shapely distances in a metric projection."""

from __future__ import annotations

import geopandas as gpd
import psycopg
import pytest
from shapely import wkb
from shapely.geometry import Point


@pytest.fixture
def outside(sample_url) -> dict:
    """A point 300 m east of the sample's eastmost boundary, and the street nearest it."""
    with psycopg.connect(sample_url) as conn:
        rows = conn.execute("SELECT unit_id, code, ST_AsBinary(geom) FROM unit_version "
                            "WHERE level = 'street' AND valid_to IS NULL").fetchall()
        community = conn.execute("SELECT unit_id FROM unit_version WHERE level = 'community' AND valid_to IS NULL "
                                 "ORDER BY code LIMIT 1").fetchone()[0]
    streets = gpd.GeoDataFrame({"unit_id": [r[0] for r in rows], "code": [r[1] for r in rows]},
                               geometry=[wkb.loads(bytes(r[2])) for r in rows], crs=4326).to_crs(32650)
    east = streets.total_bounds[2] + 300
    centre_y = (streets.total_bounds[1] + streets.total_bounds[3]) / 2
    point = gpd.GeoSeries([Point(east, centre_y)], crs=32650)
    nearest = streets.iloc[int(streets.distance(point.iloc[0]).idxmin())]
    lonlat = point.to_crs(4326).iloc[0]
    return {"lon": lonlat.x, "lat": lonlat.y, "street": int(nearest["unit_id"]), "code": nearest["code"],
            "community": community}


def _report(client, lon, lat):
    made = client.post("/incidents", json={"category": "garbage", "lon": lon, "lat": lat, "channel": "wechat"})
    assert made.status_code == 201, made.text
    return made.json()


def test_a_report_outside_waits_in_the_nearest_streets_queue(client, sample_url, outside):
    incident = _report(client, outside["lon"], outside["lat"])
    assert incident["unassigned"] and incident["state"] == "reported" and incident["street"] is None
    assert incident["queue_street"]["id"] == outside["street"]
    assert f"street {outside['code']}" in incident["events"][0]["note"]
    far = _report(client, 110.0, 20.0)  # no street within 5 km: the district's queue
    assert far["queue_street"] is None and "district's queue" in far["events"][0]["note"]
    with psycopg.connect(sample_url) as conn:
        districts = dict(conn.execute("SELECT id, district FROM incident").fetchall())
    assert districts == {incident["id"]: outside["code"][:6], far["id"]: "000000"}
    # the street's list holds it; a list of another street does not
    listed = client.get("/incidents", params={"unit_id": outside["street"], "unassigned": True}).json()
    assert [i["id"] for i in listed["items"]] == [incident["id"]]
    with psycopg.connect(sample_url) as conn:
        other = conn.execute("SELECT unit_id FROM unit_version WHERE level = 'street' AND valid_to IS NULL "
                             "AND unit_id <> %s LIMIT 1", [outside["street"]]).fetchone()[0]
    assert client.get("/incidents", params={"unit_id": other, "unassigned": True}).json()["items"] == []
    # Open311 tells the resident whose queue it is in
    sent = client.post("/open311/v2/requests.json", data={"service_code": "garbage", "lat": outside["lat"],
                                                          "long": outside["lon"], "description": "路边垃圾"})
    assert sent.status_code == 201 and "queue of" in sent.json()[0]["service_notice"], sent.text


def test_a_dispatcher_hands_a_report_outside_to_any_worker_saying_why(client, outside):
    incident = _report(client, outside["lon"], outside["lat"])
    worker = client.post("/workers", json={"name": "社区干事", "role": "community_worker",
                                           "unit_id": outside["community"]}).json()

    def assign(**extra):
        return client.post(f"/incidents/{incident['id']}/transitions",
                           json={"to": "assigned", "version": incident["version"], "actor": "调度员", **extra})

    nobody = assign()
    assert nobody.status_code == 409 and "outside every unit" in nobody.json()["detail"]
    no_reason = assign(worker_id=worker["id"])
    assert no_reason.status_code == 422 and "say why in note" in no_reason.json()["detail"]
    blank = assign(worker_id=worker["id"], note="   ")
    assert blank.status_code == 422
    unchanged = client.get(f"/incidents/{incident['id']}").json()
    assert unchanged["state"] == "reported" and unchanged["version"] == incident["version"]

    handed = assign(worker_id=worker["id"], note="紧邻本社区东侧，由社区代管")
    assert handed.status_code == 200, handed.text
    body = handed.json()
    assert body["state"] == "assigned" and body["worker"]["id"] == worker["id"]
    assert body["handled_at_level"] == "community" and body["unassigned"]
    assert body["events"][-1]["note"] == "紧邻本社区东侧，由社区代管"
