"""Incidents over a real HTTP server and the sample district: intake in GCJ-02, assignment to
the units, dispatch, every legal and illegal transition, stale and concurrent updates."""

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from geo.coords import datums
from geo.incidents.lifecycle import STATES, TRANSITIONS

CHAIN = ("street", "community", "grid", "compound", "neighbourhood", "building")


@pytest.fixture
def spot(sample_url):
    """A point inside a small neighbourhood, and its grid and community ids."""
    with psycopg.connect(sample_url) as conn:
        x, y, grid_id, community_id = conn.execute(
            "SELECT ST_X(p), ST_Y(p), grid_id, community_id FROM unit_version, ST_PointOnSurface(geom) p "
            "WHERE level = 'neighbourhood' ORDER BY code LIMIT 1 OFFSET 100").fetchone()
    return {"lon": x, "lat": y, "grid": grid_id, "community": community_id}


def _report(client, spot, **extra):
    body = {"category": "manhole", "lon": spot["lon"], "lat": spot["lat"], "description": "井盖缺失",
            "channel": "rider", "contact": "13800000000", **extra}
    answer = client.post("/incidents", json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_gcj02_report_is_assigned_to_the_grid_of_its_wgs84_position(client, spot):
    glon, glat = datums.wgs84_to_gcj02(spot["lon"], spot["lat"])
    incident = _report(client, {"lon": glon, "lat": glat}, crs="gcj02",
                       photos=["https://img.example.cn/manhole.jpg"])
    located = client.get("/locate", params={"lon": spot["lon"], "lat": spot["lat"]}).json()
    for level in CHAIN:
        assert (incident[level] or {}).get("id") == (located[level] or {}).get("id"), level
    assert incident["grid"]["id"] == spot["grid"]
    assert incident["input"] == {"lon": glon, "lat": glat, "crs": "GCJ-02"}
    assert incident["wgs84"]["lon"] == pytest.approx(spot["lon"], abs=1e-9)
    assert incident["unassigned"] is False and incident["state"] == "reported"  # nobody attached yet
    assert [e["to"] for e in incident["events"]] == ["reported"]


def test_a_report_outside_every_unit_is_kept_and_flagged(client):
    incident = _report(client, {"lon": 110.0, "lat": 20.0})
    assert incident["unassigned"] is True and incident["state"] == "reported"
    assert all(incident[level] is None for level in CHAIN)
    listed = client.get("/incidents", params={"unassigned": True}).json()
    assert incident["id"] in [i["id"] for i in listed["items"]]


def test_dispatch_to_the_grid_worker_or_escalate_to_the_community(client, spot):
    worker = client.post("/workers", json={"name": "李网格员", "role": "grid_worker", "unit_id": spot["grid"]})
    assert worker.status_code == 201, worker.text
    incident = _report(client, spot)
    assert incident["state"] == "assigned" and incident["worker"]["name"] == "李网格员"
    assert incident["handled_at_level"] == "grid"
    assert [e["to"] for e in incident["events"]] == ["reported", "assigned"]
    # a fire hazard is the community's business; with nobody at the community it waits
    waiting = _report(client, spot, category="fire_hazard")
    assert waiting["state"] == "reported" and waiting["worker"] is None
    client.post("/workers", json={"name": "王社工", "role": "community_worker", "unit_id": spot["community"]})
    escalated = _report(client, spot, category="fire_hazard")
    assert escalated["worker"]["name"] == "王社工" and escalated["handled_at_level"] == "community"
    wrong = client.post("/workers", json={"name": "错配", "role": "grid_worker", "unit_id": spot["community"]})
    assert wrong.status_code == 422 and "attached to a grid" in wrong.json()["detail"]


def _move(client, incident, to, **extra):
    return client.post(f"/incidents/{incident['id']}/transitions",
                       json={"to": to, "version": incident["version"], "actor": "测试", **extra})


PATHS = {
    "reported": [],
    "assigned": ["assigned"],
    "in_progress": ["assigned", "in_progress"],
    "resolved": ["assigned", "in_progress", "resolved"],
    "closed": ["assigned", "in_progress", "resolved", "closed"],
    "rejected": ["rejected"],
    "duplicate": ["duplicate"],
}


def test_every_transition_legal_and_illegal(client, spot):
    worker = client.post("/workers", json={"name": "张网格员", "role": "grid_worker", "unit_id": spot["grid"]}).json()
    client.post("/workers", json={"name": "备用", "role": "grid_worker", "unit_id": spot["grid"]})
    for start, target in itertools.product(STATES, STATES):
        incident = _report(client, spot, category="other")
        if incident["state"] == "assigned":  # dispatched on intake: walk back to "reported" first
            incident = _move(client, incident, "rejected").json()
            incident = _move(client, incident, "reported").json()
        for step in PATHS[start]:
            answer = _move(client, incident, step, **({"worker_id": worker["id"]} if step == "assigned" else {}))
            assert answer.status_code == 200, (start, step, answer.text)
            incident = answer.json()
        assert incident["state"] == start
        answer = _move(client, incident, target)
        if target in TRANSITIONS[start]:
            assert answer.status_code == 200, (start, target, answer.text)
            after = answer.json()
            assert after["state"] == target and after["version"] == incident["version"] + 1
            assert after["events"][-1]["from"] == start and after["events"][-1]["to"] == target
        else:
            assert answer.status_code == 409, (start, target, answer.text)
            assert f"is {start}: it can go to" in answer.json()["detail"]
            assert client.get(f"/incidents/{incident['id']}").json()["version"] == incident["version"]


def test_a_stale_update_is_refused_and_concurrent_ones_never_both_win(client, spot):
    incident = _report(client, spot)
    first = _move(client, incident, "rejected", note="误报")
    assert first.status_code == 200
    stale = _move(client, incident, "duplicate")
    assert stale.status_code == 409 and "reload it" in stale.json()["detail"]
    fresh = first.json()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _move(client, fresh, "reported").status_code, range(8)))
    assert sorted(answers) == [200] + [409] * 7
    final = client.get(f"/incidents/{incident['id']}").json()
    assert final["version"] == fresh["version"] + 1
    assert [e["to"] for e in final["events"]].count("reported") == 2


