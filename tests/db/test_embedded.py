"""The embedded cluster starts, stops and restarts with its data kept."""

import os
import shutil
import uuid

import psycopg
import pytest

from tests.conftest import ROOT, free_port, run_cli


@pytest.fixture
def cluster_env():
    if os.environ.get("CI_SKIP_EMBEDDED"):
        pytest.skip("CI_SKIP_EMBEDDED set")
    home = ROOT / ".gridmap" / f"test-cluster-{uuid.uuid4().hex[:8]}"
    env = {"GRIDMAP_HOME": str(home), "GRIDMAP_PG_PORT": str(free_port()), "DATABASE_URL": ""}
    yield env
    run_cli("db", "stop", env=env)
    shutil.rmtree(home, ignore_errors=True)


def test_cluster_starts_stops_and_restarts_with_data_kept(cluster_env):
    status = run_cli("db", "status", env=cluster_env)
    assert status.returncode == 1 and "not initialised" in status.stdout

    started = run_cli("db", "start", env=cluster_env)
    assert started.returncode == 0, started.stderr
    url = run_cli("db", "url", env=cluster_env).stdout.strip()
    assert url == f"postgresql://gridmap@127.0.0.1:{cluster_env['GRIDMAP_PG_PORT']}/gridmap"
    assert run_cli("db", "status", env=cluster_env).stdout.startswith("running on 127.0.0.1:")

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3")
        conn.execute("CREATE TABLE kept (name text)")
        conn.execute("INSERT INTO kept VALUES ('积玉桥社区')")

    stopped = run_cli("db", "stop", env=cluster_env)
    assert stopped.returncode == 0, stopped.stderr
    status = run_cli("db", "status", env=cluster_env)
    assert status.returncode == 1 and status.stdout.startswith("stopped")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)

    assert run_cli("db", "start", env=cluster_env).returncode == 0
    assert run_cli("db", "start", env=cluster_env).returncode == 0  # starting a running cluster is fine
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT name FROM kept").fetchall() == [("积玉桥社区",)]


def test_migrate_and_init_on_a_new_cluster_load_the_sample_once(cluster_env):
    assert run_cli("db", "start", env=cluster_env).returncode == 0
    first = run_cli("init", env=cluster_env)
    assert first.returncode == 0, first.stderr
    assert "loaded sample district" in first.stderr
    second = run_cli("init", env=cluster_env)
    assert second.returncode == 0, second.stderr
    assert "database holds units" in second.stderr
    url = run_cli("db", "url", env=cluster_env).stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM change_set").fetchone()[0] == 1
        assert conn.execute(
            "SELECT count(*) FROM unit_version WHERE level = 'grid'").fetchone()[0] > 250
        # the demo's staff: every grid and community has its worker, and incidents went to them
        unstaffed = conn.execute(
            "SELECT count(*) FROM unit_version v WHERE v.valid_to IS NULL AND v.level IN ('grid', 'community') "
            "AND NOT EXISTS (SELECT 1 FROM worker w WHERE w.unit_id = v.unit_id AND w.active)").fetchone()[0]
        handled = conn.execute("SELECT count(*) FROM incident WHERE worker_id IS NOT NULL").fetchone()[0]
        assert unstaffed == 0 and handled > 1000
