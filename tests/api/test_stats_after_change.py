"""/stats after boundaries change (issue 13, item 8), over the real app and the sample district
with generated incidents: a committed plan redraws the grids of one community (retiring them,
some codes reused by the new grids) and another splits a community in two. Closed incidents
keep the units they were handled in, so the retired units still hold incidents.

By default each current unit has one row, the incidents of retired units counted in the
current units they became (after a split, in the one holding each incident's point now);
`retired=separate` lists retired units apart, marked. Every current unit has a row, and the
window defaults to the last 30 days."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from geo.db import units
from geo.db.incidents import insert_generated
from geo.incidents import sample as incident_sample
from geo.usecases import plans
from tests.conftest import launch_server, stop_server

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=45)  # a batch of reports outside the default window


@pytest.fixture(scope="module")
def changed(databases, sample_template):
    """(base URL, database URL, the redrawn community, the split community)."""
    url = databases.url(databases.create(template=sample_template))
    with psycopg.connect(url, autocommit=True) as conn:
        locator = units.locator(conn)
        with conn.transaction():
            insert_generated(conn, locator, incident_sample.generate(locator, 4000, NOW - timedelta(days=20), NOW))
            insert_generated(conn, locator, incident_sample.generate(locator, 300, OLD - timedelta(days=2), OLD,
                                                                    seed=2))
        big = [r[0] for r in conn.execute(
            "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'community' "
            "ORDER BY households DESC LIMIT 2")]
        plans.commit_plan(conn, plans.draw_split(conn, big[0], "grid", seed=0)["id"])
        plans.commit_plan(conn, plans.draw_split(conn, big[1], "community", parts=2, seed=0)["id"])
    proc, base = launch_server(url)
    yield base, url, big[0], big[1]
    stop_server(proc)


@pytest.fixture
def client(changed):
    with httpx.Client(base_url=changed[0], timeout=120) as http:
        yield http


def _expected(url: str, level: str, start: datetime, end: datetime) -> dict[int, int]:
    """Incidents per current unit, counted independently of lineage: an incident in a current
    unit counts there, one in a retired unit counts in the current unit holding its point."""
    col = f"{level}_id"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"""
            SELECT CASE WHEN EXISTS (SELECT 1 FROM unit_version c WHERE c.unit_id = i.{col} AND c.valid_to IS NULL)
                        THEN i.{col}
                        ELSE (SELECT v.unit_id FROM unit_version v WHERE v.valid_to IS NULL AND v.level = %s
                              AND ST_Covers(v.geom, i.geom) ORDER BY v.code LIMIT 1) END, count(*)
            FROM incident i WHERE i.{col} IS NOT NULL AND i.reported_at >= %s AND i.reported_at < %s
            GROUP BY 1
            """, [level, start, end]).fetchall()
    return dict(rows)


def _current(url: str, level: str) -> set[int]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = %s", [level])}


def _retired_with_incidents(url: str, level: str) -> dict[int, int]:
    col = f"{level}_id"
    with psycopg.connect(url) as conn:
        return dict(conn.execute(
            f"SELECT i.{col}, count(*) FROM incident i WHERE i.reported_at >= %s AND NOT EXISTS "
            f"(SELECT 1 FROM unit_version c WHERE c.unit_id = i.{col} AND c.valid_to IS NULL) "
            f"AND i.{col} IS NOT NULL GROUP BY 1", [NOW - timedelta(days=30)]).fetchall())


@pytest.mark.parametrize("level", ["grid", "community"])
def test_retired_units_roll_up_into_their_successors_one_row_per_current_unit(changed, client, level):
    _, url, _, _ = changed
    retired = _retired_with_incidents(url, level)
    assert retired, "the change left no incidents in retired units: nothing to roll up"
    window = {"from": (NOW - timedelta(days=30)).isoformat(), "to": (NOW + timedelta(minutes=1)).isoformat()}
    answer = client.get("/stats", params={"level": level, **window})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["retired"] == "rollup"
    rows = body["units"]
    # one row per current unit: no code twice, no retired unit, none left out
    assert [c for c, n in Counter(u["code"] for u in rows).items() if n > 1] == []
    assert {u["unit_id"] for u in rows} == _current(url, level)
    assert not any(u["retired"] for u in rows)
    # each incident counted once, in the current unit holding it
    got = {u["unit_id"]: u["total"] for u in rows if u["total"]}
    expected = _expected(url, level, datetime.fromisoformat(window["from"]), datetime.fromisoformat(window["to"]))
    assert got == expected
    # a row says which retired units it took in, and how many of their incidents
    taken: Counter = Counter()
    for u in rows:
        for source in u["rolled_up_from"]:
            assert source["retired_at"] is not None and source["code"]
            taken[source["unit_id"]] += source["total"]
        assert sum(u["by_state"].values()) == sum(u["by_category"].values()) == u["total"]
    assert dict(taken) == retired


def test_a_split_unit_is_apportioned_by_where_each_incident_lies(changed, client):
    """The community split in two: its closed incidents go to both halves, each by its point."""
    _, url, _, split = changed
    with psycopg.connect(url) as conn:
        halves = dict(conn.execute(
            "SELECT v.unit_id, count(i.id) FROM unit_lineage l "
            "JOIN unit_version v ON v.unit_id = l.to_unit_id AND v.valid_to IS NULL "
            "LEFT JOIN incident i ON i.community_id = %s AND i.reported_at >= %s AND ST_Covers(v.geom, i.geom) "
            "WHERE l.from_unit_id = %s GROUP BY 1", [split, NOW - timedelta(days=30), split]).fetchall())
    assert len(halves) == 2 and all(halves.values())
    rows = {u["unit_id"]: u for u in client.get("/stats", params={"level": "community"}).json()["units"]}
    assert split not in rows
    assert {uid: next(s["total"] for s in rows[uid]["rolled_up_from"] if s["unit_id"] == split)
            for uid in halves} == halves


def test_separate_lists_retired_units_apart_and_marked(changed, client):
    _, url, redrawn, _ = changed
    retired = _retired_with_incidents(url, "grid")
    body = client.get("/stats", params={"level": "grid", "retired": "separate"}).json()
    assert body["retired"] == "separate"
    rows = body["units"]
    apart = {u["unit_id"]: u for u in rows if u["retired"]}
    assert {uid: u["total"] for uid, u in apart.items()} == retired
    with psycopg.connect(url) as conn:
        ended = dict(conn.execute("SELECT unit_id, max(valid_to) FROM unit_version WHERE unit_id = ANY(%s) "
                                  "GROUP BY 1", [list(apart)]).fetchall())
    assert {uid: datetime.fromisoformat(u["retired_at"]) for uid, u in apart.items()} == ended
    assert all(u["retired_at"] is None and u["rolled_up_from"] == [] for u in rows if not u["retired"])
    # the symptom: one code on two rows with no sign which one is retired
    for code, n in Counter(u["code"] for u in rows).items():
        if n > 1:
            assert sum(not u["retired"] for u in rows if u["code"] == code) == 1, code
    assert {u["unit_id"] for u in rows if not u["retired"]} == _current(url, "grid")
    # nothing counted twice or lost either way
    rolled = client.get("/stats", params={"level": "grid"}).json()["units"]
    assert sum(u["total"] for u in rows) == sum(u["total"] for u in rolled)


def test_every_current_unit_has_a_row_even_without_incidents(changed, client):
    _, url, _, _ = changed
    window = {"from": "2001-01-01T00:00:00+08:00", "to": "2001-02-01T00:00:00+08:00"}  # before any incident
    for level in ("street", "community", "grid", "compound", "neighbourhood"):
        body = client.get("/stats", params={"level": level, **window}).json()
        assert {u["unit_id"] for u in body["units"]} == _current(url, level), level
        assert all(u["total"] == 0 and u["by_state"] == {} and u["resolution_rate"] is None
                   and u["median_hours_to_resolve"] is None and u["code"] for u in body["units"])


def test_from_and_to_default_to_the_last_30_days(changed, client):
    _, url, _, _ = changed
    before = datetime.now(UTC)
    body = client.get("/stats", params={"level": "street"}).json()
    start, end = datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])
    assert before <= end <= datetime.now(UTC) and end - start == timedelta(days=30)
    recent = sum(_expected(url, "street", start, end).values())
    assert sum(u["total"] for u in body["units"]) == recent
    # the reports of 45 days ago are outside it, and inside a window that asks for them
    older = client.get("/stats", params={"level": "street", "to": (OLD + timedelta(days=1)).isoformat()}).json()
    assert datetime.fromisoformat(older["to"]) - datetime.fromisoformat(older["from"]) == timedelta(days=30)
    assert sum(u["total"] for u in older["units"]) > 0
    since = client.get("/stats", params={"level": "street", "from": (OLD - timedelta(days=3)).isoformat()}).json()
    assert sum(u["total"] for u in since["units"]) == recent + sum(u["total"] for u in older["units"])
    assert client.get("/stats", params={"retired": "hide"}).status_code == 422