def test_the_same_external_id_is_stored_once(client, spot, sample_url):
    one = client.post("/incidents", json={"category": "garbage", "lon": spot["lon"], "lat": spot["lat"],
                                          "external_id": "12345-热线"})
    two = client.post("/incidents", json={"category": "garbage", "lon": spot["lon"], "lat": spot["lat"],
                                          "external_id": "12345-热线"})
    assert (one.status_code, two.status_code) == (201, 200)
    assert one.json()["id"] == two.json()["id"]
    with psycopg.connect(sample_url) as conn:
        assert conn.execute("SELECT count(*) FROM incident WHERE external_id = '12345-热线'").fetchone()[0] == 1


def test_overdue_follows_the_category_deadline(client, spot):
    old = (datetime.now(UTC) - timedelta(hours=30)).isoformat()
    late = _report(client, spot, category="manhole", reported_at=old)  # 24 h deadline
    assert late["overdue"] is True
    fresh = _report(client, spot, category="manhole")
    assert fresh["overdue"] is False


@pytest.mark.parametrize("body,needle", [
    ({"category": "ufo", "lon": 114.29, "lat": 30.54}, "unknown category 'ufo'"),
    ({"category": "manhole", "lon": 30.54, "lat": 114.29}, "looks like latitude, longitude"),
    ({"category": "manhole", "lon": 114.29, "lat": 30.54, "photos": ["file:///etc/passwd"]}, "not an http(s) URL"),
    ({"category": "manhole", "lon": 114.29, "lat": 30.54, "channel": "pigeon"}, "unknown channel"),
    ({"category": "manhole", "lon": 114.29, "lat": 30.54, "reported_at": "2099-01-01T00:00:00+08:00"}, "in the future"),
    ({"category": "manhole", "lon": 114.29, "lat": 30.54, "reported_at": "2026-01-01T00:00:00"}, "time zone"),
    ({"category": "manhole", "lon": 114.29, "lat": 30.54, "crs": "EPSG:999999"}, "unknown CRS"),
    ({"category": "manhole", "lon": 114.29, "lat": 30.54, "colour": "red"}, "colour"),
    ({"category": "manhole", "lat": 30.54}, "lon"),
])
def test_bad_reports_get_422_and_store_nothing(client, sample_url, body, needle):
    with psycopg.connect(sample_url) as conn:
        before = conn.execute("SELECT count(*) FROM incident").fetchone()[0]
    answer = client.post("/incidents", json=body)
    assert answer.status_code == 422, answer.text
    assert needle in answer.text
    with psycopg.connect(sample_url) as conn:
        assert conn.execute("SELECT count(*) FROM incident").fetchone()[0] == before


