"""A reopened incident leaves the units a boundary change retired (geo/usecases/incidents.py
`transition`): while it is not open it keeps the units it was handled in, so statistics count
it there; moved back into an open state, it goes to the units now holding its point, its event
names what moved (`from`, `to`), and its new grid's worker takes it as a new report's would.

The sample district's community 420199002011 is split into new grids between the steps."""

from __future__ import annotations

from typing import Any

import psycopg

from geo.db import incidents as incidents_db
from geo.db import units
from geo.incidents.lifecycle import Report
from geo.units.levels import LEVELS
from geo.usecases import incidents, plans
from geo.usecases import workers as staff

COMMUNITY = "420199002011"
LON, LAT = 114.3049, 30.5560  # in that community's first grid


def _report(conn: psycopg.Connection) -> dict[str, Any]:
    with conn.transaction():
        incident, created = incidents.report_incident(conn, Report("garbage", LON, LAT), incidents.locator_on(conn))
    assert created
    return incident


def _move(conn: psycopg.Connection, incident: dict[str, Any], to: str, **kw: Any) -> dict[str, Any]:
    with conn.transaction():
        return incidents.transition(conn, incident["id"], to, expected_version=incident["version"],
                                    actor="调度员", **kw)


def _redraw(conn: psycopg.Connection) -> None:
    """Split the community into new grids: every grid it had is retired."""
    plan = plans.draw_split(conn, units.resolve(conn, COMMUNITY), "grid")
    assert plans.commit_plan(conn, plan["id"])["status"] == "committed"


def _chain(conn: psycopg.Connection, incident_id: int) -> dict[str, int | None]:
    cols = ", ".join(f"{lv}_id" for lv in LEVELS)
    row = conn.execute(f"SELECT {cols} FROM incident WHERE id = %s", [incident_id]).fetchone()
    return dict(zip(LEVELS, row, strict=True))


def _current(conn: psycopg.Connection, unit_id: int) -> bool:
    return bool(conn.execute("SELECT count(*) FROM unit_version WHERE unit_id = %s AND valid_to IS NULL",
                             [unit_id]).fetchone()[0])


def test_a_reopened_duplicate_moves_to_the_current_units_holding_its_point(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        incident = _report(conn)
        kept = _move(conn, _report(conn), "duplicate")  # stays a duplicate throughout
        incident = _move(conn, incident, "duplicate")
        old = _chain(conn, incident["id"])
        _redraw(conn)
        assert not _current(conn, old["grid"])
        assert _chain(conn, kept["id"]) == old, "an incident not open keeps the units it was handled in"

        reopened = _move(conn, incident, "reported")

        assert reopened["state"] == "reported" and reopened["worker"] is None
        chain = _chain(conn, incident["id"])
        assert chain == incidents_db.units_covering(conn, LON, LAT)
        assert all(_current(conn, unit) for unit in chain.values() if unit is not None)
        assert chain["grid"] != old["grid"] and reopened["grid"]["id"] == chain["grid"]
        event = reopened["events"][-1]
        assert (event["from"], event["to"]) == ("duplicate", "reported")
        assert event["data"]["from"]["grid"] == old["grid"] and event["data"]["to"]["grid"] == chain["grid"]
        assert set(event["data"]["from"]) == set(event["data"]["to"])
        assert all(old[lv] != chain[lv] for lv in event["data"]["from"])
        audited = conn.execute("SELECT after FROM audit_log WHERE action = 'incident.transition' "
                               "ORDER BY id DESC LIMIT 1").fetchone()[0]
        assert audited["state"] == "reported" and audited["to"]["grid"] == chain["grid"]


def test_a_reopened_incident_goes_to_its_new_grids_worker(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        duplicate = _move(conn, _report(conn), "duplicate")
        resolved = _report(conn)
        community = units.resolve(conn, COMMUNITY)
        boss = staff.add_worker(conn, "社区工作者", "community_worker", community)
        resolved = _move(conn, resolved, "assigned", worker_id=boss["id"])
        resolved = _move(conn, _move(conn, resolved, "in_progress"), "resolved")
        _redraw(conn)
        grid = incidents_db.units_covering(conn, LON, LAT)["grid"]
        assert grid is not None
        worker = staff.add_worker(conn, "网格员", "grid_worker", grid)

        # rejected/duplicate → reported: dispatched to the new grid's worker, as intake would
        reopened = _move(conn, duplicate, "reported")
        assert reopened["state"] == "assigned" and reopened["worker"]["id"] == worker["id"]
        assert reopened["handled_at_level"] == "grid" and reopened["grid"]["id"] == grid
        assert [(e["from"], e["to"]) for e in reopened["events"][-2:]] == [("duplicate", "reported"),
                                                                           ("reported", "assigned")]
        assert reopened["events"][-2]["data"]["to"]["grid"] == grid

        # resolved → assigned without a worker: the new grid's worker
        reopened = _move(conn, resolved, "assigned")
        assert reopened["worker"]["id"] == worker["id"] and reopened["grid"]["id"] == grid
        assert reopened["events"][-1]["data"]["to"]["grid"] == grid
