"""Incidents partitioned by month with the district code in their keys (migration 0009).

Against a real PostGIS: reports are filed in the partition of their Beijing month, under
the district of the place they were made; a month without a partition keeps its reports in
incident_default until it is made; the migration from 0008 keeps every incident, event and
external id; the keys hold what a later move to Citus needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.db import incident_months
from geo.db import incidents as incidents_db
from geo.db.migrations import available, migrate
from geo.incidents.lifecycle import Report
from geo.security.identity import as_identity
from geo.units.codes import NO_DISTRICT, district_of
from geo.usecases import incidents
from geo.usecases import units as imports
from tests.conftest import ROOT

BEIJING = ZoneInfo("Asia/Shanghai")
LON, LAT = 114.3049, 30.5560  # in the sample's community 420199002011
OUTSIDE = (114.05, 30.30)  # inside the city's bounds, outside every unit of the sample


def _report(conn: psycopg.Connection, when: datetime | None = None, where: tuple[float, float] = (LON, LAT),
            external_id: str | None = None) -> tuple[dict, bool]:
    with conn.transaction():
        return incidents.report_incident(conn, Report("garbage", *where, reported_at=when, external_id=external_id),
                                         incidents.locator_on(conn))


def _filed(conn: psycopg.Connection, incident_id: int) -> tuple[str, str]:
    """The partition an incident lies in, and its district."""
    part, district = conn.execute("SELECT tableoid::regclass::text, district FROM incident WHERE id = %s",
                                  [incident_id]).fetchone()
    return part, district


@pytest.fixture
def history_url(db_url):
    """The sample district, its boundaries in force for six years (old reports find their units)."""
    imports.load_district(imports.SAMPLE_PATH, url=db_url, valid_from=datetime.now(UTC) - timedelta(days=6 * 366))
    return db_url


def test_a_report_is_filed_in_its_beijing_month_under_its_district(history_url):
    with psycopg.connect(history_url) as conn:
        now = datetime.now(BEIJING)
        made, _ = _report(conn)
        part, district = _filed(conn, made["id"])
        assert (part, district) == (f"incident_{now:%Y_%m}", "420199")
        # 23:30 on the last evening of a month, Beijing time, is still that month (15:30 UTC)
        first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        evening = first - timedelta(minutes=30)
        late, _ = _report(conn, evening)
        assert _filed(conn, late["id"]) == (f"incident_{evening:%Y_%m}", "420199")
        outside, _ = _report(conn, where=OUTSIDE)
        assert outside["unassigned"] and _filed(conn, outside["id"]) == (f"incident_{now:%Y_%m}", NO_DISTRICT)
        # its events carry its keys: the reference holds, the history reads back
        keys = conn.execute("SELECT DISTINCT district, incident_reported_at FROM incident_event "
                            "WHERE incident_id = %s", [late["id"]]).fetchall()
        assert keys == [("420199", late["reported_at"])]
        assert [e["to"] for e in incidents_db.get(conn, late["id"], viewer=as_identity("test"))["events"]] == \
            [e["to"] for e in late["events"]] and late["events"]


def test_a_month_without_a_partition_waits_in_the_default_until_it_is_made(history_url):
    with psycopg.connect(history_url) as conn:
        old = datetime(2022, 3, 15, 10, 0, tzinfo=BEIJING)
        first, _ = _report(conn, old, external_id="12345-old")
        second, _ = _report(conn, old + timedelta(days=3))
        assert _filed(conn, first["id"]) == ("incident_default", "420199")
        with conn.transaction():
            moved = incidents.transition(conn, first["id"], "rejected", expected_version=first["version"],
                                         actor="调度员", note="not ours")
        assert conn.execute("SELECT count(*) FROM incident_default").fetchone()[0] == 2

        with conn.transaction():
            assert incident_months.make(conn, date(2022, 3, 1)) == "incident_2022_03"
        with conn.transaction():
            assert incident_months.make(conn, date(2022, 3, 1)) is None  # made once
        assert _filed(conn, first["id"]) == ("incident_2022_03", "420199")
        assert _filed(conn, second["id"]) == ("incident_2022_03", "420199")
        assert conn.execute("SELECT count(*) FROM incident_default").fetchone()[0] == 0
        # nothing lost on the way: history, references (made again and checked), the external id
        again = incidents_db.get(conn, first["id"], viewer=as_identity("test"))
        assert [e["to"] for e in again["events"]] == [e["to"] for e in moved["events"]]
        names = {r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE conrelid IN "
                                            "('incident_event'::regclass, 'incident_external_id'::regclass) "
                                            "AND contype = 'f' AND conparentid = 0")}
        assert names == {"incident_event_incident", "incident_external_id_incident"}
        duplicate, created = _report(conn, old, external_id="12345-old")
        assert not created and duplicate["id"] == first["id"]
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            with conn.transaction():
                conn.execute("DELETE FROM incident WHERE id = %s", [second["id"]])


def test_the_same_external_id_sent_at_once_from_eight_places_is_stored_once(history_url):
    barrier = threading.Barrier(8)
    results: list[tuple[int, bool]] = []

    def send() -> None:
        with psycopg.connect(history_url) as conn:
            barrier.wait()
            made, created = _report(conn, external_id="12345-race")
            results.append((made["id"], created))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len({i for i, _ in results}) == 1 and sum(c for _, c in results) == 1
    with psycopg.connect(history_url) as conn:
        assert conn.execute("SELECT count(*) FROM incident WHERE external_id = '12345-race'").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM incident_external_id").fetchone()[0] == 1


def test_keeping_months_makes_last_month_this_month_and_three_ahead_once(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        incident_months.keep(conn)  # the template's months may be older than today's
        assert incident_months.keep(conn) == []
        names = [r["name"] for r in incident_months.listing(conn)]
        this = datetime.now(BEIJING).replace(day=1)
        for n in range(-1, incident_months.KEEP_AHEAD + 1):
            month = date(this.year + (this.month - 1 + n) // 12, (this.month - 1 + n) % 12 + 1, 1)
            assert f"incident_{month:%Y_%m}" in names
        assert names[-1] == "incident_default"
        with pytest.raises(Exception, match="outside 2000-01"):
            incident_months.make(conn, date(1999, 12, 1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seconds=st.integers(min_value=0, max_value=10 * 366 * 86400))
def test_every_report_lies_in_the_partition_of_its_beijing_month(db_url, seconds):
    """For any time in the ten years a report may be dated, once its month is made the report
    lies in that month's partition, whatever the hour at the month's edge."""
    when = datetime.now(UTC) - timedelta(seconds=seconds)
    local = when.astimezone(BEIJING)
    with psycopg.connect(db_url) as conn:
        with conn.transaction():
            incident_months.make(conn, local.date().replace(day=1))
        fields = {"district": "420199", "category": "garbage", "reported_at": when, "channel": "app",
                  "input_lon": LON, "input_lat": LAT, "input_crs": "EPSG:4326", "state": "reported",
                  "unassigned": True, "deadline": when + timedelta(hours=24)}
        with conn.transaction():
            made = incidents_db.insert(conn, fields, LON, LAT)
        assert _filed(conn, made)[0] == f"incident_{local:%Y_%m}"


def test_district_of_a_chain():
    assert district_of({"street": "420106011000", "community": "420106011003"}) == "420106"
    assert district_of({"street": None, "community": None, "grid": "500112003002001"}) == "500112"
    assert district_of({"street": None, "community": None, "grid": None}) == NO_DISTRICT
    assert district_of({}) == NO_DISTRICT


def _migrate_until(conn: psycopg.Connection, last: str) -> None:
    conn.execute("CREATE TABLE schema_migration (name text PRIMARY KEY, applied_at timestamptz NOT NULL "
                 "DEFAULT now())")
    for name, sql in available():
        if name > last:
            break
        conn.execute(sql)
        conn.execute("INSERT INTO schema_migration (name) VALUES (%s)", [name])
    conn.commit()


def test_migration_0009_keeps_every_incident_event_and_external_id(databases):
    """A database at 0008 with incidents of several months, some outside every unit and one
    with an external id, is partitioned: every row comes through with its district, and new
    reports continue its numbering."""
    url = databases.url(databases.create())
    with psycopg.connect(url) as conn:
        _migrate_until(conn, "0008_unit_changes")
    imports.load_district(imports.SAMPLE_PATH, url=url, valid_from=datetime(2020, 1, 1, tzinfo=UTC))
    with psycopg.connect(url) as conn:
        grid, street = conn.execute(
            "SELECT unit_id, street_id FROM unit_version WHERE level = 'grid' AND valid_to IS NULL "
            "ORDER BY code LIMIT 1").fetchone()
        rows = [("2021-05-31T16:30:00+00", grid, street, "A-1"),  # 00:30 on 1 June in Beijing
                ("2024-01-10T08:00:00+08", grid, street, None),
                ("2024-01-20T08:00:00+08", None, None, None)]  # outside every unit
        for when, g, s, external in rows:
            incident = conn.execute(
                "INSERT INTO incident (external_id, category, reported_at, channel, input_lon, input_lat, input_crs, "
                "geom, state, street_id, grid_id, unassigned, deadline) VALUES (%s, 'garbage', %s, 'app', 114.3, "
                "30.5, 'EPSG:4326', ST_SetSRID(ST_Point(114.3, 30.5), 4326), 'reported', %s, %s, %s, "
                "%s::timestamptz + interval '1 day') RETURNING id", [external, when, s, g, g is None, when]
            ).fetchone()[0]
            for state in ("reported", "assigned"):
                conn.execute("INSERT INTO incident_event (incident_id, actor, to_state) VALUES (%s, 'test', %s)",
                             [incident, state])
        before = conn.execute("SELECT id, reported_at, external_id FROM incident ORDER BY id").fetchall()
        events = conn.execute("SELECT id, incident_id, to_state FROM incident_event ORDER BY id").fetchall()
        conn.commit()
        assert migrate(conn)[0] == "0009_incident_months"
        after = conn.execute("SELECT id, reported_at, external_id, district, tableoid::regclass::text "
                             "FROM incident ORDER BY id").fetchall()
        assert [r[:3] for r in after] == before
        assert [(r[3], r[4]) for r in after] == [("420199", "incident_2021_06"), ("420199", "incident_2024_01"),
                                                 (NO_DISTRICT, "incident_2024_01")]
        assert conn.execute("SELECT id, incident_id, to_state FROM incident_event ORDER BY id").fetchall() == events
        assert conn.execute("SELECT external_id, incident_id FROM incident_external_id").fetchall() == \
            [("A-1", before[0][0])]
        assert conn.execute("SELECT to_regclass('incident_0008'), to_regclass('incident_event_0008')").fetchone() == \
            (None, None)
        pk = conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'incident_pkey'"
                          ).fetchone()[0]
        assert pk == "PRIMARY KEY (id, district, reported_at)"
        conn.commit()
        made, _ = _report(conn)
        assert made["id"] > before[-1][0]


def test_the_months_command_lists_makes_and_refuses_a_bad_month(history_url):
    with psycopg.connect(history_url) as conn:
        _report(conn, datetime(2023, 7, 2, 9, 0, tzinfo=BEIJING))
    run = [sys.executable, "-m", "cli", "incidents", "months"]
    env = {**os.environ, "COLUMNS": "200"}

    def months(*args: str) -> tuple[int, str]:
        done = subprocess.run([*run, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
        return done.returncode, done.stdout + done.stderr

    code, out = months()
    assert code == 0 and "incident_default" in out and "1 report(s) wait in incident_default" in out, out
    code, out = months("--make", "2023-07")
    assert code == 0 and "made incident_2023_07" in out and "wait in incident_default" not in out, out
    code, out = months("--make", "2023-13")
    assert code == 2 and "YYYY-MM" in out, out


def test_generated_incidents_of_past_months_get_their_months_first(sample_url):
    """A demo's incidents from 200 days back (what `gridmap init` and `incidents sample` store)
    land in their own months, none waiting in incident_default."""
    with psycopg.connect(sample_url) as conn:
        end = datetime.now(UTC)
        stored = incidents.generate_sample(conn, 400, end - timedelta(days=200), end, "test")
        conn.commit()
        assert stored == 400
        assert conn.execute("SELECT count(*) FROM incident_default").fetchone()[0] == 0
        months = {r[0] for r in conn.execute("SELECT DISTINCT tableoid::regclass::text FROM incident")}
        assert len(months) >= 7 and all(m.startswith("incident_20") for m in months)
        listed = {r["month"]: r for r in incident_months.listing(conn)}
        assert listed["other months"]["reports"] == 0
        assert f"{(end - timedelta(days=200)).astimezone(BEIJING):%Y-%m}" in listed