def test_unknown_incident_and_state(client, spot):
    assert client.get("/incidents/999999").status_code == 404
    incident = _report(client, spot)
    answer = _move(client, incident, "teleported")
    assert answer.status_code == 422 and "unknown state" in answer.json()["detail"]


def test_stats_equal_an_independent_count(client, spot, sample_url):
    with psycopg.connect(sample_url) as conn:
        other = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
            "WHERE level = 'neighbourhood' AND grid_id <> %s ORDER BY code LIMIT 1", [spot["grid"]]).fetchone()
    places = [spot, {"lon": other[0], "lat": other[1]}, {"lon": 110.0, "lat": 20.0}]
    worker = client.post("/workers", json={"name": "统计员", "role": "grid_worker", "unit_id": spot["grid"]}).json()
    now = datetime.now(UTC)
    made = []
    for k in range(12):
        place = places[k % 3]
        incident = _report(client, place, category=("manhole", "garbage", "noise")[k % 3],
                           reported_at=(now - timedelta(hours=k * 5)).isoformat())
        if k % 4 == 0 and not incident["unassigned"]:
            if incident["state"] == "reported":
                incident = _move(client, incident, "assigned", worker_id=worker["id"]).json()
            incident = _move(client, incident, "in_progress").json()
            incident = _move(client, incident, "resolved").json()
        elif k % 4 == 1:
            incident = _move(client, incident, "duplicate").json()
        made.append(incident)
    window = {"from": (now - timedelta(days=3)).isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}
    for level in ("grid", "community", "street"):
        answer = client.get("/stats", params={"level": level, **window})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        listed = client.get("/incidents", params={"limit": 1000}).json()["items"]
        assert len(listed) == 12  # all made here, all within the window (the last 55 hours)
        expected: dict = {}
        for i in listed:
            if i[level] is None:
                continue
            unit = expected.setdefault(i[level]["id"], {"total": 0, "by_state": {}, "by_category": {},
                                                        "overdue": 0, "resolved": 0})
            unit["total"] += 1
            unit["by_state"][i["state"]] = unit["by_state"].get(i["state"], 0) + 1
            unit["by_category"][i["category"]] = unit["by_category"].get(i["category"], 0) + 1
            unit["overdue"] += i["overdue"]
            unit["resolved"] += i["state"] in ("resolved", "closed")
        got = {u["unit_id"]: {k: u[k] for k in ("total", "by_state", "by_category", "overdue", "resolved")}
               for u in body["units"] if u["total"]}  # (every unit has a row, most with nothing)
        assert got == expected, level
        assert body["unassigned"] == sum(i["unassigned"] for i in listed)
    assert client.get("/stats", params={"level": "building", **window}).status_code == 422


