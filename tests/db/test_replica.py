"""Beyond one machine on PostgreSQL's own replication (issue 14), on one machine: a primary and
a streaming replica made with `pg_basebackup -R` (geo/db/embedded.py, as `gridmap db replica
start` makes them), the app reading what may lag from the replica. The replica follows
commits; a lookup after a commit never answers from older boundaries; stopping the replica
under load fails no request (reads fall back to the primary); and promoting it is a failover
that takes writes."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter

import httpx
import psycopg
import pytest

from geo.db.embedded import Cluster
from geo.db.migrations import migrate
from geo.tiles import maths
from geo.usecases import units as imports
from tests.conftest import free_port, launch_server, stop_server

CENTRE = (114.30, 30.55)  # the sample district's centre


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A primary holding the sample district and its streaming replica, clusters of their own."""
    home = tmp_path_factory.mktemp("replication")
    primary = Cluster(home / "primary", free_port())
    primary.start()
    with psycopg.connect(primary.url()) as conn:
        migrate(conn)
    imports.load_district(imports.SAMPLE_PATH, url=primary.url())
    replica = Cluster(home / "replica", free_port())
    replica.clone_from(primary)
    replica.start()
    yield primary, replica
    for cluster in (replica, primary):
        cluster.stop()
        shutil.rmtree(cluster.place, ignore_errors=True)


def _generation(url: str) -> int:
    with psycopg.connect(url, connect_timeout=3) as conn:
        return conn.execute("SELECT generation FROM boundary_generation").fetchone()[0]


def test_the_replica_streams_the_primarys_commits_and_refuses_writes(pair):
    primary, replica = pair
    assert replica.standby and "streaming replica" in replica.status()
    with psycopg.connect(replica.url()) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE boundary_generation SET generation = generation")
    with psycopg.connect(primary.url(), autocommit=True) as conn:
        unit = conn.execute("SELECT unit_id, version FROM unit_version WHERE level = 'grid' AND valid_to IS NULL "
                            "ORDER BY code LIMIT 1").fetchone()
        with conn.transaction():
            imports.edit_unit(conn, unit[0], expected_version=unit[1], name="复制测试网格")
    want = _generation(primary.url())
    deadline = time.monotonic() + 10
    while _generation(replica.url()) < want:
        assert time.monotonic() < deadline, "the replica did not replay the commit in 10 s"
        time.sleep(0.05)
    with psycopg.connect(replica.url()) as conn:
        assert conn.execute("SELECT name FROM unit_version WHERE unit_id = %s AND valid_to IS NULL",
                            [unit[0]]).fetchone()[0] == "复制测试网格"


def test_reads_go_to_the_replica_fall_back_when_it_stops_and_lookups_see_every_commit(pair):
    primary, replica = pair
    proc, base = launch_server(primary.url(), env={"GRIDMAP_REPLICA_URL": replica.url()})
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            health = client.get("/health").json()
            assert health["replica"]["status"] == "streaming", health
            x, y = maths.tile_at(*CENTRE, 15)
            paths = [f"/tiles/grid/15/{x}/{y}.mvt", "/ogc/collections/grid/items?limit=5",
                     "/stats?level=community", f"/locate?lon={CENTRE[0]}&lat={CENTRE[1]}"]
            for path in paths:
                assert client.get(path).status_code == 200, path
            assert client.get("/health").json()["replica"]["counts"]["replica"] > 0

            # a commit on the primary: the next lookup sees it (the index waits for the replica
            # to replay it, or reads the primary)
            grid = client.get("/locate", params={"lon": CENTRE[0], "lat": CENTRE[1]}).json()["grid"]
            renamed = client.put(f"/units/{grid['id']}", json={"version": grid["version"], "name": "刚改的名字"})
            assert renamed.status_code == 200, renamed.text
            after = client.get("/locate", params={"lon": CENTRE[0], "lat": CENTRE[1]}).json()["grid"]
            assert after["name"] == "刚改的名字" and after["version"] == grid["version"] + 1

            # under load, the replica stops: every request still answers
            statuses: Counter[int] = Counter()
            stop = threading.Event()

            def load() -> None:
                with httpx.Client(base_url=base, timeout=30) as own:
                    k = 0
                    while not stop.is_set():
                        statuses[own.get(paths[k % len(paths)]).status_code] += 1
                        k += 1

            workers = [threading.Thread(target=load) for _ in range(4)]
            for w in workers:
                w.start()
            time.sleep(1.5)
            replica.stop()
            time.sleep(2.5)
            stop.set()
            for w in workers:
                w.join()
            assert set(statuses) == {200}, statuses
            assert sum(statuses.values()) > 40
            health = client.get("/health").json()
            assert health["replica"]["status"] == "unreachable" and health["replica"]["reads"] == "primary"
            for path in paths:
                assert client.get(path).status_code == 200, path
    finally:
        stop_server(proc)
        replica.start()


def test_promoting_the_replica_is_a_failover_that_takes_writes(pair):
    primary, replica = pair
    want = _generation(primary.url())
    deadline = time.monotonic() + 10
    while _generation(replica.url()) < want:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    primary.stop()  # the primary is lost
    replica.promote()
    assert not replica.standby
    proc, base = launch_server(replica.url())  # DATABASE_URL now names the promoted replica
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/health").json()["status"] == "ok"
            grid = client.get("/locate", params={"lon": CENTRE[0], "lat": CENTRE[1]}).json()["grid"]
            edit = client.put(f"/units/{grid['id']}", json={"version": grid["version"], "name": "故障切换后"})
            assert edit.status_code == 200, edit.text
            found = client.get("/locate", params={"lon": CENTRE[0], "lat": CENTRE[1]}).json()
            assert found["grid"]["name"] == "故障切换后"
    finally:
        stop_server(proc)
