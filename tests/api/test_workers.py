"""/workers over a real HTTP server and the sample district: add, read, change and deactivate
workers with the permissions each needs, phones masked, lists by a unit's subtree, unplaced and
active, paged; open incidents back to the dispatch queue when their worker leaves; workers left
unplaced by a redraw; and a plan commit that moves a grid worker with his incidents."""

from __future__ import annotations

import psycopg
import pytest
import shapely

from geo.db import rows as db_rows
from geo.units.model import UnitInput
from geo.usecases import boundaries
from tests.conftest import bearer

PHONE = "13911112222"


@pytest.fixture(scope="module")
def keys(secured):
    return {role: bearer(key) for role, key in secured.keys.items()}


@pytest.fixture(scope="module")
def place(secured):
    """Units of the secured server's district: communities with their current grids (a point
    inside each), so that each test works in a community of its own."""
    with psycopg.connect(secured.url) as conn:
        grids = conn.execute(
            "SELECT community_id, street_id, unit_id, ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
            "WHERE level = 'grid' AND valid_to IS NULL ORDER BY community_id, code").fetchall()
    communities: dict[int, list[dict]] = {}
    street: dict[int, int] = {}
    for community, street_id, grid, lon, lat in grids:
        communities.setdefault(community, []).append({"id": grid, "lon": lon, "lat": lat})
        street[community] = street_id
    big = [c for c, gs in communities.items() if len(gs) >= 4]
    return {"street": street, "communities": communities, "big": big}


def _add(http, keys, name, role, unit_id, phone=None):
    made = http.post("/workers", headers=keys["dispatcher"],
                     json={"name": name, "role": role, "unit_id": unit_id, "phone": phone})
    assert made.status_code == 201, made.text
    return made.json()


def _report(http, keys, grid):
    made = http.post("/incidents", headers=keys["service"],
                     json={"category": "garbage", "lon": grid["lon"], "lat": grid["lat"], "description": "垃圾"})
    assert made.status_code == 201, made.text
    return made.json()


def _move(http, keys, incident, to):
    moved = http.post(f"/incidents/{incident['id']}/transitions", headers=keys["dispatcher"],
                      json={"to": to, "version": incident["version"], "actor": "王科长"})
    assert moved.status_code == 200, moved.text
    return moved.json()


def test_add_read_and_change_a_worker(http, keys, place):
    community = place["big"][0]
    grid = place["communities"][community][0]["id"]
    worker = _add(http, keys, "李网格员", "grid_worker", grid, PHONE)
    wid = worker["id"]
    assert worker["unit"] | {"code": None, "name": None} == {"id": grid, "level": "grid", "code": None, "name": None,
                                                            "current": True}
    one = http.get(f"/workers/{wid}", headers=keys["dispatcher"]).json()
    assert one["phone"] == PHONE and one["active"] is True and one["unplaced_since"] is None
    assert [e["kind"] for e in one["events"]] == ["add"]
    # the phone is masked for callers without `contact`, here and in the list
    assert http.get(f"/workers/{wid}", headers=keys["service"]).json()["phone"] == "139****2222"
    listed = http.get("/workers", params={"unit_id": grid}, headers=keys["planner"]).json()
    assert [w["phone"] for w in listed if w["id"] == wid] == ["139****2222"]

    changed = http.put(f"/workers/{wid}", headers=keys["dispatcher"], json={"name": " 李明 ", "phone": None})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["phone"], changed.json()["role"]) == ("李明", None, "grid_worker")
    assert changed.json()["returned_to_queue"] == []
    # a role that does not fit the unit's level, named
    wrong = http.put(f"/workers/{wid}", headers=keys["dispatcher"], json={"role": "community_worker"})
    assert wrong.status_code == 422
    assert f"a community_worker is attached to a community, and unit {grid} is a grid" in wrong.json()["detail"]
    moved = http.put(f"/workers/{wid}", headers=keys["admin"], json={"role": "community_worker", "unit_id": community})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["role"], moved.json()["unit"]["id"], moved.json()["unit"]["level"]) == (
        "community_worker", community, "community")
    assert [e["kind"] for e in moved.json()["events"]] == ["add", "edit", "edit"]
    assert moved.json()["events"][-1]["from_unit_id"] == grid and moved.json()["events"][-1]["to_unit_id"] == community

    # bad changes: a clear 4xx naming the problem, and nothing changes
    for body, words in [({}, "give at least one of"), ({"name": None}, "name cannot be null"),
                        ({"unit_id": 999999}, "no current unit with id 999999"),
                        ({"role": "网格长"}, "unknown role"), ({"name": "  "}, "needs a name")]:
        bad = http.put(f"/workers/{wid}", headers=keys["dispatcher"], json=body)
        assert bad.status_code == 422 and words in bad.json()["detail"], (body, bad.text)
    assert http.put(f"/workers/{wid}", headers=keys["dispatcher"], json={"colour": "red"}).status_code == 422
    assert http.put("/workers/999999", headers=keys["dispatcher"], json={"name": "x"}).status_code == 404
    assert http.get("/workers/999999", headers=keys["service"]).status_code == 404
    assert http.delete("/workers/999999", headers=keys["dispatcher"]).status_code == 404
    assert http.get(f"/workers/{wid}", headers=keys["dispatcher"]).json()["events"] == moved.json()["events"]

    # writes need `dispatch`, reads `read`
    for role in ("service", "planner"):
        assert http.put(f"/workers/{wid}", headers=keys[role], json={"name": "x"}).status_code == 403
        assert http.delete(f"/workers/{wid}", headers=keys[role]).status_code == 403
        assert http.get(f"/workers/{wid}", headers=keys[role]).status_code == 200
    assert http.get(f"/workers/{wid}").status_code == 401
    audit = http.get("/audit", params={"subject": "worker", "subject_id": wid}, headers=keys["admin"]).json()["items"]
    assert [r["action"] for r in audit] == ["worker.edit", "worker.edit", "worker.add"]
    assert audit[0]["before"] == {"role": "grid_worker", "unit_id": grid}
    assert audit[0]["after"] == {"role": "community_worker", "unit_id": community}
    assert PHONE not in str(audit)


