"""Residents judge the result (回访/民评): the reporter's link shows how the report stands and,
once it is resolved, takes a rating; satisfied closes it, unsatisfied reopens it to its worker;
no rating in time closes it as not evaluated; satisfaction per unit in /stats. Real app, real
PostGIS, the page read as HTML."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest

from geo import settings
from geo.usecases import incidents as intake


@pytest.fixture
def grid(sample_url, client):
    """A grid of the sample with its worker, and a point in it."""
    with psycopg.connect(sample_url) as conn:
        x, y, grid_id = conn.execute("SELECT ST_X(p), ST_Y(p), grid_id FROM unit_version, ST_PointOnSurface(geom) p "
                                     "WHERE level = 'neighbourhood' ORDER BY code LIMIT 1 OFFSET 100").fetchone()
    worker = client.post("/workers", json={"name": "李网格员", "role": "grid_worker", "unit_id": grid_id}).json()
    return {"lon": x, "lat": y, "id": grid_id, "worker": worker["id"]}


def _report(client, grid, **extra):
    made = client.post("/incidents", json={"category": "garbage", "lon": grid["lon"], "lat": grid["lat"],
                                           "description": "垃圾满溢", **extra})
    assert made.status_code == 201, made.text
    return made.json()


def _resolve(client, incident):
    for to in ("in_progress", "resolved"):
        incident = client.post(f"/incidents/{incident['id']}/transitions",
                               json={"to": to, "version": incident["version"], "actor": "李网格员",
                                     "note": "已清运" if to == "resolved" else None}).json()
    assert incident["state"] == "resolved"
    return incident


def test_the_reporters_link_rates_a_resolved_incident(client, grid):
    made = _report(client, grid)
    assert made["state"] == "assigned" and made["evaluation_url"].startswith("/evaluate/")
    link = made["evaluation_url"]
    page = client.get(link)
    assert page.status_code == 200 and "事件回访" in page.text and "垃圾满溢" in page.text
    assert "<button" not in page.text  # not resolved yet: nothing to rate
    early = client.post(link, json={"rating": "satisfied"})
    assert early.status_code == 409 and "once it is resolved" in early.json()["detail"]

    _resolve(client, made)
    page = client.get(link)
    assert page.text.count("<button") == 3 and "已清运" in page.text
    bad = client.post(link, json={"rating": "great"})
    assert bad.status_code == 422 and "basically_satisfied (基本满意)" in bad.json()["detail"]
    rated = client.post(link, data={"rating": "satisfied", "comment": "很及时"})
    assert rated.status_code == 200 and "感谢您的评价" in rated.text and "满意：很及时" in rated.text
    incident = client.get(f"/incidents/{made['id']}").json()
    assert incident["state"] == "closed" and incident["evaluation"]["rating"] == "satisfied"
    assert incident["evaluation"]["comment"] == "很及时" and incident["events"][-1]["actor"] == "resident"
    again = client.post(link, data={"rating": "unsatisfied"})
    assert again.status_code == 409 and "has been rated" in again.text
    missing = client.get("/evaluate/not-a-token")
    assert missing.status_code == 404 and "链接无效" in missing.text
    assert client.post("/evaluate/not-a-token", json={"rating": "satisfied"}).status_code == 404
    assert "evaluation_token" not in incident and "evaluation_url" not in incident  # given once only


def test_unsatisfied_reopens_to_the_worker_and_stats_count_satisfaction(client, grid, sample_url):
    pleased = _report(client, grid)
    _resolve(client, pleased)
    assert client.post(pleased["evaluation_url"], json={"rating": "basically_satisfied"}).status_code == 200
    unhappy = _report(client, grid)
    _resolve(client, unhappy)
    reopened = client.post(unhappy["evaluation_url"], json={"rating": "unsatisfied", "comment": "还没清干净"})
    assert reopened.status_code == 200, reopened.text
    body = reopened.json()
    assert body["state"] == "assigned" and body["worker"]["id"] == grid["worker"]
    assert "不满意" in body["events"][-1]["note"]
    row = next(u for u in client.get("/stats", params={"level": "grid"}).json()["units"] if u["unit_id"] == grid["id"])
    assert row["evaluated"] == 2 and row["satisfaction_rate"] == 0.5

    # nobody rates the third within the deadline: closed as not evaluated, not counted as a rating
    silent = _resolve(client, _report(client, grid))
    time.sleep(1.1)
    with psycopg.connect(sample_url, autocommit=True) as conn:
        closed = intake.close_unevaluated(conn, hours=1 / 3600)
    assert closed == [silent["id"]]
    incident = client.get(f"/incidents/{silent['id']}").json()
    assert incident["state"] == "closed" and incident["evaluation"]["rating"] == "not_evaluated"
    assert "not evaluated" in incident["events"][-1]["note"]
    row = next(u for u in client.get("/stats", params={"level": "grid"}).json()["units"] if u["unit_id"] == grid["id"])
    assert row["evaluated"] == 2 and row["satisfaction_rate"] == 0.5


def test_without_reopening_an_unsatisfied_rating_closes(sample_url, grid, client, monkeypatch):
    made = _report(client, grid)
    _resolve(client, made)
    monkeypatch.setenv("GRIDMAP_REOPEN_UNSATISFIED", "off")
    settings.reset()
    token = made["evaluation_url"].removeprefix("/evaluate/")
    with psycopg.connect(sample_url) as conn:
        with conn.transaction():
            rated = intake.evaluate(conn, token, "unsatisfied", "态度不好")
    assert rated["state"] == "closed" and rated["evaluation"]["rating"] == "unsatisfied"


def test_open311_gives_the_resident_the_link(client, grid):
    made = client.post("/open311/v2/requests.json", data={"service_code": "garbage", "lat": grid["lat"],
                                                          "long": grid["lon"], "description": "路边垃圾"})
    assert made.status_code == 201
    link = made.json()[0]["evaluation_url"]
    assert httpx.get(client.base_url.join(link)).status_code == 200
