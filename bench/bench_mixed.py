"""Benchmark: a mixed load while a planner commits boundary changes (issue #7, the load part).

    .venv/bin/python bench/bench_mixed.py [--seconds 60] [--clients 50] [--commits split,merge]

`--clients` concurrent clients (asyncio + httpx, spread over `--procs` processes) run for
`--seconds` against the real app (uvicorn, 2 workers) on a fresh copy of the sample district,
mixing GET /locate at random points, POST /locate batches, POST /incidents (each with a unique
external id) and GET /stats. Meanwhile a planner commits plans drawn before the run, through
HTTP: with the default `--commits split,merge`, the most oversized community split into
communities at T/3, and the undersized communities merged into neighbours at 2T/3
(`grids` redraws the grids of the second most oversized community instead).

Before that, the same mix runs on another fresh copy with the same plans drawn but not
committed: that run is the baseline, and every figure is printed beside it with the ratio.
The seconds around each commit are also set against the rest of the same run (and the same
seconds of the baseline), which drifts less on a shared machine than one run against another.
`--focus` of the points (30 % by default) fall in the bounding boxes of the units the plans
change, so the checks meet the changing boundaries often; the rest are uniform over the district.

Checks (PASS/FAIL), on both runs:
  - no answer other than 2xx (non-2xx and transport errors listed by route and status);
  - no lost incident: every 201 intake is stored, none is stored twice or without a 201;
  - no torn read: every /locate answer (GET and each point of a POST) names unit versions that
    were all current together at some instant, each unit's parents are the ones its version
    names, and the codes in the answer are the stored ones;
  - no stale read: a lookup sent after a commit returned names no unit that commit closed
    (the documented refresh window is zero: every request checks the boundary generation);
  - codes: each answer's grid code starts with its community's code (and the community's with
    its street's), and whether a mismatch is also in the committed units themselves;
  - incidents: each one's units at intake (undoing re-assignment events) had versions valid at
    its reported_at, and its grid is the grid holding its point at reported_at (PostGIS);
    no open incident is left on a unit a commit closed.
Needs the embedded cluster (`gridmap db start`) or DATABASE_URL. The sample district is loaded
once into a template database (`gridmap_bench_mixed_tmpl`, kept); each run works on a copy of
it that is dropped afterwards (`--keep` keeps them).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import pickle
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import httpx
import numpy as np
import orjson
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_locate import _url, start_server, warm_up  # noqa: E402

from geo.coords import datums  # noqa: E402
from geo.db import units  # noqa: E402
from geo.db.connection import database_url  # noqa: E402
from geo.db.incidents import insert_generated  # noqa: E402
from geo.db.migrations import migrate  # noqa: E402
from geo.incidents import sample as incident_sample  # noqa: E402
from geo.units import levels  # noqa: E402
from geo.usecases import units as imports  # noqa: E402

KINDS = ("locate", "batch", "incident", "stats")
ROUTES = {"locate": "GET /locate", "batch": "POST /locate", "incident": "POST /incidents", "stats": "GET /stats"}
CATEGORIES = ("manhole", "road_damage", "garbage", "noise", "water_leak", "street_light", "dispute",
              "parking", "illegal_building", "fire_hazard", "other")
LEVELS = levels.LEVELS
TEMPLATE = "gridmap_bench_mixed_tmpl"


# ---------------------------------------------------------------------------
# Databases and the server
# ---------------------------------------------------------------------------

def ensure_template(base: str) -> None:
    """The sample district as `gridmap init` loads it (in force for a year, 3,000 incidents)."""
    with psycopg.connect(_url(base, "postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [TEMPLATE]).fetchone():
            with psycopg.connect(_url(base, TEMPLATE)) as t:
                if t.execute("SELECT count(*) FROM incident").fetchone()[0]:
                    migrate(t)  # a template kept from an older gridmap gets the newer migrations
                    print(f"template {TEMPLATE}: reused")
                    return
            conn.execute(f'DROP DATABASE "{TEMPLATE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    url = _url(base, TEMPLATE)
    start = time.perf_counter()
    with psycopg.connect(url) as conn:
        migrate(conn)
    now = datetime.now(UTC)
    imports.load_district(imports.SAMPLE_PATH, url=url, valid_from=now - timedelta(days=365))
    with psycopg.connect(url) as conn:
        index = units.locator(conn)
        columns = incident_sample.generate(index, 3000, now - timedelta(days=60), now)
        with conn.transaction():
            insert_generated(conn, index, columns)
    print(f"template {TEMPLATE}: sample district and 3,000 incidents loaded in {time.perf_counter() - start:.1f} s")


def fresh_copy(base: str, label: str) -> tuple[str, str]:
    name = f"gridmap_bench_mixed_{label}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    return name, _url(base, name)


def drop(base: str, name: str) -> None:
    with psycopg.connect(_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the server's worker processes so far."""
    total = 0.0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# ---------------------------------------------------------------------------
