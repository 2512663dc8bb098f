"""The scaled layout without Docker (issue 14): two app instances behind nginx, with the
configuration `gridmap nginx-config` writes. Requests reach the app through nginx; a tile URL
carrying its level's current state is kept by nginx after the first request and answered from
its cache (still authorised by the app); an instance that stops costs no request."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from cli.deploy import render
from geo.db import tiles as tile_queries
from geo.tiles import maths
from tests.conftest import free_port, launch_server, run_cli, stop_server

CENTRE = (114.30, 30.55)


def _nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        pytest.fail("nginx is missing: `make nginx` installs it (apt-get install nginx)")
    return found


@pytest.fixture
def layout(sample_url):
    """Two app instances over the sample district and nginx in front of them."""
    apps = [launch_server(sample_url) for _ in range(2)]
    prefix = Path(tempfile.mkdtemp(prefix="gridmap-nginx-"))
    os.chmod(prefix, 0o755)  # nginx's workers run as nobody when it runs as root
    cache = prefix / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render([base.removeprefix("http://") for _, base in apps], f"127.0.0.1:{port}", prefix, cache,
                           foreground=True))
    proxy = subprocess.Popen([_nginx(), "-p", str(prefix), "-c", str(conf)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proxy.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"nginx did not start: {proxy.stderr.read().decode() if proxy.stderr else ''}")
        time.sleep(0.1)
    yield base, apps
    proxy.terminate()
    proxy.wait(10)
    for proc, _ in apps:
        if proc.poll() is None:
            stop_server(proc)
    shutil.rmtree(prefix, ignore_errors=True)


def test_nginx_serves_the_app_caches_current_tiles_and_survives_an_instance(layout, sample_url):
    base, apps = layout
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/health").json()["status"] == "ok"
        grid = client.get("/locate", params={"lon": CENTRE[0], "lat": CENTRE[1]}).json()["grid"]
        assert grid is not None

        # a tile asked with the level's current state: made once, then nginx answers it
        x, y = maths.tile_at(*CENTRE, 15)
        plain = client.get(f"/tiles/grid/15/{x}/{y}.mvt")
        assert plain.headers["cache-control"] == "public, no-cache"
        with psycopg.connect(sample_url) as conn:  # the state, as the maps put it in their URLs
            v = tile_queries.level_state(conn, "grid")
        url = f"/tiles/grid/15/{x}/{y}.mvt?v={v}"
        first = client.get(url)
        assert first.status_code == 200 and "immutable" in first.headers["cache-control"]
        assert first.headers["x-cache-status"] in ("MISS", "EXPIRED")
        again = client.get(url)
        assert again.headers["x-cache-status"] == "HIT" and again.content == first.content
        assert client.get(f"/tiles/grid/15/{x}/{y}.mvt").headers["x-cache-status"] != "HIT"  # no-cache: asked

        # one instance stops: nginx passes its requests to the other
        stop_server(apps[0][0])
        codes = [client.get("/locate", params={"lon": CENTRE[0], "lat": CENTRE[1]}).status_code for _ in range(20)]
        codes += [client.get(f"/tiles/grid/15/{x}/{y}.mvt").status_code for _ in range(10)]
        assert set(codes) == {200}, codes


def test_nginx_config_command_writes_a_configuration_nginx_accepts(tmp_path):
    out = run_cli("nginx-config", "--app", "127.0.0.1:8001", "--app", "127.0.0.1:8002", "--listen", "8000",
                  "--prefix", str(tmp_path), "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "n.conf"))
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "n.conf").read_text()
    assert "server 127.0.0.1:8001" in text and "server 127.0.0.1:8002" in text and "auth_request" in text
    checked = subprocess.run([_nginx(), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "n.conf")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
