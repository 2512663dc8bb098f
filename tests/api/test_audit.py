"""The audit log, through a real server with auth on (`secured`) and the real command line:
a row for a plan commit, a unit edit, an incident intake and transition, a load and key
changes, naming the key (or cli:<user>) with versions or states before and after; written in
the change's transaction, so a failed or rolled-back change leaves none; append-only; read
through GET /audit (admins) and `gridmap audit`."""

from __future__ import annotations

import getpass
import json

import psycopg
import pytest

from geo.usecases import plans
from tests.conftest import bearer, run_cli

LON, LAT = 114.30, 30.55


def audit_rows(http, secured, **params) -> list[dict]:
    answer = http.get("/audit", params=params, headers=bearer(secured.keys["admin"]))
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def _grid(url: str, offset: int) -> tuple[int, str]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT unit_id, code FROM unit_version WHERE valid_to IS NULL AND level = 'grid' "
                            "ORDER BY code OFFSET %s LIMIT 1", [offset]).fetchone()


def test_a_plan_commit_is_audited_with_the_key_and_the_versions(http, secured):
    planner = bearer(secured.keys["planner"])
    _, code = _grid(secured.url, 40)
    drawn = http.post("/plans/split", json={"unit": code, "into": "neighbourhood"}, headers=planner)
    assert drawn.status_code == 201, drawn.text
    plan = drawn.json()
    done = http.post(f"/plans/{plan['id']}/commit", json={"revision": 1}, headers=planner)
    assert done.status_code == 200, done.text
    [row] = audit_rows(http, secured, action="plan.commit", subject_id=plan["id"])
    assert row["actor"].endswith("test-planner (planner)") and row["role"] == "planner" and row["key_id"]
    assert row["subject"] == "plan" and row["subject_ids"] == [plan["id"]]
    assert row["change_id"] == done.json()["change_id"]
    assert row["before"]["status"] == "draft" and row["after"]["status"] == "committed"
    assert sorted((u["id"], u["version"]) for u in row["before"]["units"]) == \
        sorted((r["unit_id"], r["version"]) for r in plan["replaces"])
    with psycopg.connect(secured.url) as conn:
        created = {r[0] for r in conn.execute("SELECT unit_id FROM unit_version WHERE change_id = %s AND version = 1",
                                              [row["change_id"]])}
        change_actor, change_at = conn.execute("SELECT actor, created_at FROM change_set WHERE id = %s",
                                               [row["change_id"]]).fetchone()
        plan_actor = conn.execute("SELECT actor FROM plan WHERE id = %s", [plan["id"]]).fetchone()[0]
    assert set(row["after"]["units"]) == created and created
    assert change_actor == plan_actor == row["actor"]  # the key is threaded into change sets and plans
    assert change_at.isoformat() == row["at"]  # one transaction, one clock
    [drew] = audit_rows(http, secured, action="plan.draw", subject_id=plan["id"])
    assert drew["actor"] == row["actor"] and drew["detail"]["parts"] == len(plan["units"])


def test_a_stale_commit_leaves_no_audit_row_and_the_edit_that_made_it_stale_has_one(http, secured):
    planner = bearer(secured.keys["planner"])
    _, code = _grid(secured.url, 60)
    plan = http.post("/plans/split", json={"unit": code, "into": "neighbourhood"}, headers=planner).json()
    unit_id = plan["replaces"][0]["unit_id"]
    version = plan["replaces"][0]["version"]
    edited = http.put(f"/units/{unit_id}", json={"version": version, "name": "改名小邻里", "note": "renamed"},
                      headers=planner)
    assert edited.status_code == 200, edited.text
    [edit] = audit_rows(http, secured, action="unit.edit", subject="unit", subject_id=unit_id)
    assert edit["before"] == {"version": version} and edit["after"] == {"version": version + 1}
    assert edit["change_id"] == edited.json()["change_id"] and edit["detail"]["fields"] == ["name"]
    assert edit["detail"]["note"] == "renamed" and edit["role"] == "planner"
    refused = http.post(f"/plans/{plan['id']}/commit", headers=planner)
    assert refused.status_code == 409
    assert audit_rows(http, secured, action="plan.commit", subject_id=plan["id"]) == []
    # nor does a refused edit (stale version)
    assert http.put(f"/units/{unit_id}", json={"version": version, "name": "x"}, headers=planner).status_code == 409
    assert len(audit_rows(http, secured, action="unit.edit", subject_id=unit_id)) == 1