# Plans: drawn before the run, committed during it
# ---------------------------------------------------------------------------

def oversized(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT code FROM unit_version WHERE level = 'community' AND valid_to IS NULL "
            "ORDER BY households DESC, code LIMIT 2")]


def draw_plans(http: httpx.Client, url: str, kinds: list[str]) -> list[dict]:
    first, second = oversized(url)
    requests = {
        "split": ("/plans/split", {"unit": first, "into": "community"}),
        "grids": ("/plans/split", {"unit": second, "into": "grid", "households": "300-500"}),
        "merge": ("/plans/merge", {"level": "community"}),
    }
    plans = []
    for kind in kinds:
        path, body = requests[kind]
        answer = http.post(path, json=body)
        if answer.status_code != 201:
            raise SystemExit(f"drawing the {kind} plan failed: {answer.status_code} {answer.text[:300]}")
        plan = answer.json()
        plans.append({"kind": kind, "id": plan["id"], "parent_id": plan["parent_id"],
                      "replaces": [r["unit_id"] for r in plan["replaces"]],
                      "what": f"{kind} {body.get('unit', 'communities')}: {len(plan['replaces'])} "
                              f"{plan['level']} unit(s) into {len(plan['units'])}"})
    return plans


def areas(url: str, plans: list[dict]) -> tuple[tuple, list[tuple]]:
    """The district's extent and the bounding box of every unit a plan changes."""
    ids = sorted({u for p in plans for u in p["replaces"] + ([p["parent_id"]] if p["parent_id"] else [])})
    with psycopg.connect(url) as conn:
        district = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e "
            "FROM unit_version WHERE level = 'street' AND valid_to IS NULL) s").fetchone()
        boxes = conn.execute(
            "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM unit_version "
            "WHERE unit_id = ANY(%s) AND valid_to IS NULL", [ids]).fetchall()
    return tuple(district), [tuple(b) for b in boxes]


# ---------------------------------------------------------------------------
# The clients (run in --procs processes)
# ---------------------------------------------------------------------------

@dataclass
class ClientJob:
    base_url: str
    clients: int
    proc: int
    seconds: float
    seed: int
    tag: str
    mix: dict[str, float]
    batch: int
    focus: float
    district: tuple
    boxes: list
    stats_from: str
    stats_to: str
    out: str


@dataclass
class Record:
    kind: str
    t0: float
    t1: float
    status: int  # -1: no answer (transport error)
    keys: list = field(default_factory=list)  # /locate: one answer key per point
    error: str = ""
    incident: tuple | None = None  # (external_id, id, chain ids)


def _point(rng: random.Random, job: ClientJob) -> tuple[float, float]:
    box = rng.choice(job.boxes) if job.boxes and rng.random() < job.focus else job.district
    return rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])


def _wire(rng: random.Random, lon: float, lat: float) -> tuple[float, float, str]:
    """A third of the positions are sent as WeChat/Amap send them (GCJ-02)."""
    if rng.random() < 1 / 3:
        glon, glat = datums.wgs84_to_gcj02(lon, lat)
        return float(glon), float(glat), "gcj02"
    return lon, lat, "wgs84"


def _get_key(body: dict) -> tuple:
    """What a GET /locate answer says: (id, version, code) per level, and the nearby grids."""
    chain = tuple(None if body.get(lv) is None else (body[lv]["id"], body[lv]["version"], body[lv]["code"])
                  for lv in LEVELS)
    near = tuple(sorted((g["id"], g["version"], g["code"]) for g in body["near_grids"]))
    return chain, near


def _post_keys(body: dict) -> list[tuple]:
    units = {lv: dict(zip(t["id"], zip(t["version"], t["code"], strict=True), strict=True))
             for lv, t in body["units"].items()}
    keys = []
    for r in body["results"]:
        chain = tuple(None if r.get(lv) is None else (r[lv], *units[lv][r[lv]]) for lv in LEVELS)
        near = tuple(sorted((g, *units["grid"][g]) for g in r["near_grids"]))
        keys.append((chain, near))
    return keys


