"""Test fixtures: every test talks to a real PostGIS.

With DATABASE_URL unset, the suite starts gridmap's embedded cluster (as `make test`
does) and creates throwaway databases in it; with DATABASE_URL set, it creates them
on that server (the user needs CREATEDB). Each test that writes gets a database of
its own, copied from a migrated template, and dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from geo import settings
from geo.db.migrations import migrate
from geo.usecases import units as imports

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _server_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from geo.db.embedded import default_cluster

    cluster = default_cluster()
    cluster.start()
    return cluster.url()


def _with_db(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


class Databases:
    def __init__(self, server_url: str):
        self.admin = _with_db(server_url, "postgres")
        self.made: list[str] = []

    def create(self, template: str | None = None, prefix: str = "gridmap_test") -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            if template:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            else:
                conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return name

    def url(self, name: str) -> str:
        return _with_db(self.admin, name)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            for name in reversed(self.made):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def fresh_settings():
    """Settings are read once per process (geo/settings.py): a test that changes the environment
    in-process (DATABASE_URL below) has them read again, and leaves them to be read again."""
    settings.reset()
    yield
    settings.reset()


@pytest.fixture(scope="session")
def databases():
    dbs = Databases(_server_url())
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def empty_template(databases) -> str:
    """A database with the schema applied and no units."""
    name = databases.create(prefix="gridmap_tmpl")
    with psycopg.connect(databases.url(name)) as conn:
        migrate(conn)
    return name


@pytest.fixture(scope="session")
def sample_template(databases, empty_template) -> str:
    """A database with the shipped sample district loaded."""
    name = databases.create(template=empty_template, prefix="gridmap_tmpl_sample")
    imports.load_district(imports.SAMPLE_PATH, url=databases.url(name))
    return name


@pytest.fixture
def db_url(databases, empty_template, monkeypatch) -> str:
    """A fresh, migrated, empty database; DATABASE_URL points at it for the test."""
    url = databases.url(databases.create(template=empty_template))
    monkeypatch.setenv("DATABASE_URL", url)
    settings.reset()
    return url


@pytest.fixture
def sample_url(databases, sample_template, monkeypatch) -> str:
    """A fresh database holding the sample district; DATABASE_URL points at it."""
    url = databases.url(databases.create(template=sample_template))
    monkeypatch.setenv("DATABASE_URL", url)
    settings.reset()
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_server(url: str, env: dict | None = None, log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start the real app under uvicorn, in its own process, on a free port, over a database;
    returns the process and its base URL once /health answers. Auth is off unless `env` says
    otherwise (e.g. {"GRIDMAP_AUTH": "on"}). Its output goes to a file (`log`, or a temporary
    one; `proc.log` names it), so a chatty server never blocks on a full pipe."""
    import tempfile

    import httpx

    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "GRIDMAP_AUTH": "off", **(env or {})}
    if log is None:
        log = Path(tempfile.mkstemp(prefix="gridmap-server-", suffix=".log")[1])
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    proc.log = log
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not start:\n" + log.read_text(errors="replace"))
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def start_server():
    """`launch_server` for one test: start(url, env=None) -> base URL; stopped afterwards."""
    procs = []

    def start(url: str, env: dict | None = None) -> str:
        proc, base = launch_server(url, env)
        procs.append(proc)
        return base

    yield start
    for proc in procs:
        stop_server(proc)


@pytest.fixture
def server(sample_url, start_server):
    """The real app over the sample district."""
    return start_server(sample_url)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `gridmap` command."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=600,
    )


@pytest.fixture
def client(server):
    """An HTTP client on `server`."""
    import httpx

    with httpx.Client(base_url=server, timeout=60) as c:
        yield c


def bearer(key: str) -> dict:
    """The header that presents an API key."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def http(secured):
    """An HTTP client on the `secured` server (no key of its own: pass `headers=bearer(...)`)."""
    import httpx

    with httpx.Client(base_url=secured.base, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def secured(databases, sample_template):
    """A server with auth on over its own copy of the sample district, and a key for each role
    (keys["service"], ...). Verified keys are cached for 1 s, so revocation shows quickly."""
    from types import SimpleNamespace

    from geo.security.identity import ROLES
    from geo.usecases.keys import create_key

    url = databases.url(databases.create(template=sample_template))
    keys = {}
    with psycopg.connect(url) as conn:
        for role in ROLES:
            _, keys[role] = create_key(conn, role, f"test-{role}", "test")
    proc, base = launch_server(url, {"GRIDMAP_AUTH": "on", "GRIDMAP_AUTH_CACHE_SECONDS": "1"})
    yield SimpleNamespace(url=url, base=base, keys=keys)
    stop_server(proc)


@pytest.fixture(scope="session", autouse=True)
def index_snapshots(tmp_path_factory):
    """Point-index snapshots of the test databases go to a folder of the session's, not
    under .gridmap (servers the tests start inherit it)."""
    os.environ["GRIDMAP_INDEX_DIR"] = str(tmp_path_factory.mktemp("index"))
    settings.reset()
    yield
