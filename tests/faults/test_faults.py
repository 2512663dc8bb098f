"""Faults: the database stopped, restarted or cutting connections under a running app, and a
plan commit cut off in the middle of its transaction.

The outage tests stop and start a PostgreSQL cluster of their own (the module's `own_cluster`,
initialised in a temporary folder on a free port and removed afterwards), never the cluster
the rest of the suite shares. They run the real app under uvicorn against it and check what
every kind of route answers: 503 with Retry-After while the database is down (quickly, never
500), and normal answers again, without restarting the app, soon after it is back.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from geo.db import embedded
from geo.db.migrations import migrate
from geo.usecases import plans, validation
from geo.usecases import units as imports
from tests.conftest import ROOT, free_port

OUTAGE_WAIT_S = 5.0  # longest a request may take to hear 503 while the database is down
RECOVERY_S = 20.0  # every route answers normally within this of the database starting again
DOWN_FOR_S = 4.0  # how long each outage lasts after the sweep, with the load running


# ---- a cluster of our own, and the app over it ---------------------------------------------

def _pg_ctl(cluster: embedded.Cluster, *args: str) -> subprocess.CompletedProcess:
    return cluster._run([str(embedded.bin_dir() / "pg_ctl"), *args, "-D", str(cluster.data), "-w"], check=False)


@pytest.fixture(scope="module")
def own_cluster():
    """A cluster only this module uses (its tests stop it), holding the sample district."""
    home = Path(tempfile.mkdtemp(prefix="gridmap-faults-"))
    os.chmod(home, 0o755)  # as root, the cluster runs as postgres, which must reach it
    cluster = embedded.Cluster(home, first_port=free_port())
    cluster.start()
    try:
        with psycopg.connect(cluster.url()) as conn:
            migrate(conn)
        imports.load_district(imports.SAMPLE_PATH, url=cluster.url())
        yield cluster
    finally:
        _pg_ctl(cluster, "stop", "-m", "immediate")
        shutil.rmtree(home, ignore_errors=True)


def _ensure_running(cluster: embedded.Cluster) -> None:
    if not cluster.running():
        cluster.start()


@dataclass
class App:
    """The real app under uvicorn, its log in a file (a pipe nobody reads could fill and stall it)."""

    url: str
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready: str = "/health") -> App:
        env = {**os.environ, "DATABASE_URL": self.url, "GRIDMAP_AUTH": "off"}  # outages, not keys, are tested here
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning"], cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.base + ready, timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the app did not start:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def apps(tmp_path):
    started: list[App] = []

    def start(url: str, ready: str = "/health") -> App:
        app = App(url, tmp_path / f"app-{len(started)}.log")
        started.append(app)
        return app.start(ready)

    yield start
    for app in started:
        app.stop()


# ---- what the clients ask ------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    kind: str
    method: str
    path: str
    body: object = None
    html: bool = False  # asked for as a browser asks for a page
    needs_db: bool = True


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _routes(base: str, url: str) -> list[Route]:
    """One request of every kind the app serves, with ids that exist in the database."""
    with psycopg.connect(url, autocommit=True) as conn:
        grid_id, code, lon, lat, version = conn.execute(
            "SELECT unit_id, code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)), version "
            "FROM unit_version WHERE valid_to IS NULL AND level = 'grid' ORDER BY code LIMIT 1").fetchone()
        community = conn.execute(
            "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'community' "
            "ORDER BY households DESC LIMIT 1").fetchone()[0]
        plan_id = conn.execute("SELECT max(id) FROM plan").fetchone()[0]
        if plan_id is None:
            plan_id = plans.draw_split(conn, community, "grid", seed=0)["id"]
    report = {"category": "manhole", "lon": lon, "lat": lat, "description": "井盖缺失", "channel": "rider"}
    incident = httpx.post(base + "/incidents", json=report, timeout=60).json()
    x, y = _tile(lon, lat, 15)
    d = 0.004
    bbox = f"{lon - d},{lat - d},{lon + d},{lat + d}"
    return [
        Route("health", "GET", "/health"),
        Route("units", "GET", "/units?level=community&limit=5"),
        Route("units", "GET", f"/units/{grid_id}"),
        Route("units", "GET", f"/units/{grid_id}/history"),
        Route("units", "GET", f"/units/{grid_id}/lineage"),
        Route("units", "PUT", f"/units/{grid_id}", {"version": version + 1000, "name": "stale edit"}),
        Route("locate", "GET", f"/locate?lon={lon}&lat={lat}"),  # the Starlette fast path
        Route("locate", "GET", f"/locate?lon={lon}&lat={lat}&crs=gcj02&levels=grid,community"),
        Route("locate", "GET", f"/locate?lon={lon}&lat={lat}&as_of=2020-01-01T00:00:00Z"),
        Route("locate", "POST", "/locate", [[lon, lat], [lon + 0.001, lat], [lon, lat + 0.001]]),
        Route("incidents", "POST", "/incidents", report),
        Route("incidents", "GET", f"/incidents/{incident['id']}"),
        Route("incidents", "GET", "/incidents?limit=5"),
        Route("incidents", "POST", f"/incidents/{incident['id']}/transitions",
              {"to": "in_progress", "version": 1000, "actor": "test"}),
        Route("incidents", "GET", f"/workers?unit_id={grid_id}"),
        Route("open311", "GET", "/open311/v2/services.json"),
        Route("open311", "GET", "/open311/v2/requests.json"),
        Route("stats", "GET", "/stats?level=grid&from=2020-01-01&to=2040-01-01"),
        Route("plans", "GET", "/plans"),
        Route("plans", "GET", f"/plans/{plan_id}"),
        Route("plans", "GET", f"/plans/{plan_id}/units"),
        Route("plans", "GET", "/validate?level=street"),
        Route("tiles", "GET", f"/tiles/grid/15/{x}/{y}.mvt"),
        Route("tiles", "GET", f"/tiles/community/15/{x}/{y}.mvt?datum=gcj02"),
        Route("ogc", "GET", "/ogc/collections"),
        Route("ogc", "GET", "/ogc/collections/grid/items?limit=5"),
        Route("ogc", "GET", f"/ogc/collections/grid/items/{grid_id}"),
        Route("ogc", "GET", "/ogc/collections/incidents/items?limit=5"),
        Route("maps", "GET", "/maps", html=True),
        Route("maps", "GET", "/maps/overview", html=True),
        Route("maps", "GET", "/maps/dispatch", html=True),
        Route("maps", "GET", f"/maps/plan/{plan_id}", html=True),
        Route("maps", "GET", f"/maps/api/units/{grid_id}"),
        Route("maps", "GET", f"/maps/api/search?q={code[:9]}"),
        Route("maps", "GET", f"/maps/api/labels?level=grid&bbox={bbox}"),
        Route("maps", "GET", "/maps/api/incidents?hours=24"),
        # no database needed: these may answer during an outage
        Route("ogc", "GET", "/ogc", needs_db=False),
        Route("ogc", "GET", "/ogc/conformance", needs_db=False),
        Route("maps", "GET", "/maps/static/gridmap/gridmap.js", needs_db=False),
    ]


@dataclass
class Answer:
    route: Route
    started: float
    ended: float
    status: int | None
    headers: dict
    text: str
    error: str | None = None

    @property
    def took(self) -> float:
        return self.ended - self.started

    def __str__(self) -> str:
        what = self.error or f"{self.status} {self.text[:160]!r}"
        return f"{self.route.method} {self.route.path}: {what} in {self.took:.2f}s"


def _ask(client: httpx.Client, route: Route) -> Answer:
    headers = {"Accept": "text/html"} if route.html else {}
    started = time.monotonic()
    try:
        r = client.request(route.method, route.path, json=route.body, headers=headers)
        return Answer(route, started, time.monotonic(), r.status_code, dict(r.headers), r.text[:300])
    except httpx.HTTPError as exc:
        return Answer(route, started, time.monotonic(), None, {}, "", f"{type(exc).__name__}: {exc}")


def _sweep(base: str, routes: list[Route]) -> list[Answer]:
    """Every route once, eight at a time."""
    def one(route: Route) -> Answer:
        with httpx.Client(base_url=base, timeout=60) as client:
            return _ask(client, route)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, routes))


class Load:
    """Clients asking a shuffled mix of the routes, without pause, until stopped."""

    def __init__(self, base: str, routes: list[Route], clients: int = 4):
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(base, routes, seed), daemon=True)
                         for seed in range(clients)]

    def _run(self, base: str, routes: list[Route], seed: int) -> None:
        mix = [r for r in routes if r.path != "/maps/overview"]  # the heaviest page: sweeps ask it
        random.Random(seed).shuffle(mix)
        with httpx.Client(base_url=base, timeout=60) as client:
            i = 0
            while not self._stop.is_set():
                self.answers.append(_ask(client, mix[i % len(mix)]))
                i += 1

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(90)


def _is_unavailable(a: Answer) -> bool:
    """A proper outage answer: 503, Retry-After in seconds, and the API's error body (or a page;
    under /open311/, GeoReport v2's error list)."""
    if a.status != 503 or not a.headers.get("retry-after", "").isdigit():
        return False
    if a.route.html:
        return a.headers.get("content-type", "").startswith("text/html") and "DatabaseUnavailable" in a.text
    if a.route.path.startswith("/open311/"):
        return a.text.startswith('[{"code":503,"description":"the database is not reachable')
    return '"error":"DatabaseUnavailable"' in a.text