async def _one(http: httpx.AsyncClient, rng: random.Random, job: ClientJob, kind: str, n: int, cid: int) -> Record:
    t0 = time.monotonic()
    rec = Record(kind, t0, t0, -1)
    try:
        if kind == "locate":
            lon, lat, crs = _wire(rng, *_point(rng, job))
            answer = await http.get("/locate", params={"lon": f"{lon:.7f}", "lat": f"{lat:.7f}", "crs": crs})
        elif kind == "batch":
            points = [[round(c, 7) for c in _point(rng, job)] for _ in range(job.batch)]
            answer = await http.post("/locate", content=orjson.dumps(points),
                                     headers={"content-type": "application/json"})
        elif kind == "incident":
            lon, lat, crs = _wire(rng, *_point(rng, job))
            ext = f"bench-{job.tag}-{job.proc}-{cid}-{n}"
            rec.incident = (ext, None, None)
            answer = await http.post("/incidents", json={
                "category": rng.choice(CATEGORIES), "lon": lon, "lat": lat, "crs": crs, "channel": "app",
                "description": f"load test {ext}", "external_id": ext})
        else:
            answer = await http.get("/stats", params={"level": rng.choice(("grid", "community", "street")),
                                                      "from": job.stats_from, "to": job.stats_to})
        rec.t1 = time.monotonic()
        rec.status = answer.status_code
        if not 200 <= answer.status_code < 300:
            rec.error = answer.text[:300]
        elif kind == "locate":
            rec.keys = [_get_key(orjson.loads(answer.content))]
        elif kind == "batch":
            rec.keys = _post_keys(orjson.loads(answer.content))
        elif kind == "incident":
            body = orjson.loads(answer.content)
            rec.incident = (rec.incident[0], body["id"],
                            tuple(None if body.get(lv) is None else body[lv]["id"] for lv in LEVELS))
    except httpx.HTTPError as exc:
        rec.t1 = time.monotonic()
        rec.error = f"{type(exc).__name__}: {exc}"[:300]
    return rec


async def _client(http: httpx.AsyncClient, job: ClientJob, cid: int, start: float, out: list) -> None:
    rng = random.Random(f"{job.seed}-{job.proc}-{cid}")
    kinds, weights = list(job.mix), list(job.mix.values())
    stop = start + job.seconds
    n = 0
    while time.monotonic() < stop:
        out.append(await _one(http, rng, job, rng.choices(kinds, weights)[0], n, cid))
        n += 1


async def _clients(job: ClientJob, start: float) -> list[Record]:
    # idle connections are dropped after 2 s, before uvicorn closes them (5 s): otherwise a request
    # can go out on a connection the server is closing at that moment (a ReadError of the client's making)
    limits = httpx.Limits(max_connections=job.clients, max_keepalive_connections=job.clients, keepalive_expiry=2.0)
    out: list[Record] = []
    async with httpx.AsyncClient(base_url=job.base_url, limits=limits, timeout=120) as http:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        await asyncio.gather(*(_client(http, job, cid, start, out) for cid in range(job.clients)))
    return out


def client_process(job: ClientJob, ready, go, start_at) -> None:
    import uvloop

    ready.put(job.proc)
    go.wait()
    cpu = time.process_time()
    records = uvloop.run(_clients(job, start_at.value))
    with open(job.out, "wb") as f:
        pickle.dump((records, time.process_time() - cpu), f, protocol=pickle.HIGHEST_PROTOCOL)


# ---------------------------------------------------------------------------
# One run: clients, and the planner committing
# ---------------------------------------------------------------------------

@dataclass
class Commit:
    kind: str
    plan: int
    t0: float
    t1: float
    status: int
    change_ids: list[int]
    detail: str = ""


class Monitor(threading.Thread):
    """Samples the run database's sessions twice a second: those idle inside a transaction for
    over a second (a request holding a pooled connection while it waits for something else),
    with how long and their last statement."""

    def __init__(self, url: str, name: str):
        super().__init__(daemon=True)
        self.url, self.name, self.samples = url, name, []
        self.done = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.done.wait(0.5):
                rows = conn.execute(
                    "SELECT extract(epoch FROM now() - xact_start), query FROM pg_stat_activity "
                    "WHERE datname = %s AND state = 'idle in transaction' AND now() - xact_start > interval '1 s' "
                    "ORDER BY xact_start", [self.name]).fetchall()
                self.samples.append((time.monotonic(), rows))


def run(args, label: str, commit: bool, base: str, tmp: Path) -> dict:
    name, url = fresh_copy(base, label)
    proc = start_server(url, args.port)  # its warnings and tracebacks go to this console
    base_url = f"http://127.0.0.1:{args.port}"
    try:
        with httpx.Client(base_url=base_url, timeout=600) as http:
            plans = draw_plans(http, url, args.commits)
            district, boxes = areas(url, plans)
            warm_up(base_url)
        now = datetime.now(UTC)
        tag = f"{label}-{uuid.uuid4().hex[:6]}"
        ctx = mp.get_context("spawn")
        ready, go, start_at = ctx.Queue(), ctx.Event(), ctx.Value("d", 0.0)
        jobs, workers = [], []
        for p in range(args.procs):
            share = args.clients // args.procs + (1 if p < args.clients % args.procs else 0)
            job = ClientJob(base_url, share, p, args.seconds, args.seed, tag, args.mix, args.batch, args.focus,
                            district, boxes, (now - timedelta(days=30)).isoformat(),
                            (now + timedelta(days=1)).isoformat(), str(tmp / f"{tag}-{p}.pickle"))
            jobs.append(job)
            workers.append(ctx.Process(target=client_process, args=(job, ready, go, start_at)))
        for w in workers:
            w.start()
        for _ in workers:
            ready.get(timeout=120)
        start = time.monotonic() + 1.0
        start_at.value = start
        go.set()
        monitor = Monitor(url, name)
        monitor.start()
        server_cpu = cpu_seconds(proc.pid)
        commits = []
        with httpx.Client(base_url=base_url, timeout=600) as http:
            for k, plan in enumerate(plans if commit else []):
                time.sleep(max(0.0, start + args.seconds * (k + 1) / (len(plans) + 1) - time.monotonic()))
                t0 = time.monotonic()
                answer = http.post(f"/plans/{plan['id']}/commit")
                t1 = time.monotonic()
                ids = (answer.json().get("change_ids") or []) if answer.is_success else []
                commits.append(Commit(plan["kind"], plan["id"], t0, t1, answer.status_code, ids,
                                      "" if answer.is_success else answer.text[:300]))
        for w in workers:
            w.join()
        monitor.done.set()
        monitor.join()
        server_cpu = cpu_seconds(proc.pid) - server_cpu
        records, client_cpu = [], 0.0
        for job in jobs:
            with open(job.out, "rb") as f:
                got, cpu = pickle.load(f)
            records.extend(got)
            client_cpu += cpu
    finally:
        proc.terminate()
        proc.wait(30)
    result = {"label": label, "url": url, "name": name, "start": start, "records": records, "commits": commits,
              "plans": plans, "tag": tag, "idle": monitor.samples,
              "cpu": (client_cpu, server_cpu)}
    result["db"] = read_database(url, tag)
    if not args.keep:
        drop(base, name)
    return result