def test_after_a_redraw_open_incidents_move_and_closed_ones_keep_their_units(db_url, tmp_path, start_server):
    from shapely.geometry import box

    from geo.units.model import UnitInput
    from geo.usecases import boundaries
    from geo.usecases.units import load_file
    from tests import shapes

    west, east, south, north, mid = 114.300, 114.320, 30.550, 30.570, 114.310
    cell = box(west, south, east, north)
    load_file(shapes.write(tmp_path / "s.geojson", [{"code": shapes.STREET, "name": "街道", "geometry": cell}]),
              "street")
    load_file(shapes.write(tmp_path / "c.geojson", [{"code": shapes.COMMUNITY, "name": "社区", "geometry": cell}]),
              "community")
    load_file(shapes.write(tmp_path / "g.geojson", [
        {"code": shapes.COMMUNITY + "001", "name": "西", "geometry": box(west, south, mid, north)},
        {"code": shapes.COMMUNITY + "002", "name": "东", "geometry": box(mid, south, east, north)},
    ]), "grid")
    base = start_server(db_url)
    point = {"lon": 114.3125, "lat": 30.56}  # in the east grid, 240 m east of the line
    with httpx.Client(base_url=base, timeout=60) as client:
        open_one = _report(client, point)
        done = _report(client, point)
        done = _move(client, done, "rejected").json()
        old_grid = open_one["grid"]["id"]
        window = {"from": "2000-01-01T00:00:00+08:00", "to": "2100-01-01T00:00:00+08:00"}
        before = client.get("/stats", params={"level": "community", **window}).json()
        with psycopg.connect(db_url) as conn:
            old_ids = [r[0] for r in conn.execute(
                "SELECT unit_id FROM unit_version WHERE level = 'grid' AND valid_to IS NULL ORDER BY code")]
            with conn.transaction():
                boundaries.replace_units(conn, old_ids, [
                    UnitInput("grid", shapes.COMMUNITY + "003", "新西", box(west, south, 114.315, north)),
                    UnitInput("grid", shapes.COMMUNITY + "004", "新东", box(114.315, south, east, north)),
                ], kind="redraw")
        moved = client.get(f"/incidents/{open_one['id']}").json()
        assert moved["grid"]["name"] == "新西" and moved["grid"]["id"] != old_grid
        assert moved["version"] == open_one["version"] + 1
        assert [e["to"] for e in moved["events"]][:1] == ["reported"]
        assert moved["events"][-1]["actor"] == "boundary change"
        assert moved["events"][-1]["data"]["from"]["grid"] == old_grid
        kept = client.get(f"/incidents/{done['id']}").json()
        assert kept["grid"]["id"] == old_grid and kept["grid"]["name"] == "东"
        after = client.get("/stats", params={"level": "community", **window}).json()
        assert [u["total"] for u in after["units"]] == [u["total"] for u in before["units"]] == [2]
        grids = {u["name"]: u["total"]
                 for u in client.get("/stats", params={"level": "grid", **window}).json()["units"]}
        assert grids == {"新西": 2, "新东": 0}  # the retired 东's closed one counts where its point lies now
        apart = {u["name"]: (u["total"], u["retired"]) for u in client.get(
            "/stats", params={"level": "grid", "retired": "separate", **window}).json()["units"]}
        assert apart == {"东": (1, True), "新西": (1, False), "新东": (0, False)}