def _never_500(answers: list[Answer]) -> None:
    bad = [a for a in answers if a.error or a.status >= 500 and not _is_unavailable(a)]
    assert not bad, "answers that are neither a result nor a proper 503:\n" + "\n".join(map(str, bad[:20]))


def _assert_outage_answers(answers: list[Answer], every_kind: bool = True) -> None:
    _never_500(answers)
    wrong = [a for a in answers if a.route.needs_db and not _is_unavailable(a)]
    wrong += [a for a in answers if not a.route.needs_db and a.status != 200]
    assert not wrong, "while the database is down:\n" + "\n".join(map(str, wrong))
    slow = [a for a in answers if a.took > OUTAGE_WAIT_S]
    assert not slow, "503 must come quickly:\n" + "\n".join(map(str, slow))
    kinds = {a.route.kind for a in answers if a.route.needs_db}
    assert not every_kind or kinds == {"health", "units", "locate", "incidents", "open311", "stats", "plans",
                                       "tiles", "ogc", "maps"}


def _wait_until_served(base: str, routes: list[Route], since: float) -> tuple[float, list[Answer]]:
    """Sweep until every route answers below 500; how long that took after `since`."""
    while True:
        answers = _sweep(base, routes)
        _never_500(answers)
        if all(a.status < 500 for a in answers):
            return time.monotonic() - since, answers
        if time.monotonic() - since > RECOVERY_S:
            failing = [a for a in answers if a.status >= 500]
            pytest.fail(f"not recovered {RECOVERY_S:.0f}s after the database started:\n" + "\n".join(map(str, failing)))
        time.sleep(0.5)