# ---------------------------------------------------------------------------
# After the run: what the database holds
# ---------------------------------------------------------------------------

class Version(NamedTuple):
    unit_id: int
    version: int
    level: str
    code: str
    valid_from: datetime
    valid_to: datetime | None
    closed_by: int | None
    change_id: int
    street_id: int | None
    community_id: int | None
    grid_id: int | None
    compound_id: int | None
    neighbourhood_id: int | None


def read_database(url: str, tag: str) -> dict:
    with psycopg.connect(url) as conn:
        rows = [Version(*r) for r in conn.execute(
            "SELECT unit_id, version, level, code, valid_from, valid_to, closed_by, change_id, "
            "street_id, community_id, grid_id, compound_id, neighbourhood_id FROM unit_version")]
        incidents = conn.execute(
            """
            SELECT i.id, i.external_id, i.description, i.state, i.reported_at,
                   i.street_id, i.community_id, i.grid_id, i.compound_id, i.neighbourhood_id, i.building_id,
                   coalesce(
                     (SELECT v.unit_id FROM unit_version v WHERE v.level = 'grid' AND v.valid_from <= i.reported_at
                        AND (v.valid_to IS NULL OR v.valid_to > i.reported_at) AND ST_Covers(v.geom, i.geom)
                      ORDER BY v.code LIMIT 1),
                     -- in no grid: the documented rule gives it to the nearest grid within 1 cm
                     (SELECT v.unit_id FROM unit_version v WHERE v.level = 'grid' AND v.valid_from <= i.reported_at
                        AND (v.valid_to IS NULL OR v.valid_to > i.reported_at)
                        AND ST_DWithin(v.geom::geography, i.geom::geography, 0.01)
                      ORDER BY ST_Distance(v.geom::geography, i.geom::geography) LIMIT 1))
            FROM incident i WHERE i.external_id LIKE %s OR i.description LIKE %s
            """, [f"bench-{tag}-%", f"load test bench-{tag}-%"]).fetchall()
        events = conn.execute(
            "SELECT e.incident_id, e.data FROM incident_event e JOIN incident i ON i.id = e.incident_id "
            "WHERE e.actor = 'boundary change' ORDER BY e.id").fetchall()
        open_rows = conn.execute(
            "SELECT id, external_id, reported_at, street_id, community_id, grid_id, compound_id, neighbourhood_id, "
            "building_id FROM incident WHERE state IN ('reported', 'assigned', 'in_progress')").fetchall()
        changes = dict(conn.execute("SELECT id, created_at FROM change_set").fetchall())
    by_unit = defaultdict(list)
    for v in rows:
        by_unit[v.unit_id].append(v)
    return {"versions": {(v.unit_id, v.version): v for v in rows}, "by_unit": by_unit,
            "current": {v.unit_id: v for v in rows if v.valid_to is None},
            "incidents": incidents, "events": events, "open": open_rows, "changes": changes}


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

INF = datetime.max.replace(tzinfo=UTC)


