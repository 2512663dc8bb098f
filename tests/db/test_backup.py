"""`gridmap backup` and `gridmap restore` against a real PostGIS: a database with a committed
plan, a draft plan and incidents with their events goes out to a file and comes back exactly
(every table's rows, the sequences, the schema), the app serves what came back, and a restore
refuses what it should."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from psycopg import sql

from geo.db import backup, units
from geo.db.incidents import insert_generated
from geo.db.migrations import available
from geo.incidents import sample as incident_sample
from geo.usecases import incidents, plans
from tests.conftest import run_cli


def _split_oversized(conn, nth: int) -> tuple[dict, tuple[float, float]]:
    """Draw and commit a split of the nth oversized community; a point inside it."""
    community, lon, lat = conn.execute(
        "SELECT unit_id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM unit_version "
        "WHERE valid_to IS NULL AND level = 'community' AND households > 3000 ORDER BY code OFFSET %s LIMIT 1",
        [nth]).fetchone()
    plan = plans.draw_split(conn, community, "grid", seed=0)
    return plans.commit_plan(conn, plan["id"]), (lon, lat)


@pytest.fixture
def busy_url(sample_url) -> str:
    """The sample district with incidents (some moved along their lifecycle), a committed split
    (which re-assigned open incidents, with events) and a draft merge plan."""
    with psycopg.connect(sample_url, autocommit=True) as conn:
        index = units.locator(conn)
        now = datetime.now(UTC)
        columns = incident_sample.generate(index, 400, now - timedelta(days=30), now, seed=3)
        with conn.transaction():
            insert_generated(conn, index, columns)
        for incident_id, version in conn.execute(
                "SELECT id, version FROM incident WHERE state IN ('reported', 'assigned') "
                "ORDER BY id LIMIT 20").fetchall():
            incidents.transition(conn, incident_id, "rejected", expected_version=version, actor="test",
                                 note="重复上报")
        _split_oversized(conn, 0)
        plans.draw_merge(conn, "community")
    return sample_url


def fingerprint(url: str) -> dict:
    """Every table's row count and a checksum of its rows in order, every sequence's position, and
    the schema's indexes, constraints and triggers."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = {}
        for table in backup.user_tables(conn):
            name = sql.SQL(table)  # user_tables quotes what needs it
            found[table] = conn.execute(sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t"
            ).format(name)).fetchone()
        for (seq,) in conn.execute("SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences"):
            found[seq] = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(seq))).fetchone()
        found["schema"] = conn.execute(
            "SELECT array_agg(d ORDER BY d) FROM ("
            " SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public'"
            " UNION ALL SELECT conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint"
            "  WHERE connamespace = 'public'::regnamespace"
            " UNION ALL SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal) s"
        ).fetchone()[0]
        return found


def _restored_name(databases) -> str:
    """A database name for a restore, dropped with the test databases."""
    name = f"gridmap_test_restored_{uuid.uuid4().hex[:8]}"
    databases.made.append(name)
    return name


def test_round_trip_gives_back_every_row(busy_url, databases, start_server, tmp_path):
    file = tmp_path / "district.dump"
    out = run_cli("backup", "-o", str(file), env={"DATABASE_URL": busy_url})
    assert out.returncode == 0, out.stderr
    assert "dumping tables" in out.stderr and f"wrote {file}" in out.stderr
    assert file.stat().st_size > 100_000 and not list(tmp_path.glob("*.partial"))
    target = _restored_name(databases)
    out = run_cli("restore", str(file), "--into", target, env={"DATABASE_URL": busy_url})
    assert out.returncode == 0, out.stderr
    assert f"into database {target}" in out.stderr and "restoring tables" in out.stderr
    assert "run `gridmap migrate`" not in out.stderr
    restored_url = databases.url(target)

    source, copy = fingerprint(busy_url), fingerprint(restored_url)
    assert set(source) == set(copy)
    # every row comes back but the boundary history's: a restored database starts a history of
    # its own, past the backup's generation, so no point-index snapshot of the source is taken for it
    source.pop("public.boundary_generation")
    copy.pop("public.boundary_generation")
    assert {t for t in source if source[t] != copy[t]} == set()
    with psycopg.connect(busy_url) as a, psycopg.connect(restored_url) as b:
        was = a.execute("SELECT epoch, generation FROM boundary_generation").fetchone()
        now = b.execute("SELECT epoch, generation, complete_from FROM boundary_generation").fetchone()
    assert now[0] != was[0] and now[1] > was[1] and now[2] == now[1]
    for table in ("public.unit_version", "public.unit_lineage", "public.incident", "public.incident_event",
                  "public.plan", "public.plan_unit", "public.schema_migration", "public.change_set"):
        assert source[table][0] > 0, table  # the comparison covered rows, not empty tables

    with psycopg.connect(restored_url, autocommit=True) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM schema_migration ORDER BY name")] == \
            [name for name, _ in available()]
        committed, retired, moved_incident, incident_max = conn.execute(
            "SELECT (SELECT id FROM plan WHERE status = 'committed'), "
            "(SELECT from_unit_id FROM unit_lineage ORDER BY change_id, from_unit_id LIMIT 1), "
            "(SELECT incident_id FROM incident_event WHERE actor = 'test' ORDER BY id LIMIT 1), "
            "(SELECT max(id) FROM incident)").fetchone()
        grid, lon, lat = conn.execute(
            "SELECT unit_id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM unit_version "
            "WHERE valid_to IS NULL AND level = 'grid' ORDER BY code LIMIT 1").fetchone()

    base = start_server(restored_url)
    with httpx.Client(base_url=base, timeout=60) as http:
        health = http.get("/health").json()
        assert health["migrations"] == [name for name, _ in available()]
        with psycopg.connect(busy_url) as conn:
            assert health["units"] == units.count_units(conn)
        assert http.get(f"/plans/{committed}").json()["status"] == "committed"
        assert http.get(f"/units/{retired}/lineage").json()["to"]
        history = http.get(f"/incidents/{moved_incident}").json()
        assert [e["to"] for e in history["events"]][-1] == "rejected"
        # the sequences came back too: a new report gets the next id
        created = http.post("/incidents", json={"category": "manhole", "lon": lon, "lat": lat, "channel": "rider",
                                                "description": "恢复后的第一条"})
        assert created.status_code == 201 and created.json()["id"] == incident_max + 1
        assert http.get(f"/locate?lon={lon}&lat={lat}").json()["grid"]["id"] == grid