def test_import_keeps_valid_rows_reports_bad_ones_and_never_duplicates(sample_url, spot, tmp_path):
    import csv as csvmod
    import json

    from tests.conftest import run_cli

    glon, glat = datums.wgs84_to_gcj02(spot["lon"], spot["lat"])
    path = tmp_path / "hotline.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csvmod.writer(handle)
        writer.writerow(["external_id", "category", "lon", "lat", "crs", "reported_at", "description", "channel"])
        # (times after the sample was loaded: a report older than the boundaries finds no unit)
        now = datetime.now(UTC).isoformat()
        writer.writerow(["H-1", "garbage", glon, glat, "gcj02", "", "垃圾满溢", "hotline"])
        writer.writerow(["H-2", "noise", spot["lon"], spot["lat"], "wgs84", now, "夜间施工", "hotline"])
        writer.writerow(["H-3", "ufo", spot["lon"], spot["lat"], "", "", "不明飞行物", "hotline"])
        writer.writerow(["H-4", "garbage", spot["lat"], spot["lon"], "", "", "坐标反了", "hotline"])
        writer.writerow(["", "parking", 110.0, 20.0, "", "2026-11-21T08:00:00+08:00", "没有编号，在区外", ""])
    first = run_cli("incidents", "import", str(path))
    assert first.returncode == 0, first.stderr
    result = json.loads([line for line in first.stderr.splitlines() if line.startswith("{")][-1])
    assert (result["created"], result["errors"]) == (3, 2)
    with open(result["errors_file"], encoding="utf-8-sig") as handle:
        bad = list(csvmod.DictReader(handle))
    assert [b["row"] for b in bad] == ["3", "4"]
    assert [b["description"] for b in bad] == ["不明飞行物", "坐标反了"]  # the rows whole, beside the reason
    assert "unknown category 'ufo'" in bad[0]["error"] and "latitude, longitude" in bad[1]["error"]
    again = run_cli("incidents", "import", str(path))
    result = json.loads([line for line in again.stderr.splitlines() if line.startswith("{")][-1])
    assert (result["created"], result["already_stored"]) == (0, 3)
    with psycopg.connect(sample_url) as conn:
        rows = dict(conn.execute("SELECT external_id, grid_id FROM incident").fetchall())
        assert len(rows) == 3
        assert rows["H-1"] == rows["H-2"] == spot["grid"]  # the GCJ-02 row lands in the same grid
        assert conn.execute("SELECT count(*) FROM incident WHERE unassigned").fetchone()[0] == 1


def test_open311_round_trip_with_a_real_client(client, spot):
    services = client.get("/open311/v2/services.json").json()
    assert {"service_code": "manhole", "service_name": "井盖缺失"}.items() <= services[
        [s["service_code"] for s in services].index("manhole")].items()
    created = client.post("/open311/v2/requests.json", data={
        "service_code": "manhole", "lat": spot["lat"], "long": spot["lon"], "description": "井盖不见了",
        "media_url": "https://img.example.cn/1.jpg", "email": "rider@example.cn"})
    assert created.status_code == 201, created.text
    request_id = created.json()[0]["service_request_id"]
    one = client.get(f"/open311/v2/requests/{request_id}.json").json()[0]
    assert one["service_code"] == "manhole" and one["status"] == "open"
    assert one["lat"] == pytest.approx(spot["lat"]) and one["media_url"] == "https://img.example.cn/1.jpg"
    located = client.get("/locate", params={"lon": spot["lon"], "lat": spot["lat"]}).json()
    assert one["extended_attributes"]["grid"] == located["grid"]["code"]
    assert one["extended_attributes"]["community_name"] == located["community"]["name"]
    listed = client.get("/open311/v2/requests.json", params={"status": "open", "service_code": "manhole"}).json()
    assert request_id in [r["service_request_id"] for r in listed]
    incident = client.get(f"/incidents/{request_id}").json()
    _move(client, incident, "rejected", note="重复上报")
    assert client.get(f"/open311/v2/requests/{request_id}.json").json()[0]["status"] == "closed"
    bad = client.post("/open311/v2/requests.json", data={"service_code": "manhole", "lat": "x", "long": "1"})
    assert bad.status_code == 400 and bad.json()[0]["code"] == 400
    missing = client.post("/open311/v2/requests.json", data={"service_code": "manhole"})
    assert missing.status_code == 400 and "missing lat, long" in missing.json()[0]["description"]
    assert client.get("/open311/v2/requests/999999.json").status_code == 404


