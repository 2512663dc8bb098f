"""/stats answers shared: callers asking the same question at once get one computation's
answer; with GRIDMAP_STATS_CACHE_SECONDS an answer is kept that long and says its age."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from api.answers import Shared


@pytest.fixture
def spot(sample_url):
    """A point inside a small neighbourhood of the sample."""
    with psycopg.connect(sample_url) as conn:
        x, y = conn.execute("SELECT ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
                            "WHERE level = 'neighbourhood' ORDER BY code LIMIT 1 OFFSET 100").fetchone()
    return {"lon": x, "lat": y}


def test_callers_asking_at_once_share_one_computation_and_its_error():
    shared = Shared(ttl_s=0, max_bytes=1 << 20)
    calls = []
    gate = threading.Event()

    def slow() -> bytes:
        calls.append(1)
        gate.wait(5)
        return b"answer %d" % len(calls)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(shared.get, "q", slow) for _ in range(8)]
        time.sleep(0.3)  # all eight are in: one computes, seven wait for it
        gate.set()
        answers = [f.result() for f in futures]
    assert calls == [1] and {a for a, _ in answers} == {b"answer 1"}
    assert shared.get("q", slow)[0] == b"answer 2"  # kept for 0 s: asked again, computed again

    def broken() -> bytes:
        gate.clear()
        gate.wait(0.3)
        raise ValueError("no database")

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(shared.get, "bad", broken) for _ in range(4)]
        for f in futures:
            with pytest.raises(ValueError, match="no database"):
                f.result()
    assert shared.computed == 2  # the failed one is not counted, nor kept


def test_kept_answers_expire_and_stay_within_their_bytes():
    shared = Shared(ttl_s=0.5, max_bytes=10)
    assert shared.get("a", lambda: b"12345") == (b"12345", 0.0)
    again, age = shared.get("a", lambda: b"other")
    assert again == b"12345" and 0 <= age < 0.5
    shared.get("b", lambda: b"67890")
    shared.get("c", lambda: b"abcde")  # 15 bytes: the oldest used ("a") goes
    assert shared.get("a", lambda: b"fresh")[0] == b"fresh"
    time.sleep(0.6)
    assert shared.get("c", lambda: b"later")[0] == b"later"
    assert shared.get("huge", lambda: b"x" * 11)[0] == b"x" * 11  # too big to keep, still answered
    assert shared.get("huge", lambda: b"y" * 11)[0] == b"y" * 11


def _report(base: str, spot: dict) -> None:
    made = httpx.post(f"{base}/incidents", json={"category": "garbage", "lon": spot["lon"], "lat": spot["lat"]})
    assert made.status_code == 201, made.text


def _total(answer: httpx.Response) -> int:
    assert answer.status_code == 200, answer.text
    return sum(u["total"] for u in answer.json()["units"])


def test_stats_over_http_kept_only_when_asked(sample_url, start_server, spot):
    fresh = start_server(sample_url)
    kept = start_server(sample_url, {"GRIDMAP_STATS_CACHE_SECONDS": "60"})
    before = [_total(httpx.get(f"{b}/stats?level=community", timeout=60)) for b in (fresh, kept)]
    _report(fresh, spot)
    # by default every answer is computed after the request arrived: the report counts at once
    answer = httpx.get(f"{fresh}/stats?level=community", timeout=60)
    assert _total(answer) == before[0] + 1 and answer.headers.get("age") is None
    # kept for 60 s: the same question gets the kept answer, which says how old it is
    time.sleep(1.1)
    answer = httpx.get(f"{kept}/stats?level=community", timeout=60)
    assert _total(answer) == before[1] and int(answer.headers["age"]) >= 1
    assert answer.headers["cache-control"] == "max-age=60"
    # another question is computed now
    assert _total(httpx.get(f"{kept}/stats?level=street", timeout=60)) == before[1] + 1
    # and a bad one is refused as before
    bad = httpx.get(f"{kept}/stats?level=street&from=2026-02-30", timeout=60)
    assert bad.status_code == 422