def test_restore_over_a_database_an_app_serves(busy_url, start_server, tmp_path):
    """--force replaces a live database: the app (not restarted) serves the restored boundaries,
    and its /locate index does not survive as if it were newer."""
    saved = backup.backup(busy_url, tmp_path / "before.dump")
    before = fingerprint(busy_url)
    with psycopg.connect(busy_url, autocommit=True) as conn:
        _, (lon, lat) = _split_oversized(conn, 1)  # a change after the backup
        old_grid = conn.execute(
            "SELECT v.unit_id FROM unit_version v WHERE v.level = 'grid' AND v.valid_to IS NOT NULL "
            "AND ST_Covers(v.geom, ST_SetSRID(ST_Point(%s, %s), 4326)) ORDER BY v.valid_to DESC LIMIT 1",
            [lon, lat]).fetchone()[0]
    base = start_server(busy_url)
    new_grid = httpx.get(f"{base}/locate?lon={lon}&lat={lat}").json()["grid"]["id"]
    assert new_grid != old_grid

    refused = run_cli("restore", saved["file"], env={"DATABASE_URL": busy_url})
    assert refused.returncode == 2 and "is not empty" in refused.stderr and "--force" in refused.stderr
    out = run_cli("restore", saved["file"], "--force", env={"DATABASE_URL": busy_url})
    assert out.returncode == 0, out.stderr
    assert "replacing what it held" in out.stderr

    after = fingerprint(busy_url)
    generation = "public.boundary_generation"
    assert {t for t in before if before[t] != after[t]} == {generation}  # moved on, nothing else differs
    with httpx.Client(base_url=base, timeout=60) as http:
        deadline = time.monotonic() + 20  # the restore cut the app's connections: it reconnects
        while True:
            r = http.get(f"/locate?lon={lon}&lat={lat}")
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            assert r.status_code == 503 and r.headers["retry-after"], r.text
            time.sleep(0.25)
        assert r.status_code == 200 and r.json()["grid"]["id"] == old_grid
        assert http.get("/health").status_code == 200


def test_restore_refuses_what_it_should(busy_url, databases, tmp_path):
    env = {"DATABASE_URL": busy_url}
    units = fingerprint(busy_url)["public.unit_version"]

    missing = run_cli("restore", str(tmp_path / "nope.dump"), env=env)
    assert missing.returncode == 2 and "no backup file" in missing.stderr

    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(b"PGDMP but not really" * 10)
    bad = run_cli("restore", str(garbage), "--into", _restored_name(databases), env=env)
    assert bad.returncode == 2 and "is not a backup pg_restore can read" in bad.stderr, bad.stderr

    # a real pg_dump file, of something that is not gridmap
    other = databases.create(prefix="gridmap_test_other")
    with psycopg.connect(databases.url(other), autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, text text)")
        conn.execute("INSERT INTO notes VALUES (1, 'hello')")
    not_ours = run_cli("backup", "-o", str(tmp_path / "other.dump"), env={"DATABASE_URL": databases.url(other)})
    assert not_ours.returncode == 2 and "not a gridmap database" in not_ours.stderr
    with psycopg.connect(busy_url) as conn:
        pg_dump = backup.find_tool("pg_dump", backup._server_major(conn))
    dumped = tmp_path / "other.dump"
    subprocess.run([str(pg_dump), "--format=custom", f"--file={dumped}", f"--dbname={databases.url(other)}"],
                   check=True)
    foreign = run_cli("restore", str(dumped), "--into", _restored_name(databases), env=env)
    assert foreign.returncode == 2 and "not of a gridmap database" in foreign.stderr, foreign.stderr

    # restoring over a database holding data needs --force; it is left as it was
    file = tmp_path / "good.dump"
    assert run_cli("backup", "-o", str(file), env=env).returncode == 0
    over = run_cli("restore", str(file), env=env)
    assert over.returncode == 2 and "is not empty" in over.stderr and "units" in over.stderr
    assert fingerprint(busy_url)["public.unit_version"] == units

    # no pg_dump where it is looked for: say what to install
    gone = run_cli("backup", "-o", str(tmp_path / "x.dump"), env={**env, "GRIDMAP_PG_BIN": str(tmp_path)})
    assert gone.returncode == 2 and "apt-get install -y postgresql-client-" in gone.stderr
    assert not (tmp_path / "x.dump").exists()