def test_generated_sample_incidents_look_like_a_city(sample_url):
    from tests.conftest import run_cli

    result = run_cli("incidents", "sample", "--count", "3000", "--days", "30")
    assert result.returncode == 0, result.stderr
    with psycopg.connect(sample_url) as conn:
        total, assigned, categories, open_ = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE grid_id IS NOT NULL), count(DISTINCT category), "
            "count(*) FILTER (WHERE state IN ('reported', 'assigned', 'in_progress')) FROM incident").fetchone()
        by_hour = dict(conn.execute(
            "SELECT extract(hour FROM reported_at AT TIME ZONE 'Asia/Shanghai')::int, count(*) FROM incident GROUP BY 1"
        ).fetchall())
        busiest_grid = conn.execute(
            "SELECT max(n) FROM (SELECT count(*) n FROM incident GROUP BY grid_id) g").fetchone()[0]
    assert total == 3000 and 0.7 * total < assigned < total  # some fall outside the district
    assert categories == 11 and open_ > 0
    assert by_hour.get(10, 0) > 5 * by_hour.get(3, 0)  # the daily rhythm, Beijing time: 10 a.m. vs 3 a.m.
    assert busiest_grid > 5 * 3000 / 329  # hot spots
    _only_states_the_lifecycle_reaches(sample_url)