def _verdict(key: tuple, versions: dict) -> tuple[list[str], set[int], list[str], set[int]]:
    """(torn-read problems, change ids that closed a unit named, code mismatches, change ids that
    opened a unit named) of one answer."""
    chain, near = key
    named = [(lv, u) for lv, u in zip(LEVELS, chain, strict=True) if u is not None] + [("grid", g) for g in near]
    problems, closed, codes, opened = [], set(), [], set()
    lo, hi = None, INF
    for lv, (uid, version, code) in named:
        v = versions.get((uid, version))
        if v is None:
            problems.append(f"{lv} {uid} v{version} is not stored")
            continue
        if v.level != lv or v.code != code:
            problems.append(f"{lv} {uid} v{version}: answered as {lv} {code}, stored as {v.level} {v.code}")
        lo = v.valid_from if lo is None else max(lo, v.valid_from)
        hi = min(hi, v.valid_to or INF)
        if v.closed_by is not None:
            closed.add(v.closed_by)
        opened.add(v.change_id)
    if lo is not None and lo >= hi:
        problems.append("no instant when all of " + ", ".join(f"{lv} {u[0]} v{u[1]}" for lv, u in named)
                        + " were current")
    ids = {lv: u[0] for lv, u in zip(LEVELS, chain, strict=True) if u is not None}
    for lv, u in zip(LEVELS, chain, strict=True):
        v = None if u is None else versions.get((u[0], u[1]))
        if v is None:
            continue
        for p in levels.ancestors(lv):
            parent = getattr(v, f"{p}_id")
            if p in ids and parent not in (None, ids[p]):
                problems.append(f"{lv} {u[0]} v{u[1]} lies in {p} {parent}, but the answer names {p} {ids[p]}")
    for child, parent, width in (("grid", "community", 12), ("community", "street", 9)):
        c, p = chain[LEVELS.index(child)], chain[LEVELS.index(parent)]
        if c is not None and p is not None and c[2][:width] != p[2][:width]:
            codes.append(f"{child} {c[2]} in {parent} {p[2]}")
    return problems, closed, codes, opened


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def check_run(result: dict, seconds: float) -> dict:
    """Every check on one run; prints nothing, returns the counts and examples."""
    records, commits, db = result["records"], result["commits"], result["db"]
    start = result["start"]
    out: dict = {"label": result["label"], "start": start, "seconds": seconds}
    # throughput and latency count the requests sent within the run's seconds
    out["records_by_kind"] = {k: [r for r in records if r.kind == k and r.t0 < start + seconds] for k in KINDS}
    out["errors"], out["error_examples"] = _errors(records)
    out.update(_located_checks(records, commits, db["versions"]))
    out["code_static"] = _static_code_mismatches(db["current"])

    sent = [r for r in records if r.kind == "incident"]
    created = {r.incident[0]: r for r in sent if r.status == 201}
    rows = db["incidents"]
    out.update(_intake_checks(sent, created, rows))
    out.update(_units_at_intake(rows, db["events"], created, db["by_unit"]))
    out["retired"] = _retired(db["open"], db["current"])
    stored = {row[1] for row in rows}
    out["retired_bench"] = [x for x in out["retired"] if x[1] in stored]
    return out


def _errors(records: list[Record]) -> tuple[Counter, dict]:
    """Answers other than 2xx, counted by (route, status or transport error), with an example of each."""
    errors = Counter()
    examples: dict = {}
    for r in records:
        if not 200 <= r.status < 300:
            label = (ROUTES[r.kind], r.status if r.status >= 0 else r.error.split(":")[0])
            errors[label] += 1
            examples.setdefault(label, r.error)
    return errors, examples


def _located_checks(records: list[Record], commits: list[Commit], versions: dict) -> dict:
    """/locate answers: torn, stale, codes, and how often they met a unit a commit changed."""
    verdicts = {}
    done = sorted((c.t1, set(c.change_ids)) for c in commits if 200 <= c.status < 300)
    torn, stale, code_bad = [], [], Counter()
    answers = 0
    committed = set().union(*(ids for _, ids in done))
    met = Counter()  # answers naming a unit a commit closed (old) or opened (new)
    for r in records:
        before = set().union(*(ids for t1, ids in done if t1 < r.t0))
        for key in r.keys:
            answers += 1
            if key not in verdicts:
                verdicts[key] = _verdict(key, versions)
            problems, closed, codes, opened = verdicts[key]
            met["old"] += bool(closed & committed)
            met["new"] += bool(opened & committed)
            if problems:
                torn.append((r, problems))
            if closed & before:
                stale.append((r, key, closed & before))
            for c in codes:
                code_bad[c] += 1
    return {"answers": answers, "distinct": len(verdicts), "torn": torn, "stale": stale, "code_bad": code_bad,
            "met": met}


def _static_code_mismatches(current: dict) -> set[str]:
    """The code rule on the committed units themselves, whatever any answer says."""
    return {f"grid {v.code} in community {current[v.community_id].code}"
            for v in current.values() if v.level == "grid" and v.community_id in current
            and not v.code.startswith(current[v.community_id].code)}


def _intake_checks(sent: list[Record], created: dict, rows: list) -> dict:
    """Incidents counted in and stored: none lost, none stored twice, none stored without a 201."""
    by_ext = Counter(row[1] for row in rows)
    by_marker = Counter(row[2] for row in rows)
    return {"intake_other": Counter(r.status for r in sent if r.status != 201),
            "sent": len(sent), "created": len(created), "stored_rows": len(rows),
            "lost": sorted(set(created) - set(by_ext)),
            "twice": [e for e, n in by_ext.items() if n > 1] + [m for m, n in by_marker.items() if n > 1],
            "unanswered_stored": sorted(set(by_ext) - set(created))}


