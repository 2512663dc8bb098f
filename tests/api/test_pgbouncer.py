"""gridmap through pgbouncer in transaction mode (Debian's pgbouncer, started here).

Behind pgbouncer in transaction mode a client connection is given whichever server connection
is free for each transaction, so a statement prepared on one is missing (or taken) on the next.
With GRIDMAP_PGBOUNCER on, gridmap prepares none: the whole app works through a pgbouncer with
fewer server connections than the app has clients. Without it, two connections sharing one server
connection collide as soon as psycopg prepares a query (the fifth run).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from geo import settings
from geo.db.connection import statements
from tests.conftest import free_port


def _pgbouncer() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if not found:
        pytest.fail("pgbouncer is missing: `make pgbouncer` installs it (apt-get install pgbouncer)")
    return found


def _bouncer(server_url: str, pool_size: int):
    """pgbouncer in transaction mode in front of the test server; yields a function giving a
    database's URL through it."""
    params = conninfo_to_dict(server_url)
    folder = Path(tempfile.mkdtemp(prefix="gridmap-pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text(f'"{params.get("user", "gridmap")}" ""\n')
    (folder / "pgbouncer.ini").write_text(f"""[databases]
* = host={params.get("host", "127.0.0.1")} port={params.get("port", 5432)}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
logfile = {folder}/pgbouncer.log
""")
    command = [_pgbouncer(), str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer will not run as root
        shutil.chown(folder, "postgres")
        for f in folder.iterdir():
            shutil.chown(f, "postgres")
        command = ["runuser", "-u", "postgres", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    through = {**params, "port": str(port), "host": "127.0.0.1"}
    for _ in range(100):
        try:
            psycopg.connect(make_conninfo(**{**through, "dbname": "postgres"}), connect_timeout=1).close()
            break
        except psycopg.OperationalError:
            if proc.poll() is not None:
                said = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"pgbouncer did not start: {said}") from None
            time.sleep(0.1)
    try:
        yield lambda url: make_conninfo(**{**through, "dbname": conninfo_to_dict(url)["dbname"]})
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def one_server_connection(databases):
    yield from _bouncer(databases.admin, pool_size=1)


@pytest.fixture
def two_server_connections(databases):
    yield from _bouncer(databases.admin, pool_size=2)


def _run_often(url: str, **kwargs) -> None:
    with psycopg.connect(url, autocommit=True, **kwargs) as a, psycopg.connect(url, autocommit=True, **kwargs) as b:
        for n in range(8):
            for conn in (a, b):
                assert conn.execute("SELECT %s::int + 1", [n]).fetchone()[0] == n + 1


def test_prepared_statements_collide_behind_pgbouncer_unless_gridmap_is_told(db_url, one_server_connection,
                                                                              monkeypatch):
    url = one_server_connection(db_url)
    with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
        _run_often(url)  # psycopg's default: both prepare "_pg3_0" on the one server connection
    monkeypatch.setenv("GRIDMAP_PGBOUNCER", "on")
    settings.reset()
    assert statements() == {"prepare_threshold": None} and statements(eager=True) == {"prepare_threshold": None}
    _run_often(url, **statements())


def test_the_app_works_through_pgbouncer_in_transaction_mode(sample_url, two_server_connections, start_server):
    base = start_server(two_server_connections(sample_url), {"GRIDMAP_PGBOUNCER": "on"})
    with psycopg.connect(sample_url) as conn:
        x, y, unit = conn.execute("SELECT ST_X(p), ST_Y(p), unit_id FROM unit_version, ST_PointOnSurface(geom) p "
                                  "WHERE level = 'grid' AND valid_to IS NULL ORDER BY code LIMIT 1").fetchone()

    tile = (int((x + 180) / 360 * 2**15), int((1 - math.asinh(math.tan(math.radians(y))) / math.pi) / 2 * 2**15))

    def work(n: int) -> list[int]:
        with httpx.Client(base_url=base, timeout=60) as client:
            made = client.post("/incidents", json={"category": "garbage", "lon": x, "lat": y,
                                                   "external_id": f"bouncer-{n}"})
            incident = made.json()
            moved = client.post(f"/incidents/{incident['id']}/transitions",
                                json={"to": "rejected", "version": incident["version"], "actor": "调度员"})
            return [made.status_code, moved.status_code,
                    client.get(f"/incidents/{incident['id']}").status_code,
                    client.get("/locate", params={"lon": x, "lat": y}).status_code,
                    client.get(f"/units/{unit}").status_code,
                    client.get("/incidents", params={"limit": 20}).status_code,
                    client.get("/stats", params={"level": "community"}).status_code,
                    client.get(f"/tiles/grid/15/{tile[0]}/{tile[1]}.mvt").status_code,
                    client.get("/health").status_code]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(work, range(24)))
    assert {code for codes in answers for code in codes} <= {200, 201, 204}, answers
    version = httpx.get(f"{base}/units/{unit}", timeout=60).json()["version"]
    edit = httpx.put(f"{base}/units/{unit}", json={"version": version, "name": "经由连接池改名"}, timeout=60)
    assert edit.status_code == 200, edit.text
    located = httpx.get(f"{base}/locate", params={"lon": x, "lat": y}, timeout=60).json()
    assert located["grid"]["name"] == "经由连接池改名"


def test_behind_pgbouncer_untold_the_app_says_what_to_set_never_500(sample_url, two_server_connections,
                                                                     start_server):
    """Misconfigured (pgbouncer in transaction mode, GRIDMAP_PGBOUNCER off), a request whose
    prepared statement went missing is a 503 naming the setting, not a 500."""
    base = start_server(two_server_connections(sample_url), {"GRIDMAP_PGBOUNCER": "off"})
    statuses = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(30):
            for path, params in (("/incidents", {"limit": 5}), ("/categories", {}), ("/health", {})):
                answer = client.get(path, params=params)
                statuses.append(answer.status_code)
                if answer.status_code == 503:
                    assert "GRIDMAP_PGBOUNCER=on" in answer.json()["detail"]
    assert 500 not in statuses and set(statuses) <= {200, 503}, statuses