def _only_states_the_lifecycle_reaches(url: str) -> None:
    """Every incident in a state its history leads to, with a worker wherever one is needed."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("""
            SELECT i.state, i.worker_id, i.unassigned, i.queue_street_id,
                   array_agg(e.to_state ORDER BY e.id), array_agg(e.from_state ORDER BY e.id)
            FROM incident i JOIN incident_event e ON e.incident_id = i.id
            GROUP BY i.id, i.district, i.reported_at""").fetchall()
        total = conn.execute("SELECT count(*) FROM incident").fetchone()[0]
    assert len(rows) == total  # every incident has a history
    for state, worker, unassigned, _, tos, froms in rows:
        assert tos[-1] == state and tos[0] == "reported" and froms[0] is None
        assert all(b in TRANSITIONS[a] for a, b in zip(tos, tos[1:], strict=False)), tos
        assert froms[1:] == tos[:-1]
        if state in ("assigned", "in_progress", "resolved", "closed"):
            assert worker is not None, (state, tos)
        if unassigned:
            assert state in ("reported", "rejected", "duplicate") or worker is not None


def test_the_sample_comes_with_staff_and_incidents_dispatched_to_them(sample_url):
    from geo.usecases import incidents as intake
    from geo.usecases import workers as staff

    with psycopg.connect(sample_url) as conn:
        added = staff.staff_sample(conn, "test")
        conn.commit()
        assert staff.staff_sample(conn, "test") == 0  # once
        grids, communities = conn.execute(
            "SELECT count(*) FILTER (WHERE level = 'grid'), count(*) FILTER (WHERE level = 'community') "
            "FROM unit_version WHERE valid_to IS NULL").fetchone()
        assert added == grids + communities
        names = [r[0] for r in conn.execute("SELECT name FROM worker")]
        assert all(2 <= len(n) <= 3 for n in names)
        end = datetime.now(UTC)
        intake.generate_sample(conn, 2000, end - timedelta(days=30), end, "test")
        conn.commit()
        states = dict(conn.execute("SELECT state, count(*) FROM incident GROUP BY 1").fetchall())
        escalated = conn.execute(
            "SELECT count(*) FROM incident i JOIN incident_category c ON c.code = i.category "
            "WHERE c.escalate AND i.worker_id IS NOT NULL AND i.handled_at_level <> 'community'").fetchone()[0]
    assert {"assigned", "in_progress", "resolved", "closed"} <= set(states) and escalated == 0
    _only_states_the_lifecycle_reaches(sample_url)


def test_after_a_split_of_a_grid_its_open_incidents_go_to_the_part_holding_them(db_url, tmp_path, start_server):
    from shapely.geometry import box

    from geo.units.model import UnitInput
    from geo.usecases import boundaries
    from geo.usecases.units import load_file
    from tests import shapes

    cell = box(114.300, 30.550, 114.320, 30.570)
    load_file(shapes.write(tmp_path / "s.geojson", [{"code": shapes.STREET, "name": "街道", "geometry": cell}]),
              "street")
    load_file(shapes.write(tmp_path / "c.geojson", [{"code": shapes.COMMUNITY, "name": "社区", "geometry": cell}]),
              "community")
    load_file(shapes.write(tmp_path / "g.geojson", [
        {"code": shapes.COMMUNITY + "001", "name": "大网格", "geometry": cell}]), "grid")
    base = start_server(db_url)
    with httpx.Client(base_url=base, timeout=60) as client:
        north = _report(client, {"lon": 114.31, "lat": 30.565})
        south = _report(client, {"lon": 114.31, "lat": 30.555})
        with psycopg.connect(db_url) as conn:
            (old,) = conn.execute("SELECT unit_id FROM unit_version WHERE level = 'grid'").fetchone()
            with conn.transaction():
                boundaries.replace_units(conn, [old], [
                    UnitInput("grid", shapes.COMMUNITY + "002", "北网格", box(114.300, 30.560, 114.320, 30.570)),
                    UnitInput("grid", shapes.COMMUNITY + "003", "南网格", box(114.300, 30.550, 114.320, 30.560)),
                ], kind="split")
        assert client.get(f"/incidents/{north['id']}").json()["grid"]["name"] == "北网格"
        assert client.get(f"/incidents/{south['id']}").json()["grid"]["name"] == "南网格"


@pytest.mark.parametrize("body,needle", [
    (b'{"category": "manhole", "lon": 114.29, "lat": 30.54, "description": "\\ud800"}', "unicode"),
    (b'{"category": "manhole", "lon": 114.29, "lat": 30.54, "reported_at": "0001-01-01T00:00:00Z"}', "10 years"),
])
def test_more_bad_reports(client, body, needle):
    answer = client.post("/incidents", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert needle in answer.text


def test_hand_over_only_to_a_worker_of_the_incidents_grid_or_community(client, spot, sample_url):
    with psycopg.connect(sample_url) as conn:
        other_grid = conn.execute("SELECT unit_id FROM unit_version WHERE level = 'grid' AND unit_id <> %s "
                                  "ORDER BY code LIMIT 1", [spot["grid"]]).fetchone()[0]
    stranger = client.post("/workers", json={"name": "外格员", "role": "grid_worker", "unit_id": other_grid}).json()
    incident = _report(client, spot)
    answer = _move(client, incident, "assigned", worker_id=stranger["id"])
    assert answer.status_code == 422 and "hand incident" in answer.json()["detail"]


def test_geojson_import_keeps_good_features_beside_broken_ones(sample_url, spot, tmp_path):
    import json

    from tests.conftest import run_cli

    path = tmp_path / "reports.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        1,
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [spot["lon"], spot["lat"]]},
         "properties": {"external_id": "G-1", "category": "noise"}},
        {"type": "Feature", "geometry": None, "properties": "oops"},
    ]}), encoding="utf-8")
    result = run_cli("incidents", "import", str(path))
    assert result.returncode == 0, result.stderr
    summary = json.loads([line for line in result.stderr.splitlines() if line.startswith("{")][-1])
    assert (summary["created"], summary["errors"]) == (1, 2)


@pytest.mark.parametrize("params,needle", [
    ({"level": "grid", "from": "2026-12-01", "to": "2026-11-01"}, "must come after"),
    ({"level": "grid", "from": "last month", "to": "2026-11-01"}, "ISO 8601"),
    ({"level": "grid", "retired": "hide"}, "rollup"),
    ({"level": "village", "from": "2026-10-01", "to": "2026-11-01"}, "unknown level"),
])
def test_bad_stats_queries_get_422(client, params, needle):
    answer = client.get("/stats", params=params)
    assert answer.status_code == 422, answer.text
    assert needle in answer.text