def _units_at_intake(rows: list, event_rows: list, created: dict, by_unit: dict) -> dict:
    """Incidents assigned to the units valid when reported (re-assignment events undone), the
    units their 201 named, and their grid against the one PostGIS finds."""
    events = defaultdict(list)
    for incident_id, data in event_rows:
        events[incident_id].append(data)
    invalid, wrong_grid, mismatch, moved = [], [], [], 0
    for row in rows:
        iid, ext, _, state, reported_at = row[:5]
        chain = dict(zip(LEVELS, row[5:11], strict=True))
        for data in reversed(events.get(iid, [])):  # undo re-assignments: the units at intake
            moved += 1
            chain.update(data.get("from", {}))
        rec = created.get(ext)
        if rec is not None and rec.incident[2] != tuple(chain[lv] for lv in LEVELS):
            mismatch.append((ext, rec.incident[2], chain))
        for lv, uid in chain.items():
            if uid is not None and not any(v.valid_from <= reported_at < (v.valid_to or INF) for v in by_unit[uid]):
                invalid.append((row[0], ext, reported_at, lv, uid))
        if chain["grid"] != row[11]:
            wrong_grid.append((row, chain["grid"]))
    return {"invalid": invalid, "wrong_grid": wrong_grid, "mismatch": mismatch, "moved": moved}


def _retired(open_rows: list, current: dict) -> list[tuple]:
    """Open incidents left on a unit a commit closed (the first such unit of each)."""
    retired = []
    for row in open_rows:
        for lv, uid in zip(LEVELS, row[3:9], strict=True):
            if uid is not None and uid not in current:
                retired.append((row[0], row[1], row[2], lv, uid))
                break
    return retired


def figures(records: list[Record], span: float) -> tuple:
    ms = np.array([(r.t1 - r.t0) * 1000 for r in records])
    return (len(records) / span if span > 0 else float("nan"), pct(ms, 50), pct(ms, 95), pct(ms, 99),
            float(ms.max()) if len(ms) else float("nan"))


def by_window(run: dict, kind: str | None, windows: list[tuple[float, float]]) -> tuple[list, list]:
    """A run's answers of one kind (None: all), sent inside the windows and outside them."""
    rs = [r for k in ([kind] if kind else KINDS) for r in run["records_by_kind"][k]]
    inside = [any(a <= r.t0 - run["start"] < b for a, b in windows) for r in rs]
    return ([r for r, i in zip(rs, inside, strict=True) if i],
            [r for r, i in zip(rs, inside, strict=True) if not i])


def latency_table(runs: list[dict], windows: list[tuple[float, float]], seconds: float) -> None:
    """Throughput and latency per kind: the commit run beside the baseline (same mix, no commit),
    over the whole run, outside the commit windows and inside them (the same seconds of both runs)."""
    span_in = sum(b - a for a, b in windows)
    periods = [("whole run", None, seconds)]
    if windows:
        periods += [("outside commits", False, seconds - span_in), ("during commits", True, span_in)]
    base = len(runs) == 2
    print()
    print("| requests | period | req/s | p50 ms | p95 ms | p99 ms | max ms |"
          + (" baseline req/s | p50 | p95 | p99 | max | req/s ratio | p99 ratio |" if base else ""))
    print("|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|---:|---:|---:|---:|" if base else ""))
    for kind in (*KINDS, None):
        for period, inside, span in periods:
            rows = []
            for run in runs:
                during, rest = by_window(run, kind, windows)
                rows.append(figures(during + rest if inside is None else during if inside else rest, span))
            cells = [f"{rows[0][0]:,.1f}"] + [f"{v:,.1f}" for v in rows[0][1:4]] + [f"{rows[0][4]:,.0f}"]
            if base:
                cells += [f"{rows[1][0]:,.1f}"] + [f"{v:,.1f}" for v in rows[1][1:4]] + [f"{rows[1][4]:,.0f}"]
                cells += [f"{rows[0][0] / rows[1][0]:.2f}", f"{rows[0][3] / rows[1][3]:.2f}"]
            print(f"| {ROUTES[kind] if kind else 'all'} | {period} | " + " | ".join(cells) + " |")