def _assert_served(answers: list[Answer]) -> None:
    """Reads answer 200 (204 for an empty tile); writes made on stale versions 409."""
    for a in answers:
        if a.route.method == "GET":
            assert a.status in (200, 204), str(a)
        else:
            assert a.status in (200, 201, 409), str(a)


# ---- outages ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_database_restarted_under_load(own_cluster, apps, mode):
    """Stop the database mid-load (fast: connections terminated, immediate: a crash), keep it
    down, start it again: 503 with Retry-After all along the outage, never 500, no hang, and
    every route served again by the same app process soon after."""
    _ensure_running(own_cluster)
    app = apps(own_cluster.url())
    routes = _routes(app.base, own_cluster.url())
    _assert_served(_sweep(app.base, routes))
    with Load(app.base, routes) as load:
        time.sleep(1.5)
        stopping = time.monotonic()
        assert _pg_ctl(own_cluster, "stop", "-m", mode).returncode == 0
        down = time.monotonic()
        _assert_outage_answers(_sweep(app.base, routes))
        _assert_outage_answers(_sweep(app.base, routes))  # and again, once the pool knows
        time.sleep(DOWN_FOR_S)
        starting = time.monotonic()
        own_cluster.start()
        recovered, answers = _wait_until_served(app.base, routes, starting)
        time.sleep(1.0)
    _assert_served(answers)
    _assert_served(_sweep(app.base, routes))
    _never_500(load.answers)
    during = [a for a in load.answers if a.started >= down and a.ended <= starting]
    assert len(during) >= 20, f"only {len(during)} requests of the load fell inside the outage"
    _assert_outage_answers(during, every_kind=False)  # the sweeps asked every kind
    before = [a for a in load.answers if a.ended < stopping]
    after = [a for a in load.answers if a.started > starting + recovered]
    assert before and all(a.status < 500 for a in before)
    assert after and all(a.status < 500 for a in after), [str(a) for a in after if a.status >= 500][:5]
    assert app.proc.poll() is None  # the same process throughout