def test_list_a_units_subtree_active_or_not_page_by_page(http, keys, place):
    community, other = place["big"][1], place["big"][2]
    grids = place["communities"][community]
    mine = [_add(http, keys, "一格员", "grid_worker", grids[0]["id"]),
            _add(http, keys, "二格员", "grid_worker", grids[1]["id"]),
            _add(http, keys, "社工", "community_worker", community)]
    elsewhere = _add(http, keys, "外格员", "grid_worker", place["communities"][other][0]["id"])
    gone = http.delete(f"/workers/{mine[1]['id']}", headers=keys["dispatcher"])
    assert gone.status_code == 200 and gone.json()["active"] is False

    def listed(**params):
        answer = http.get("/workers", params=params, headers=keys["service"])
        assert answer.status_code == 200, answer.text
        return answer

    ids = [w["id"] for w in mine]
    assert [w["id"] for w in listed(unit_id=community).json()] == ids
    assert [w["id"] for w in listed(unit_id=grids[0]["id"]).json()] == ids[:1]
    everyone = [w["id"] for w in listed(unit_id=place["street"][community], limit=1000).json()]
    assert set(ids) <= set(everyone)
    assert (elsewhere["id"] in everyone) == (place["street"][other] == place["street"][community])
    assert [w["id"] for w in listed(unit_id=community, active=False).json()] == [ids[1]]
    assert [w["id"] for w in listed(unit_id=community, active=True).json()] == [ids[0], ids[2]]
    # paged by id, with the count of all that match
    page = listed(unit_id=community, limit=1, offset=1)
    assert [w["id"] for w in page.json()] == [ids[1]] and page.headers["X-Total-Count"] == "3"
    assert listed().headers["X-Total-Count"] == str(len(listed(limit=1000).json()))
    assert http.get("/workers", params={"limit": 0}, headers=keys["service"]).status_code == 422
    missing = http.get("/workers", params={"unit_id": 999999999}, headers=keys["service"])
    assert missing.status_code == 404 and "no unit with id 999999999" in missing.json()["detail"]