def commit_effect(runs: list[dict], windows: list[tuple[float, float]], seconds: float) -> None:
    """During the commits against the rest of the same run: both halves share the machine's
    load at the time, so this ratio drifts less than one run against another. The baseline's
    same seconds show what the ratio is without a commit."""
    span_in = sum(b - a for a, b in windows)
    if not windows or span_in <= 0 or span_in >= seconds:
        return
    print()
    print("| requests | " + " | ".join(f"{run['label']}: req/s, p50, p99 during / outside" for run in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for kind in (*KINDS, None):
        cells = []
        for run in runs:
            during, rest = by_window(run, kind, windows)
            fi, fo = figures(during, span_in), figures(rest, seconds - span_in)
            cells.append(f"{fi[0] / fo[0]:.2f}, {fi[1] / fo[1]:.2f}, {fi[3] / fo[3]:.2f}")
        print(f"| {ROUTES[kind] if kind else 'all'} | " + " | ".join(cells) + " |")


def timeline(runs: list[dict], seconds: float, step: float = 5.0) -> None:
    """Answers a second in each `step` seconds of each run (by when they were sent): stalls show here."""
    edges = np.arange(0, seconds + step / 2, step)
    print()
    print("answers/s by " + f"{step:g} s from the start (" + ", ".join(f"{e:g}" for e in edges[:-1]) + " s):")
    for run in runs:
        t = np.array([r.t0 - run["start"] for k in KINDS for r in run["records_by_kind"][k]])
        counts, _ = np.histogram(t, bins=edges)
        print(f"  {run['label']:>9}: " + " ".join(f"{c / step:,.0f}" for c in counts))


def merged(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(windows):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def report(checks: dict, result: dict) -> bool:
    label, start = checks["label"], checks["start"]
    ok = True

    def line(passed: bool, text: str, details: list[str] = ()) -> None:
        nonlocal ok
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'} [{label}] {text}" + "".join(f"\n      {d}" for d in details))

    n = sum(len(v) for v in checks["records_by_kind"].values())
    errs = checks["errors"]
    line(not errs, f"non-2xx answers: {sum(errs.values())} of {n:,} requests",
         [f"{route} {status}: {k} (e.g. {checks['error_examples'][(route, status)][:200]!r})"
          for (route, status), k in errs.most_common()])
    idle = result["idle"]
    if idle:
        t, worst = max(idle, key=lambda x: len(x[1]))
        longest = max((age for _, rows in idle for age, _ in rows), default=0.0)
        last = Counter(" ".join(q.split())[:80] for _, q in worst)
        print(f"INFO [{label}] sessions idle inside a transaction for over 1 s (sampled every 0.5 s; a commit "
              f"running is one of them): in {sum(1 for _, rows in idle if rows):,} of {len(idle):,} samples, "
              f"at most {len(worst)} ({t - start:.1f} s in), the longest {longest:.1f} s"
              + "".join(f"\n      {n} of them after {q!r}" for q, n in last.most_common(4)))
    for c in result["commits"]:
        late = c.t1 - start > checks["seconds"]
        line(200 <= c.status < 300 and not late, f"commit of plan {c.plan} ({c.kind}): {c.status} after "
             f"{c.t1 - c.t0:.2f} s, change(s) {c.change_ids} {c.detail}"
             + (f"; returned {c.t1 - start - checks['seconds']:.1f} s after the clients stopped, so no read "
                "after it was checked" if late else ""))
    line(not checks["lost"] and not checks["twice"],
         f"incidents: {checks['sent']:,} sent, {checks['created']:,} answered 201, {checks['stored_rows']:,} stored; "
         f"lost {len(checks['lost'])}, stored twice {len(checks['twice'])}"
         + (f", other answers {dict(checks['intake_other'])}" if checks["intake_other"] else ""),
         [f"lost: {e}" for e in checks["lost"][:5]] + [f"twice: {e}" for e in checks["twice"][:5]])
    line(not checks["unanswered_stored"],
         f"incidents stored without a 201 (an error or no answer): {len(checks['unanswered_stored'])}",
         checks["unanswered_stored"][:5])
    line(not checks["mismatch"], f"incidents whose 201 named other units than were stored at intake: "
         f"{len(checks['mismatch'])}", [str(m) for m in checks["mismatch"][:3]])
    line(not checks["torn"], f"torn reads: {len(checks['torn'])} of {checks['answers']:,} located points "
         f"({checks['distinct']:,} distinct answers)",
         [f"{r.kind} sent {r.t0 - start:.3f} s in: {p}" for r, ps in checks["torn"][:5] for p in ps[:2]])
    if result["commits"]:
        print(f"INFO [{label}] located points naming a unit a commit closed: {checks['met']['old']:,}; "
              f"naming a unit a commit opened or re-versioned: {checks['met']['new']:,}")
    line(not checks["stale"], f"stale reads (sent after a commit returned, naming a unit it closed): "
         f"{len(checks['stale'])}",
         [f"{ROUTES[r.kind]} sent {r.t0 - start:.3f} s in, names a unit closed by change(s) {sorted(c)}"
          for r, _, c in checks["stale"][:5]])
    codes, static = checks["code_bad"], checks["code_static"]
    answered_only = sorted(set(codes) - static)
    line(not codes and not static, f"codes: {sum(codes.values()):,} located points whose grid code does not start "
         f"with their community's code ({len(codes)} distinct grids); {len(answered_only)} of them are not so in the "
         f"committed units, which hold {len(static)} such grids after the run",
         [f"committed: {c}" for c in sorted(static)[:3]] + [f"answered only: {c}" for c in answered_only[:3]])
    line(not checks["invalid"], f"incidents whose units at intake were not current at reported_at: "
         f"{len(checks['invalid'])}", _incident_lines(checks["invalid"], result))
    line(not checks["wrong_grid"], f"incidents whose grid at intake is not the grid holding the point at "
         f"reported_at (PostGIS ST_Covers, else the nearest within 1 cm): {len(checks['wrong_grid'])}",
         [f"incident {row[0]} {row[1]}: grid {g} at intake, {row[11]} in PostGIS"
          for row, g in checks["wrong_grid"][:3]])
    line(not checks["retired"], f"open incidents left on a unit a commit closed: {len(checks['retired'])} "
         f"({len(checks['retired_bench'])} from this run's intake); re-assignment events on this run's "
         f"incidents: {checks['moved']}", _incident_lines(checks["retired"], result))
    return ok


def _incident_lines(items: list, result: dict) -> list[str]:
    """Evidence for incidents on the wrong unit: when it was reported, what closed the unit and
    when, and the client's times of the intake and of each commit (seconds from the start)."""
    db, start = result["db"], result["start"]
    created = {r.incident[0]: r for r in result["records"] if r.kind == "incident" and r.incident}
    commits = "; ".join(f"commit of plan {c.plan} sent {c.t0 - start:.3f} s, returned {c.t1 - start:.3f} s"
                        for c in result["commits"])
    lines = []
    for iid, ext, reported_at, lv, uid in items[:5]:
        closes = ", ".join(f"v{v.version} closed by change {v.closed_by} at {v.valid_to:%H:%M:%S.%f}"
                           for v in db["by_unit"][uid] if v.closed_by is not None)
        rec = created.get(ext)
        sent = f"; intake sent {rec.t0 - start:.3f} s, answered {rec.t1 - start:.3f} s" if rec else ""
        lines.append(f"incident {iid} {ext or '(sample)'}: reported_at {reported_at:%H:%M:%S.%f}, {lv} {uid} "
                     f"({closes}){sent}")
    if lines:
        lines.append(f"({commits})")
    return lines


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in KINDS:
            raise SystemExit(f"--mix: unknown kind {kind!r} (use {', '.join(KINDS)})")
        mix[kind.strip()] = float(weight)
    return mix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--procs", type=int, default=2, help="client processes the clients are spread over")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix("locate=70,batch=10,incident=15,stats=5"))
    parser.add_argument("--batch", type=int, default=50, help="points per POST /locate")
    parser.add_argument("--focus", type=float, default=0.3, help="share of points in the units the plans change")
    parser.add_argument("--commits", type=lambda s: s.split(","), default=["split", "merge"],
                        help="plans committed at T/(n+1), 2T/(n+1), ...: split, grids, merge")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds after a commit returns still counted as 'during the commit'")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without commits")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--keep", action="store_true", help="keep the run databases")
    args = parser.parse_args()
    if any(k not in ("split", "grids", "merge") for k in args.commits) or len(set(args.commits)) != len(args.commits):
        raise SystemExit("--commits: distinct kinds among split, grids, merge")

    base = database_url()
    ensure_template(base)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = []
        if not args.no_baseline:
            runs.append(run(args, "baseline", False, base, tmp))
        runs.insert(0, run(args, "commits", True, base, tmp))
        checks = [check_run(r, args.seconds) for r in runs]
        commits = runs[0]["commits"]
        start = runs[0]["start"]
        windows = merged([(min(c.t0 - start, args.seconds), min(c.t1 - start + args.settle, args.seconds))
                          for c in commits])
        print()
        print(f"{args.clients} clients in {args.procs} processes, {args.seconds:.0f} s per run, mix "
              + ", ".join(f"{ROUTES[k]} {w:g}" for k, w in args.mix.items())
              + f", {args.batch} points a POST /locate, {args.focus:.0%} of points in the changed units")
        for p in runs[0]["plans"]:
            print(f"plan {p['id']}: {p['what']}")
        for c in commits:
            print(f"commit plan {c.plan} ({c.kind}): sent at {c.t0 - runs[0]['start']:.2f} s, returned after "
                  f"{c.t1 - c.t0:.2f} s ({c.status})")
        latency_table(checks, windows, args.seconds)
        commit_effect(checks, windows, args.seconds)
        timeline(checks, args.seconds)
        print()
        for r, c in zip(runs, checks, strict=True):
            answers = sum(len(v) for v in c["records_by_kind"].values())
            client, server = r["cpu"]
            print(f"CPU [{r['label']}]: clients {client:.0f} s, server workers {server:.0f} s "
                  f"({1000 * server / max(answers, 1):.1f} ms an answer), of {2 * args.seconds:.0f} core-seconds "
                  f"on 2 cores (PostgreSQL and other users not counted)")
        print()
        ok = True
        for c, r in zip(checks, runs, strict=True):
            ok &= report(c, r)
    print("\nALL PASS" if ok else "\nSOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
