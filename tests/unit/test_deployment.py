"""The deployment files say what the docs say (issue 14): the image has pg_dump, makes the schema
without the sample unless asked, waits for the database and restarts on failure; the scaled
profile is a primary, a streaming replica made by pg_basebackup -R, two app instances reading
what may lag from the replica, and nginx configured by `gridmap nginx-config` with the same
arguments as here (the layout tests/api/test_scaled_layout.py starts without Docker)."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from cli import app

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_image_has_pg_dump_makes_no_sample_unless_asked_and_waits_for_the_database():
    text = (ROOT / "Dockerfile").read_text()
    assert "postgresql-client-15" in text
    assert "GRIDMAP_INIT_ARGS=--no-sample" in text
    cmd = text[text.index("CMD"):]
    assert "gridmap init --wait 60 $GRIDMAP_INIT_ARGS" in cmd and "exec gridmap serve --host 0.0.0.0" in cmd
    assert "--wait" in CliRunner().invoke(app, ["init", "--help"], env={"COLUMNS": "200"}).output


def test_the_scaled_profile_is_a_primary_a_replica_two_apps_and_nginx(tmp_path):
    services = _compose()["services"]
    scaled = {name for name, s in services.items() if "scaled" in s.get("profiles", [])}
    assert scaled == {"db-replica", "app1", "app2", "nginx-config", "nginx"}
    for name in ("app", "app1", "app2", "db", "db-replica", "nginx"):
        assert services[name]["restart"] == "unless-stopped", name
    assert "pg_basebackup -h db" in " ".join(services["db-replica"]["entrypoint"])
    assert " -R " in " ".join(services["db-replica"]["entrypoint"])
    for name in ("app1", "app2"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].endswith("@db:5432/gridmap")
        assert env["GRIDMAP_REPLICA_URL"].endswith("@db-replica:5432/gridmap")
    # the nginx configuration the profile writes, written here with the same arguments
    args = list(services["nginx-config"]["command"][1:])
    for option, value in (("--prefix", tmp_path), ("--cache", tmp_path / "cache"), ("-o", tmp_path / "n.conf")):
        args[args.index(option) + 1] = str(value)
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    conf = (tmp_path / "n.conf").read_text()
    assert "server app1:8000" in conf and "server app2:8000" in conf and "listen 80;" in conf
    assert "daemon off;" in conf and "proxy_cache gridmap_tiles" in conf
    assert "nginx -p /var/cache/nginx/gridmap -c /etc/gridmap-nginx/nginx.conf" in shlex.join(
        services["nginx"]["command"]).replace("'", "")