def test_a_rolled_back_commit_leaves_no_audit_row(secured):
    grid_id, _ = _grid(secured.url, 80)

    class Undo(Exception):
        pass

    with psycopg.connect(secured.url, autocommit=True) as conn:
        plan = plans.draw_split(conn, grid_id, "neighbourhood", actor="tester")
        before = conn.execute("SELECT count(*), max(id) FROM audit_log").fetchone()
        try:
            with conn.transaction():
                done = plans.commit_plan(conn, plan["id"], actor="tester")
                assert done["status"] == "committed"
                inside = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'plan.commit' "
                                      "AND subject_ids = ARRAY[%s]::bigint[]", [plan["id"]]).fetchone()[0]
                assert inside == 1  # written, in the same transaction...
                raise Undo
        except Undo:
            pass
        # ...and gone with it, with the change itself
        assert conn.execute("SELECT count(*), max(id) FROM audit_log").fetchone() == before
        assert conn.execute("SELECT status FROM plan WHERE id = %s", [plan["id"]]).fetchone()[0] == "draft"
        assert conn.execute("SELECT count(*) FROM change_set WHERE id = ANY(%s)",
                            [done["change_ids"]]).fetchone()[0] == 0


def test_incident_intake_and_transitions_are_audited(http, secured):
    dispatcher = bearer(secured.keys["dispatcher"])
    grid_id, _ = _grid(secured.url, 0)
    with psycopg.connect(secured.url) as conn:
        lon, lat = conn.execute("SELECT ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
                                "WHERE unit_id = %s AND valid_to IS NULL", [grid_id]).fetchone()
    worker = http.post("/workers", json={"name": "李网格员", "role": "grid_worker", "unit_id": grid_id},
                       headers=dispatcher).json()
    [added] = audit_rows(http, secured, action="worker.add", subject_id=worker["id"])
    assert added["after"] == {"name": "李网格员", "role": "grid_worker", "unit_id": grid_id}
    made = http.post("/incidents", json={"category": "manhole", "lon": lon, "lat": lat, "channel": "wechat",
                                         "contact": "13812345678"},
                     headers=bearer(secured.keys["service"])).json()
    assert made["state"] == "assigned"
    [intake] = audit_rows(http, secured, action="incident.report", subject_id=made["id"])
    assert intake["role"] == "service" and intake["actor"].endswith("test-service (service)")
    assert intake["after"] == {"state": "assigned", "version": 1, "worker_id": worker["id"]}
    assert intake["detail"]["channel"] == "wechat" and "13812345678" not in json.dumps(intake)
    moved = http.post(f"/incidents/{made['id']}/transitions", headers=dispatcher,
                      json={"to": "in_progress", "version": made["version"], "actor": "李网格员", "note": "到场"})
    assert moved.status_code == 200, moved.text
    illegal = http.post(f"/incidents/{made['id']}/transitions", headers=dispatcher,
                        json={"to": "closed", "version": moved.json()["version"], "actor": "李网格员"})
    assert illegal.status_code == 409
    [transition] = audit_rows(http, secured, action="incident.transition", subject_id=made["id"])
    assert transition["before"] == {"state": "assigned", "version": made["version"]}
    assert transition["after"] == {"state": "in_progress", "version": made["version"] + 1}
    assert transition["detail"] == {"actor": "李网格员", "note": "到场"} and transition["role"] == "dispatcher"
    # the incident's own history still names the person; the audit log names the key
    assert moved.json()["events"][-1]["actor"] == "李网格员"