def test_app_started_while_the_database_is_down(own_cluster, apps):
    """An app that starts with no database answers 503 at once, and serves once it is up."""
    _ensure_running(own_cluster)
    probe = apps(own_cluster.url())  # the routes' ids come from a live app
    routes = _routes(probe.base, own_cluster.url())
    probe.stop()
    assert _pg_ctl(own_cluster, "stop", "-m", "fast").returncode == 0
    app = apps(own_cluster.url(), ready="/ogc/conformance")
    _assert_outage_answers(_sweep(app.base, routes))
    starting = time.monotonic()
    own_cluster.start()
    _, answers = _wait_until_served(app.base, routes, starting)
    _assert_served(answers)


def test_connections_the_server_closed_are_replaced_unseen(own_cluster, apps):
    """Connections terminated while idle (a failover, pg_terminate_backend, an idle timeout) are
    noticed before use: no request fails while the database itself is up."""
    _ensure_running(own_cluster)
    app = apps(own_cluster.url())
    routes = [r for r in _routes(app.base, own_cluster.url()) if r.path != "/maps/overview"]
    _assert_served(_sweep(app.base, routes))
    for _ in range(2):
        with psycopg.connect(own_cluster.url(), autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()[0]
        assert killed >= 2  # the pool's and /locate's generation check
        time.sleep(0.3)
        _assert_served(_sweep(app.base, routes))


# ---- a plan commit cut off in the middle of its transaction ------------------------------------

def _snapshot(conn) -> dict:
    """What a commit that did not finish must leave as it was."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM unit), (SELECT count(*) FROM unit_version), "
        "(SELECT md5(string_agg(unit_id || '/' || version, ',' ORDER BY unit_id)) FROM unit_version "
        " WHERE valid_to IS NULL), "
        "(SELECT count(*) FROM unit_lineage), (SELECT count(*) FROM change_set), "
        "(SELECT generation FROM boundary_generation), "
        "(SELECT md5(string_agg(id || '/' || version || '/' || coalesce(grid_id::text, ''), ',' ORDER BY id)) "
        " FROM incident), (SELECT count(*) FROM incident_event)"
    ).fetchone()
    keys = ("units", "versions", "current", "lineage", "change_sets", "generation", "incidents", "events")
    return dict(zip(keys, row, strict=True))


def _validation(conn) -> dict:
    return {lv: validation.validate(conn, lv)["counts"] for lv in ("community", "grid")}


@dataclass
class Drawn:
    plan_id: int
    old_grids: list[int]
    neighbourhood: int  # under one of the old grids: the commit re-parents it, late in its transaction
    point: tuple[float, float]


def _draw_split(conn) -> Drawn:
    community = conn.execute(
        "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'community' AND households > 3000 "
        "ORDER BY code LIMIT 1").fetchone()[0]
    plan = plans.draw_split(conn, community, "grid", seed=0)
    old = [r[0] for r in conn.execute(
        "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'grid' AND community_id = %s",
        [community])]
    nb, lon, lat = conn.execute(
        "SELECT unit_id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM unit_version "
        "WHERE valid_to IS NULL AND level = 'neighbourhood' AND grid_id = ANY(%s) ORDER BY unit_id LIMIT 1",
        [old]).fetchone()
    return Drawn(plan["id"], old, nb, (lon, lat))


class CutOff:
    """Holds a row lock the commit needs late in its transaction, so that it waits there; then
    terminates the committing backend from another session, as a crash or a failover would."""

    def __init__(self, url: str, drawn: Drawn):
        self.url, self.drawn = url, drawn
        self.locker = psycopg.connect(url)
        self.locker.execute("SELECT 1 FROM unit_version WHERE unit_id = %s AND valid_to IS NULL FOR UPDATE",
                            [drawn.neighbourhood])

    def wait_and_terminate(self) -> int:
        """Wait for a backend blocked by our lock that has already written the new units' lineage
        (the commit is well inside its transaction), and terminate it."""
        with psycopg.connect(self.url, autocommit=True) as admin:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                row = admin.execute(
                    "SELECT a.pid FROM pg_stat_activity a WHERE %s = ANY(pg_blocking_pids(a.pid)) AND EXISTS "
                    "(SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.granted AND l.mode = 'RowExclusiveLock' "
                    " AND l.relation = 'unit_lineage'::regclass)", [self.locker.info.backend_pid]).fetchone()
                if row:
                    assert admin.execute("SELECT pg_terminate_backend(%s)", [row[0]]).fetchone()[0]
                    return row[0]
                time.sleep(0.05)
        pytest.fail("the commit never reached the locked row")

    def run(self, commit) -> None:
        """Run `commit` in a thread, cut it off, and let go of the lock."""
        thread = threading.Thread(target=commit)
        thread.start()
        try:
            self.wait_and_terminate()
            thread.join(60)
        finally:
            self.locker.rollback()
            self.locker.close()


def test_commit_cut_off_mid_transaction_changes_nothing(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        drawn = _draw_split(conn)
        before, checks = _snapshot(conn), _validation(conn)
    outcome: dict = {}

    def commit() -> None:
        with psycopg.connect(sample_url, autocommit=True) as c:
            try:
                outcome["plan"] = plans.commit_plan(c, drawn.plan_id)
            except Exception as exc:
                outcome["error"] = exc

    CutOff(sample_url, drawn).run(commit)
    assert isinstance(outcome.get("error"), psycopg.errors.AdminShutdown), outcome
    with psycopg.connect(sample_url, autocommit=True) as conn:
        assert _snapshot(conn) == before  # same versions current, no new unit, no lineage, no change set
        plan = plans.get_plan(conn, drawn.plan_id)
        assert plan["status"] == "draft" and plan["change_id"] is None
        assert _validation(conn) == checks
        # nothing is left half-done that would stop the same commit now
        done = plans.commit_plan(conn, drawn.plan_id)
        assert done["status"] == "committed"
        after = _snapshot(conn)
        assert after["lineage"] > before["lineage"] and after["units"] > before["units"]
        grids = validation.validate(conn, "grid")["counts"]
        assert grids.get("gap", 0) == 0 and grids.get("overlap", 0) == 0


def test_commit_cut_off_over_http_is_503_and_can_be_retried(sample_url, apps):
    app = apps(sample_url)
    with psycopg.connect(sample_url, autocommit=True) as conn:
        drawn = _draw_split(conn)
        before = _snapshot(conn)
    lon, lat = drawn.point
    assert httpx.get(f"{app.base}/locate?lon={lon}&lat={lat}").json()["grid"]["id"] in drawn.old_grids
    answer: dict = {}
    CutOff(sample_url, drawn).run(lambda: answer.update(
        r=httpx.post(f"{app.base}/plans/{drawn.plan_id}/commit", json={"revision": 1}, timeout=120)))
    r = answer["r"]
    assert r.status_code == 503 and r.headers["retry-after"].isdigit(), r.text
    assert r.json()["error"] == "DatabaseUnavailable"
    with psycopg.connect(sample_url, autocommit=True) as conn:
        assert _snapshot(conn) == before
    with httpx.Client(base_url=app.base, timeout=120) as http:
        assert http.get(f"/plans/{drawn.plan_id}").json()["status"] == "draft"
        assert http.get(f"/locate?lon={lon}&lat={lat}").json()["grid"]["id"] in drawn.old_grids
        # the client tries again: the same app commits it
        again = http.post(f"/plans/{drawn.plan_id}/commit", json={"revision": 1})
        assert again.status_code == 200 and again.json()["status"] == "committed", again.text
        # and /locate answers from the new boundaries at once
        assert http.get(f"/locate?lon={lon}&lat={lat}").json()["grid"]["id"] not in drawn.old_grids
        assert http.post(f"/plans/{drawn.plan_id}/commit").status_code == 409
