"""Duplicates: intake suggests what a new report may repeat (same category, within 50 m, open or
closed within 7 days), a dispatcher merges it with one move, the two are linked both ways and the
counts follow. Real app, real PostGIS; distances checked with pyproj's geodesic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pyproj import Geod

GEOD = Geod(ellps="WGS84")


@pytest.fixture
def spot(sample_url):
    with psycopg.connect(sample_url) as conn:
        x, y, grid = conn.execute("SELECT ST_X(p), ST_Y(p), grid_id FROM unit_version, ST_PointOnSurface(geom) p "
                                  "WHERE level = 'neighbourhood' ORDER BY code LIMIT 1 OFFSET 100").fetchone()
    return {"lon": x, "lat": y, "grid": grid}


def _east(spot, metres: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(spot["lon"], spot["lat"], 90, metres)
    return lon, lat


def _report(client, lon, lat, category="garbage", **extra):
    made = client.post("/incidents", json={"category": category, "lon": lon, "lat": lat, **extra})
    assert made.status_code == 201, made.text
    return made.json()


def _move(client, incident, to, **extra):
    return client.post(f"/incidents/{incident['id']}/transitions",
                       json={"to": to, "version": incident["version"], "actor": "调度员", **extra})


def test_intake_suggests_what_a_report_may_repeat(client, spot):
    first = _report(client, spot["lon"], spot["lat"])
    assert first["possible_duplicates"] == []
    _report(client, spot["lon"], spot["lat"], category="noise")  # another category: not suggested
    far = _report(client, *_east(spot, 80))  # too far
    week_old = _report(client, *_east(spot, 10), reported_at=(datetime.now(UTC) - timedelta(days=3)).isoformat())
    _report(client, *_east(spot, 10), reported_at=(datetime.now(UTC) - timedelta(days=10)).isoformat())  # too old
    closed = _move(client, week_old, "rejected", note="not ours")
    assert closed.status_code == 200
    lon, lat = _east(spot, 20)
    second = _report(client, lon, lat)
    suggested = {s["id"]: s for s in second["possible_duplicates"]}
    assert set(suggested) == {first["id"], week_old["id"]}
    _, _, metres = GEOD.inv(spot["lon"], spot["lat"], lon, lat)
    assert suggested[first["id"]]["distance_m"] == pytest.approx(metres, abs=0.5)
    assert [s["id"] for s in second["possible_duplicates"]][0] == week_old["id"]  # nearest first (10 m)
    asked = client.get(f"/incidents/{second['id']}/similar", params={"within_m": 100})
    assert far["id"] in [s["id"] for s in asked.json()]
    assert client.get("/incidents/999999/similar").status_code == 404


def test_a_dispatcher_merges_a_duplicate_linked_both_ways_and_counts_follow(client, spot):
    original = _report(client, spot["lon"], spot["lat"])
    repeat = _report(client, *_east(spot, 15))
    merged = _move(client, repeat, "duplicate", duplicate_of=original["id"], note="同一处垃圾")
    assert merged.status_code == 200, merged.text
    assert merged.json()["duplicate_of"] == original["id"] and merged.json()["state"] == "duplicate"
    now = client.get(f"/incidents/{original['id']}").json()
    assert now["duplicates"] == [repeat["id"]] and now["version"] == original["version"]
    assert f"report {repeat['id']} merged" in now["events"][-1]["note"]
    stats = client.get("/stats", params={"level": "grid"}).json()
    row = next(u for u in stats["units"] if u["unit_id"] == spot["grid"])
    assert row["by_state"].get("duplicate") == 1 and row["total"] - row["by_state"]["duplicate"] >= 1
    # reopened, it repeats nothing any more
    reopened = _move(client, merged.json(), "reported", note="不是同一处")
    assert reopened.status_code == 200 and reopened.json()["duplicate_of"] is None
    assert client.get(f"/incidents/{original['id']}").json()["duplicates"] == []


def test_bad_merges_are_refused_and_change_nothing(client, spot):
    original = _report(client, spot["lon"], spot["lat"])
    repeat = _report(client, *_east(spot, 5))
    other = _report(client, *_east(spot, 8))
    assert _move(client, repeat, "duplicate", duplicate_of=original["id"]).status_code == 200
    cases = [(other, "duplicate", {"duplicate_of": other["id"]}, "itself"),
             (other, "duplicate", {"duplicate_of": 999999}, "no such incident"),
             (other, "duplicate", {"duplicate_of": repeat["id"]}, f"duplicate of {original['id']}"),
             (other, "rejected", {"duplicate_of": original["id"]}, "goes with to=duplicate")]
    for incident, to, extra, needle in cases:
        refused = _move(client, incident, to, **extra)
        assert refused.status_code == 422 and needle in refused.json()["detail"], refused.text
    unchanged = client.get(f"/incidents/{other['id']}").json()
    assert unchanged["state"] == other["state"] and unchanged["version"] == other["version"]
    assert unchanged["duplicate_of"] is None and len(unchanged["events"]) == len(other["events"])