def test_deactivating_a_worker_returns_open_incidents_to_the_dispatch_queue(http, keys, place):
    grid = place["communities"][place["big"][3]][0]
    worker = _add(http, keys, "张网格员", "grid_worker", grid["id"])
    assigned, started, finished = (_report(http, keys, grid) for _ in range(3))
    assert {i["worker"]["id"] for i in (assigned, started, finished)} == {worker["id"]}
    started = _move(http, keys, started, "in_progress")
    finished = _move(http, keys, _move(http, keys, finished, "in_progress"), "resolved")

    gone = http.delete(f"/workers/{worker['id']}", headers=keys["dispatcher"])
    assert gone.status_code == 200, gone.text
    assert gone.json()["active"] is False and gone.json()["events"][-1]["kind"] == "deactivate"
    assert gone.json()["returned_to_queue"] == [assigned["id"], started["id"]]
    for before in (assigned, started):
        now = http.get(f"/incidents/{before['id']}", headers=keys["dispatcher"]).json()
        assert (now["state"], now["worker"], now["handled_at_level"]) == ("reported", None, None)
        assert now["version"] == before["version"] + 1
        last = now["events"][-1]
        assert (last["from"], last["to"]) == (before["state"], "reported")
        assert last["note"] == f"back to the dispatch queue: worker {worker['id']} was deactivated"
    kept = http.get(f"/incidents/{finished['id']}", headers=keys["dispatcher"]).json()
    assert kept["state"] == "resolved" and kept["worker"]["id"] == worker["id"]
    audit = http.get("/audit", params={"action": "incident.requeue"}, headers=keys["admin"]).json()["items"]
    assert audit[0]["subject_ids"] == [assigned["id"], started["id"]]
    assert audit[0]["detail"]["worker_id"] == worker["id"]
    deactivated = http.get("/audit", params={"action": "worker.deactivate", "subject_id": worker["id"]},
                           headers=keys["admin"]).json()["items"]
    assert deactivated[0]["detail"]["returned_to_queue"] == gone.json()["returned_to_queue"]
    # deactivating again changes nothing; a new report no longer goes to the worker
    again = http.delete(f"/workers/{worker['id']}", headers=keys["dispatcher"])
    assert again.status_code == 200 and again.json()["returned_to_queue"] == []
    assert again.json()["events"] == gone.json()["events"]
    assert _report(http, keys, grid)["worker"] is None
    # reactivated, the worker takes new reports again
    back = http.put(f"/workers/{worker['id']}", headers=keys["dispatcher"], json={"active": True})
    assert back.status_code == 200 and back.json()["events"][-1]["kind"] == "reactivate"
    assert _report(http, keys, grid)["worker"]["id"] == worker["id"]


def test_moving_a_worker_returns_the_incidents_of_the_old_grid(http, keys, place):
    grids = place["communities"][place["big"][4]]
    worker = _add(http, keys, "赵网格员", "grid_worker", grids[0]["id"])
    incident = _report(http, keys, grids[0])
    assert incident["worker"]["id"] == worker["id"]
    # grid head of the same grid: may still take the grid's incidents
    head = http.put(f"/workers/{worker['id']}", headers=keys["dispatcher"], json={"role": "grid_head"})
    assert head.status_code == 200 and head.json()["returned_to_queue"] == []
    moved = http.put(f"/workers/{worker['id']}", headers=keys["dispatcher"],
                     json={"role": "grid_worker", "unit_id": grids[1]["id"]})
    assert moved.status_code == 200, moved.text
    assert moved.json()["returned_to_queue"] == [incident["id"]]
    now = http.get(f"/incidents/{incident['id']}", headers=keys["dispatcher"]).json()
    assert now["state"] == "reported" and now["worker"] is None
    assert now["events"][-1]["note"] == (f"back to the dispatch queue: worker {worker['id']} is now a grid_worker "
                                         f"of unit {grids[1]['id']}")


def test_workers_left_unplaced_by_a_merge_are_listed_until_given_a_unit(secured, http, keys, place):
    community = place["big"][5]
    grids = place["communities"][community]
    with psycopg.connect(secured.url) as conn:
        a, b = conn.execute(
            "SELECT a.unit_id, b.unit_id FROM unit_version a JOIN unit_version b ON b.community_id = a.community_id "
            "AND b.level = 'grid' AND b.valid_to IS NULL AND a.unit_id < b.unit_id AND ST_Touches(a.geom, b.geom) "
            "WHERE a.level = 'grid' AND a.valid_to IS NULL AND a.community_id = %s ORDER BY 1, 2 LIMIT 1",
            [community]).fetchone()
        code = conn.execute("SELECT code FROM unit_version WHERE unit_id = %s", [community]).fetchone()[0]
    first = _add(http, keys, "甲网格员", "grid_worker", a, PHONE)
    second = _add(http, keys, "乙网格员", "grid_worker", b)
    with psycopg.connect(secured.url) as conn, conn.transaction():
        geoms = db_rows.with_geoms(db_rows.dicts(conn, "SELECT ST_AsBinary(geom) AS wkb FROM unit_version "
                                                       "WHERE unit_id = ANY(%s) AND valid_to IS NULL", [[a, b]]))
        merged = UnitInput("grid", code + "699", "合并网格", shapely.union_all([g["geom"] for g in geoms]))
        summary = boundaries.replace_units(conn, [a, b], [merged], kind="merge", actor="test")
    followed = summary.followed["workers"]
    # both follow to the merged grid; one keeps the place, the other is flagged
    assert len(followed["moved"]) == 2 and len(followed["unplaced"]) == 1
    left = followed["unplaced"][0]
    kept = next(m for m in followed["moved"] if m["worker_id"] != left["worker_id"])
    assert left["worker_id"] in (first["id"], second["id"]) and "already has a grid_worker" in left["reason"]

    unplaced = http.get("/workers", params={"unplaced": True}, headers=keys["service"]).json()
    assert [w["id"] for w in unplaced] == [left["worker_id"]]
    shown = unplaced[0]
    assert shown["unplaced_reason"] == left["reason"] and shown["unplaced_since"]
    assert shown["unit"]["id"] == left["unit_id"] == summary.created[0] and shown["unit"]["current"] is True
    assert PHONE not in str(unplaced)
    # found from the retired grid's community, and not among the placed
    assert [w["id"] for w in http.get("/workers", params={"unplaced": True, "unit_id": community},
                                      headers=keys["service"]).json()] == [left["worker_id"]]
    placed = http.get("/workers", params={"unplaced": False, "unit_id": community}, headers=keys["service"]).json()
    assert left["worker_id"] not in [w["id"] for w in placed]
    assert kept["worker_id"] in [w["id"] for w in placed]
    assert http.get(f"/workers/{left['worker_id']}", headers=keys["service"]).json()["events"][-1]["kind"] == "unplaced"

    # a rename leaves the flag; a role that needs another level is refused
    assert http.put(f"/workers/{left['worker_id']}", headers=keys["dispatcher"], json={"name": "乙"}).status_code == 200
    wrong = http.put(f"/workers/{left['worker_id']}", headers=keys["dispatcher"], json={"role": "community_worker"})
    assert wrong.status_code == 422
    # given a unit, the worker is no longer unplaced
    spare = next(g["id"] for g in grids if g["id"] not in (a, b))
    given = http.put(f"/workers/{left['worker_id']}", headers=keys["dispatcher"], json={"unit_id": spare})
    assert given.status_code == 200, given.text
    assert given.json()["unplaced_since"] is None and given.json()["unplaced_reason"] is None
    assert given.json()["unit"] == given.json()["unit"] | {"id": spare, "current": True}
    assert http.get("/workers", params={"unplaced": True}, headers=keys["service"]).json() == []


