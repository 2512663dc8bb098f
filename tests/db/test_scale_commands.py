"""The commands issue 14 added, used wrongly or on nothing: each says what is wrong and what to
do, with exit status 2, and changes nothing."""

from __future__ import annotations

from tests.conftest import run_cli


def test_promoting_a_replica_that_is_not_there_says_so(tmp_path):
    out = run_cli("db", "replica", "promote", env={"GRIDMAP_HOME": str(tmp_path)})
    assert out.returncode == 2
    assert "is not a standby: nothing to promote" in out.stderr
    assert not (tmp_path / "replica" / "pg").exists() or not any((tmp_path / "replica" / "pg").iterdir())


def test_nginx_config_needs_an_app_instance(tmp_path):
    out = run_cli("nginx-config", "-o", str(tmp_path / "n.conf"))
    assert out.returncode == 2 and "--app" in out.stderr
    assert not (tmp_path / "n.conf").exists()


def test_index_status_and_build_on_a_database(sample_url, tmp_path):
    env = {"DATABASE_URL": sample_url, "GRIDMAP_INDEX_DIR": str(tmp_path)}
    before = run_cli("index", "status", env=env)
    assert before.returncode == 0, before.stderr
    assert "none yet" in before.stdout
    built = run_cli("index", "build", env=env)
    assert built.returncode == 0, built.stderr
    after = run_cli("index", "status", env=env)
    assert "0 generations behind, usable" in after.stdout


def test_index_status_without_a_database_says_what_to_do():
    out = run_cli("index", "status", env={"DATABASE_URL": "postgresql://gridmap@127.0.0.1:1/none"})
    assert out.returncode == 2 and "cannot connect to the database" in out.stderr