def test_key_changes_are_audited_and_never_hold_the_key(http, secured):
    admin = bearer(secured.keys["admin"])
    made = http.post("/keys", json={"role": "planner", "name": "规划科"}, headers=admin).json()
    http.delete(f"/keys/{made['id']}", headers=admin)
    rows = audit_rows(http, secured, action="key.", subject_id=made["id"])
    assert [r["action"] for r in rows] == ["key.revoke", "key.create"]
    assert rows[1]["after"] == {"role": "planner", "name": "规划科", "prefix": made["prefix"]}
    assert rows[0]["before"] == {"active": True} and rows[0]["after"]["active"] is False
    assert all(r["actor"].endswith("test-admin (admin)") for r in rows)
    assert made["key"] not in json.dumps(rows) and made["key"].split("_", 2)[2] not in json.dumps(rows)
    cli = run_cli("keys", "create", "--role", "service", "--name", "from cli", env={"DATABASE_URL": secured.url})
    assert cli.returncode == 0, cli.stderr
    [row] = audit_rows(http, secured, action="key.create", actor="cli:")
    assert row["actor"] == f"cli:{getpass.getuser()}" and row["role"] is None and row["key_id"] is None
    assert row["after"]["name"] == "from cli"


def test_a_load_and_cli_commands_are_audited_as_the_os_user(http, secured, tmp_path):
    env = {"DATABASE_URL": secured.url}
    grid_id, code = _grid(secured.url, 100)
    unit = http.get(f"/units/{grid_id}", headers=bearer(secured.keys["service"])).json()
    path = tmp_path / "one-grid.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": unit["geometry"],
        "properties": {"code": code, "name": "新名网格", "households": unit["households"]}}]}), encoding="utf-8")
    loaded = run_cli("load", str(path), "--level", "grid", env=env)
    assert loaded.returncode == 0, loaded.stderr
    [row] = audit_rows(http, secured, action="units.load", actor="cli:")
    assert row["actor"] == f"cli:{getpass.getuser()}" and row["subject"] == "change_set"
    assert row["subject_ids"] == [row["change_id"]]
    assert row["detail"]["changed"] == 1 and row["detail"]["file"] == "one-grid.geojson"
    again = run_cli("load", str(path), "--level", "grid", env=env)  # unchanged: nothing to record
    assert again.returncode == 0 and len(audit_rows(http, secured, action="units.load", actor="cli:")) == 1
    listed = run_cli("audit", "--action", "units.load", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["id"] for r in lines if r["actor"].startswith("cli:")] == [row["id"]]
    table = run_cli("audit", "--limit", "5", env=env)
    assert table.returncode == 0 and "units.load" in table.stdout


def test_get_audit_filters_pages_and_is_for_admins(http, secured):
    everything = audit_rows(http, secured, limit=1000)
    assert everything == sorted(everything, key=lambda r: -r["id"]) and len(everything) >= 3
    page = http.get("/audit", params={"limit": 2}, headers=bearer(secured.keys["admin"])).json()
    assert [r["id"] for r in page["items"]] == [r["id"] for r in everything[:2]]
    rest = audit_rows(http, secured, before_id=page["next_before_id"], limit=1000)
    assert [r["id"] for r in rest] == [r["id"] for r in everything[2:]]
    newest = everything[0]["at"]
    assert all(r["at"] >= newest for r in audit_rows(http, secured, since=newest))
    assert all(r["at"] < newest for r in audit_rows(http, secured, until=newest))
    bad = http.get("/audit", params={"since": "yesterday"}, headers=bearer(secured.keys["admin"]))
    assert bad.status_code == 422
    for role in ("service", "dispatcher", "planner"):
        assert http.get("/audit", headers=bearer(secured.keys[role])).status_code == 403


def test_the_audit_log_is_append_only(secured):
    with psycopg.connect(secured.url) as conn:
        for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log",
                          "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
            conn.rollback()