def test_plan_commit_moves_the_grid_worker_and_his_incidents_follow_him(client, sample_url):
    """End to end through POST /plans/{id}/commit (geo/usecases/boundaries.py `follow` calls
    follow_change before incidents are re-assigned): the grid worker of a grid the plan retires
    moves to the new grid holding most of its households, and the open incidents now in that
    grid stay with him instead of going to the community worker."""
    communities = client.get("/units", params={"level": "community"}).json()["features"]
    big = max(communities, key=lambda f: f["properties"]["households"])["properties"]
    with psycopg.connect(sample_url) as conn:
        grid = conn.execute("SELECT unit_id FROM unit_version WHERE level = 'grid' AND valid_to IS NULL "
                            "AND community_id = %s ORDER BY code LIMIT 1", [big["id"]]).fetchone()[0]
        spots = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p WHERE level = 'building' "
            "AND valid_to IS NULL AND grid_id = %s ORDER BY code", [grid]).fetchall()
    li = client.post("/workers", json={"name": "李网格员", "role": "grid_worker", "unit_id": grid}).json()
    client.post("/workers", json={"name": "王社工", "role": "community_worker", "unit_id": big["id"]})
    reported = [client.post("/incidents", json={"category": "garbage", "lon": x, "lat": y}).json() for x, y in spots]
    assert {i["worker"]["id"] for i in reported} == {li["id"]}

    drawn = client.post("/plans/split", json={"unit": big["code"], "into": "grids", "households": "300-500"})
    assert drawn.status_code == 201, drawn.text
    plan = drawn.json()
    done = client.post(f"/plans/{plan['id']}/commit", json={"revision": plan["revision"]})
    assert done.status_code == 200, done.text
    with psycopg.connect(sample_url) as conn:
        shares = dict(conn.execute(
            "SELECT n.grid_id, sum(n.households) FROM unit_version o JOIN unit_version n ON n.unit_id = o.unit_id "
            "AND n.valid_to IS NULL WHERE o.level = 'building' AND o.grid_id = %s AND o.valid_to IS NOT NULL "
            "GROUP BY 1", [grid]).fetchall())
    successor = max(shares, key=lambda k: (shares[k], -k))
    moved = client.get(f"/workers/{li['id']}").json()
    assert moved["unit"]["id"] == successor and moved["unit"]["current"] and moved["unplaced_since"] is None
    assert moved["events"][-1]["kind"] == "follow" and moved["events"][-1]["from_unit_id"] == grid
    assert {"worker_id": li["id"], "name": "李网格员", "from_unit": grid, "to_unit": successor} in \
        done.json()["workers"]["moved"]
    follows = client.get("/audit", params={"action": "worker.follow", "subject_id": li["id"]}).json()["items"]
    assert len(follows) == 1 and follows[0]["after"] == {"unit_id": successor}
    there = [client.get(f"/incidents/{i['id']}").json() for i in reported]
    assert any(i["grid"]["id"] == successor for i in there)
    for incident in there:
        if incident["grid"]["id"] == successor:
            assert incident["state"] == "assigned" and incident["worker"]["id"] == li["id"], incident["events"]
