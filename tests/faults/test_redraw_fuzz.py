"""Redraw fuzzer (issue 13): a seeded random walk of redraws over the sample district, through
the real app under uvicorn (auth off, as the other fault tests run it), checking after every
commit that nothing the redraw pipeline must keep was broken.

The walk applies FUZZ_REDRAW_STEPS changes (default 60), each one of:

- split plans: a community into communities or into grids, a grid into grids or into small
  neighbourhoods (POST /plans/split);
- merge plans of undersized communities, grids or small neighbourhoods (POST /plans/merge);
- partial plan edits: one vertex shared by two or more proposed units moved by 5-40 cm,
  only the changed features uploaded, in WGS84 or in GCJ-02 (PUT /plans/{id}/units);
- commits and discards of draft plans (POST /plans/{id}/commit, /discard);
- unit edits (PUT /units/{id}): a rename, or a boundary nudge that moves one boundary point
  by 5-40 cm in every unit of every level that has it, so coverage stays exact;
- incidents reported (POST /incidents, about a third in GCJ-02 as WeChat sends them) and moved
  through their lifecycle (POST /incidents/{id}/transitions); workers attached (POST /workers).

After every commit (a plan committed, a unit edited) it checks the invariants of
tests/redraw_checks.py: /validate finds nothing but units outside their band; every code
agrees with its chain of parents; every level exported and loaded into an empty database
gives the same units; every open incident lies in current units that hold its point; every
active worker is on a current unit; /stats counts every stored incident once; the committed
plan's record matches what is now current, and its comparison stays what it was at commit
(checked again at the end of the walk). Each new incident is checked as it is reported
(GCJ-02 ones must land on the WGS84 point they were made from), and a merge that leaves a
unit alone for want of a neighbour must be right about it. No answer may be a 5xx (the walk
stops at once, with the request, saved whole, and the server's log). A 4xx is fine for an
action the walk picked that is not allowed, and is counted by reason, except a commit refused
with 422 for a plan that reported no missed target.

The walk goes on after an invariant fails, and reports each kind of failure once, with the
step that first showed it and the steps before it; FUZZ_REDRAW_SEED (default 20261125) and
the step number reproduce it. Run it long, with its summary printed:

    make fuzz-redraw                                   # FUZZ_REDRAW_STEPS=500
    FUZZ_REDRAW_STEPS=1000 FUZZ_REDRAW_SEED=7 make fuzz-redraw
    FUZZ_REDRAW_SKIP="edit plan,merge" make fuzz-redraw   # leave kinds of change out
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import shapely
from psycopg.conninfo import conninfo_to_dict
from shapely.geometry import Point, mapping, shape

from geo.coords import datums
from geo.db.rows import dicts
from geo.incidents.lifecycle import OPEN_STATES, STATES, TRANSITIONS
from geo.units.levels import LEVELS, PARENT_COLUMNS, PARENTS
from tests import redraw_checks as checks
from tests.conftest import launch_server, stop_server

STEPS = int(os.environ.get("FUZZ_REDRAW_STEPS", "60"))
SEED = int(os.environ.get("FUZZ_REDRAW_SEED", "20261125"))
# kinds of change to leave out, comma-separated (e.g. "edit plan" while a known 5xx there is fixed)
SKIP = {k.strip() for k in os.environ.get("FUZZ_REDRAW_SKIP", "").split(",") if k.strip()}

# no building within about a metre of what a nudge or an edit bends
BUILDING_CLEAR_DEG = (checks.WARP_M + 1) / checks.M_PER_DEG
FIT_M = 0.6  # an edit's vertices may be snapped to its neighbours' within 0.5 m
EDITABLE = ("street", "community", "grid", "compound", "neighbourhood")  # levels a nudge moves
CATEGORIES = ("manhole", "road_damage", "garbage", "noise", "water_leak", "street_light", "dispute",
              "parking", "illegal_building", "fire_hazard", "other")
CHANNELS = ("wechat", "app", "patrol", "rider", "hotline")


def to_gcj02(geom: Any) -> Any:
    """A WGS84 geometry in GCJ-02, as a WeChat mini-program or Amap would send it."""
    return shapely.transform(geom, lambda xy: np.column_stack(datums.wgs84_to_gcj02(xy[:, 0], xy[:, 1])))


class ServerError(AssertionError):
    """A 5xx: the walk stops at once."""


@dataclass
class Target:
    """The app the walk runs against, and where it works."""

    url: str
    base: str
    log: Path
    work: Path
    new_empty_db: Any  # () -> url of a new empty migrated database
    drop_db: Any  # (url) -> None


@pytest.fixture(scope="module")
def redraw_target(databases, sample_template, empty_template, tmp_path_factory):
    """The app over its own copy of the sample district, and empty databases to load exports into."""
    url = databases.url(databases.create(template=sample_template, prefix="gridmap_redraw"))
    work = tmp_path_factory.mktemp("redraw")
    log = work / "server.log"
    proc, base = launch_server(url, log=log)

    def new_empty_db() -> str:
        return databases.url(databases.create(template=empty_template, prefix="gridmap_redraw_load"))

    def drop_db(db_url: str) -> None:
        name = conninfo_to_dict(db_url)["dbname"]
        with psycopg.connect(databases.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    yield Target(url, base, log, work, new_empty_db, drop_db)
    stop_server(proc)


# ---- the walk -----------------------------------------------------------------------------------

@dataclass
class Finding:
    """One kind of failure, as first seen, and how often it was seen again."""

    invariant: str
    signature: str
    step: int
    action: str
    message: str
    seen: int = 1


@dataclass
class Tally:
    """What the walk did and what it was answered, for the summary."""

    changes: Counter = field(default_factory=Counter)  # kind -> attempts
    outcomes: Counter = field(default_factory=Counter)  # (kind, status) -> n
    refusals: Counter = field(default_factory=Counter)  # (kind, status, reason) -> n
    checks: Counter = field(default_factory=Counter)  # invariant -> times checked
    commits: Counter = field(default_factory=Counter)  # what was committed -> n


def _reason(body: str) -> str:
    """A 4xx's reason with its numbers and codes blanked, so equal reasons count together."""
    text = body
    try:
        data = json.loads(body)
        text = f"{data.get('error')}: {data.get('detail')}" if isinstance(data, dict) else body
    except ValueError:
        pass
    text = re.sub(r"\d+(\.\d+)?", "#", str(text))
    return text[:140]


class Walk:
    """The seeded walk: its actions, the checks after each commit, what it found."""

    def __init__(self, target: Target, rng: random.Random):
        self.target = target
        self.rng = rng
        self.client = httpx.Client(base_url=target.base, timeout=600,
                                   event_hooks={"response": [self._no_server_error]})
        self.conn = psycopg.connect(target.url, autocommit=True)
        self.step = 0
        self.action = "setup"
        self.log: list[str] = []
        self.tally = Tally()
        self.findings: dict[tuple[str, str], Finding] = {}
        self.records: dict[int, dict[str, Any]] = {}  # committed plan id: its comparison at commit
        self.started = time.monotonic()

    def close(self) -> None:
        self.client.close()
        self.conn.close()

    # -- HTTP, with every 5xx fatal and every 4xx counted --------------------------------------

    def _no_server_error(self, response: httpx.Response) -> None:
        if response.status_code < 500:
            return
        response.read()
        request = response.request
        saved = self.target.work / f"step-{self.step}-request.json"
        saved.write_bytes(request.content or b"")
        for _ in range(20):  # the server logs the traceback just after it answers
            text = self.target.log.read_text(errors="replace")
            if "Traceback" in text:
                break
            time.sleep(0.1)
        lines = [line for line in text.splitlines() if "rolling back returned connection" not in line]
        raise ServerError(
            f"step {self.step} ({self.action}): {request.method} {request.url} "
            f"{(request.content or b'')[:1000]!r} (the whole body: {saved})\n"
            f"-> {response.status_code} {response.text[:3000]}\n"
            f"--- the walk ---\n" + "\n".join(self.log) + "\n--- server log ---\n" + "\n".join(lines[-80:]))

    def send(self, kind: str, method: str, path: str, body: Any = None) -> httpx.Response:
        answer = self.client.request(method, path, json=body)
        self.tally.outcomes[(kind, answer.status_code)] += 1
        if 400 <= answer.status_code < 500:
            self.tally.refusals[(kind, answer.status_code, _reason(answer.text))] += 1
        return answer

    def note(self, text: str) -> None:
        self.log.append(f"{self.step:4d} {text}")

    def found(self, problems: list[checks.Problem]) -> None:
        for p in problems:
            key = (p.invariant, p.signature)
            if key in self.findings:
                self.findings[key].seen += 1
            else:
                self.findings[key] = Finding(p.invariant, p.signature, self.step, self.action, p.message)
                self.note(f"  FOUND [{p.invariant}] {p.signature}: {p.message[:300]}")

    # -- reading the state (ordered, so the walk is the same every time) -------------------------

    def units(self, level: str, where: str = "true", params: list[Any] | None = None) -> list[dict[str, Any]]:
        return dicts(self.conn, f"SELECT unit_id, version, code, name, households, street_id, community_id "
                                f"FROM unit_version WHERE valid_to IS NULL AND level = %s AND {where} "
                                f"ORDER BY unit_id", [level, *(params or [])])

    def geoms(self, where: str, params: list[Any]) -> list[dict[str, Any]]:
        rows = dicts(self.conn, f"SELECT unit_id, level, version, code, {', '.join(PARENT_COLUMNS.values())}, "
                                "ST_AsBinary(geom) AS wkb FROM unit_version "
                                f"WHERE valid_to IS NULL AND {where} ORDER BY unit_id", params)
        for r in rows:
            r["geom"] = shapely.from_wkb(bytes(r.pop("wkb")))
        return rows

    def drafts(self) -> list[dict[str, Any]]:
        return self.client.get("/plans", params={"status": "draft"}).json()  # newest first

    def pick_draft(self) -> dict[str, Any] | None:
        drafts = self.drafts()
        if not drafts:
            return None
        return drafts[0] if self.rng.random() < 0.75 else self.rng.choice(drafts)

    # -- the invariants ---------------------------------------------------------------------------

    def check_all(self, plan: tuple[int, int] | None = None) -> None:
        """Every invariant, after a commit (`plan`: the plan id and revision just committed)."""
        runs = [("validate", lambda: checks.validation(self.client)),
                ("chain", lambda: checks.chains(self.conn)),
                ("incident", lambda: checks.incidents(self.conn)),
                ("worker", lambda: checks.workers(self.conn)),
                ("stats", lambda: checks.stats(self.client, self.conn)),
                ("export", self._export_roundtrip)]
        if plan is not None:
            runs.append(("plan", lambda: checks.plan_record(self.client, self.conn, *plan)))
        for name, run in runs:
            self.tally.checks[name] += 1
            self.found(run())

    def _export_roundtrip(self) -> list[checks.Problem]:
        url = self.target.new_empty_db()
        folder = self.target.work / f"export-{self.step}"
        folder.mkdir()
        try:
            return checks.export_roundtrip(self.conn, url, folder)
        finally:
            self.target.drop_db(url)
            shutil.rmtree(folder, ignore_errors=True)

    # -- setting up: workers and the first incidents ---------------------------------------------

    def setup(self) -> None:
        for g in self.units("grid"):
            if self.rng.random() < 0.4:
                self._attach("grid_worker", g)
        for c in self.units("community"):
            if self.rng.random() < 0.3:
                self._attach("community_worker", c)
        for n in self.rng.sample(self.units("neighbourhood"), 15):
            self._attach("neighbourhood_head", n)
        for _ in range(25):
            self.report()
        self.note(f"setup: {self.tally.outcomes[('worker', 201)]} workers, 25 incidents")
        self.check_all()

    def _attach(self, role: str, unit: dict[str, Any]) -> httpx.Response:
        return self.send("worker", "POST", "/workers",
                         {"name": f"{role}-{unit['code']}", "role": role, "unit_id": unit["unit_id"]})

    # -- the actions ------------------------------------------------------------------------------

    def split(self, unit: dict[str, Any], into: str) -> None:
        ask: dict[str, Any] = {"unit": unit["code"], "into": into, "seed": self.rng.randrange(5)}
        if self.rng.random() < 0.2:
            ask["parts"] = self.rng.randint(2, 5)
        answer = self.send("split", "POST", "/plans/split", ask)
        body = answer.json()
        missed = body.get("metrics", {}).get("targets_missed") if answer.status_code == 201 else None
        self.note(f"split {unit['code']} ({unit['households']} hh) {ask} -> "
                  f"{answer.status_code} " + (f"plan {body['id']}, {len(body['units'])} units, missed {missed}"
                                              if answer.status_code == 201 else answer.text[:200]))

    def split_communities(self) -> None:
        big = self.units("community", "households > 5000")
        self.split(self.rng.choice(big if big and self.rng.random() < 0.7 else self.units("community")),
                   "communities")

    def split_community_grids(self) -> None:
        self.split(self.rng.choice(self.units("community")), "grids")

    def split_grid_grids(self) -> None:
        big = self.units("grid", "households > 500")
        self.split(self.rng.choice(big if big and self.rng.random() < 0.7 else self.units("grid")), "grids")

    def split_neighbourhoods(self) -> None:
        self.split(self.rng.choice(self.units("grid")), "neighbourhoods")

    def merge(self) -> None:
        level = self.rng.choice(("community", "grid", "neighbourhood"))
        floor = self.rng.choice({"community": (1000, 1500, 2000), "grid": (200, 300, 350),
                                 "neighbourhood": (10, 20, 30)}[level])
        body: dict[str, Any] = {"level": level, "floor": floor}
        if self.rng.random() < 0.5:  # a smaller plan: only inside one street, or one community
            within = "street" if level != "neighbourhood" else "community"
            body["within"] = self.rng.choice(self.units(within))["unit_id"]
        answer = self.send("merge", "POST", "/plans/merge", body)
        plan = answer.json()
        self.note(f"merge {body} -> {answer.status_code} " + (
            f"plan {plan['id']}, {len(plan['units'])} groups" if answer.status_code == 201 else answer.text[:200]))
        if answer.status_code == 201:
            self.found(checks.merge_refusals(self.conn, plan["notes"], {r["code"] for r in plan["replaces"]}))
        elif answer.status_code == 422:
            self.found(checks.merge_refusals(self.conn, [str(plan.get("detail"))], set()))

    def edit_plan(self) -> None:
        draft = self.pick_draft()
        if draft is None:
            return self.note("edit plan: no draft")
        plan_id, revision = draft["id"], draft["revision"]
        features = {f["properties"]["code"]: shape(f["geometry"])
                    for f in self.client.get(f"/plans/{plan_id}/units").json()["features"]}
        move = self._shared_point(draft["level"], features)
        if move is None:
            return self.note(f"edit plan {plan_id}: no inner shared point to move")
        warp, changed = move
        v = warp.v
        gcj = self.rng.random() < 0.4
        stale = self.rng.random() < 0.1 and revision > 1
        body: dict[str, Any] = {"revision": revision - 1 if stale else revision, "features": [
            {"type": "Feature", "properties": {"code": code}, "geometry": mapping(to_gcj02(g) if gcj else g)}
            for code, g in changed.items()]}
        if gcj or self.rng.random() < 0.5:
            body["crs"] = "gcj02" if gcj else "wgs84"
        answer = self.send("edit plan", "PUT", f"/plans/{plan_id}/units", body)
        missed = answer.json().get("metrics", {}).get("targets_missed") if answer.status_code == 200 else None
        self.note(f"edit plan {plan_id} rev {body['revision']} ({'gcj02' if gcj else 'wgs84'}): "
                  f"{sorted(changed)} point {v[0]:.7f},{v[1]:.7f} moved -> {answer.status_code} "
                  + (f"rev {answer.json()['revision']}, missed {missed}" if answer.status_code == 200
                     else answer.text[:200]))
        if answer.status_code == 200:
            self.found(self._edit_landed(plan_id, answer.json()["revision"], set(features), changed,
                                         body.get("crs") or "wgs84"))

    def _edit_landed(self, plan_id: int, revision: int, codes: set[str], changed: dict[str, Any],
                     crs: str) -> list[checks.Problem]:
        """The uploaded polygons are in the new revision where they were sent (GCJ-02 ones converted
        back to the WGS84 they were made from): no vertex further than the 0.5 m an edit may be
        fitted by (snapped to its neighbours), and the centroid within 5 cm, which a datum slip
        (the one-step GCJ-02 inverse is off by about 1 m here) would not be; and the plan kept
        every other unit."""
        stored = {f["properties"]["code"]: shape(f["geometry"]) for f in self.client.get(
            f"/plans/{plan_id}/units", params={"revision": revision}).json()["features"]}
        problems = []
        if set(stored) != codes:
            problems.append(checks.Problem("edit", "a partial plan edit changed the plan's units",
                                           f"plan {plan_id} rev {revision}: {sorted(codes ^ set(stored))}"))
        for code, meant in changed.items():
            if code not in stored:
                continue
            far = checks.metres(shapely.hausdorff_distance(meant, stored[code]), meant.centroid.y)
            shift = checks.metres(meant.centroid.distance(stored[code].centroid), meant.centroid.y)
            if far > FIT_M or shift > 0.05:
                problems.append(checks.Problem("edit", f"{crs} plan edit stored off", f"plan {plan_id} rev {revision}: "
                                               f"{code} up to {far:.2f} m from the upload, centroid {shift:.3f} m"))
        return problems

    def _shared_point(self, level: str, features: dict[str, Any]) -> tuple[Any, dict[str, Any]] | None:
        """A point where two or more proposed units meet, away from buildings and from the plan's
        outline, bent 5-40 cm (tests/redraw_checks.py `Warp`) without opening a gap or an overlap;
        the warp and the proposed units it changes."""
        area = checks.Near("plan area", shapely.union_all(list(features.values())))
        before = {code: checks.Near(level, g, ("",)) for code, g in features.items()} | {"": area}
        codes = sorted(features)
        for _ in range(20):
            ring = list(shapely.get_parts(features[self.rng.choice(codes)])[0].exterior.coords)[:-1]
            v = self.rng.choice(ring)
            if len(checks.touching(features, v)) < 2 or self._buildings_near(v):
                continue
            warp = checks.nudge(self.rng, v)
            disc = warp.disc()
            changed = {c: warp.apply(g) for c, g in features.items() if g.boundary.intersects(disc)}
            if all(g.is_valid for g in changed.values()) and not checks.damage(
                    before, changed, tiles={(level, "plan area")}):
                return warp, changed
        return None

    def _buildings_near(self, v: tuple[float, float]) -> bool:
        return bool(dicts(self.conn, "SELECT 1 FROM unit_version WHERE valid_to IS NULL AND level = 'building' "
                                     "AND ST_DWithin(geom, ST_SetSRID(ST_Point(%s, %s), 4326), %s) LIMIT 1",
                          [v[0], v[1], BUILDING_CLEAR_DEG]))

    def commit(self) -> None:
        draft = self.pick_draft()
        if draft is None:
            return self.note("commit: no draft")
        plan = self.client.get(f"/plans/{draft['id']}").json()
        missed = plan["metrics"].get("targets_missed")
        before = self.client.get(f"/plans/{plan['id']}/compare")
        body = {"revision": plan["revision"]} if self.rng.random() < 0.5 else None
        answer = self.send("commit", "POST", f"/plans/{plan['id']}/commit", body)
        what = f"{plan['kind']} {plan['level']} plan {plan['id']} rev {plan['revision']}"
        self.note(f"commit {what} (missed {missed}) -> {answer.status_code} "
                  + ("" if answer.status_code == 200 else answer.text[:300]))
        if answer.status_code == 422 and missed == []:
            self.found([checks.Problem("commit", f"422 for a plan missing no target: {_reason(answer.text)}",
                                       f"{what}: {answer.text[:500]}")])
        if answer.status_code == 200:
            self.tally.commits[f"{plan['kind']} {plan['level']}"] += 1
            if before.status_code == 200:
                self.records[plan["id"]] = checks.compared(before.json())
                self.found(self._compare_again(plan["id"], "at commit"))
            self.check_all(plan=(plan["id"], plan["revision"]))

    def _compare_again(self, plan_id: int, when: str) -> list[checks.Problem]:
        self.tally.checks["plan compare"] += 1
        answer = self.client.get(f"/plans/{plan_id}/compare")
        if answer.status_code != 200:
            return [checks.Problem("plan", f"compare of a committed plan answers {answer.status_code}",
                                   f"plan {plan_id}: {answer.text[:300]}")]
        return checks.plan_compare(plan_id, self.records[plan_id], checks.compared(answer.json()), when)

    def recheck_records(self) -> None:
        """At the end: every committed plan's comparison is still what it was at commit."""
        self.action = "end of walk"
        for plan_id in sorted(self.records):
            self.found(self._compare_again(plan_id, "after later changes"))

    def discard(self) -> None:
        drafts = self.drafts()
        if not drafts:
            return self.note("discard: no draft")
        plan = self.rng.choice(drafts[1:] or drafts)
        answer = self.send("discard", "POST", f"/plans/{plan['id']}/discard")
        self.note(f"discard plan {plan['id']} -> {answer.status_code}")

    def rename(self) -> None:
        level = self.rng.choice(("community", "grid", "compound", "neighbourhood"))
        unit = self.rng.choice(self.units(level))
        name = f"{unit['name'].split('·')[0]}·{self.step}"
        answer = self.send("rename", "PUT", f"/units/{unit['unit_id']}",
                           {"version": unit["version"], "name": name, "note": "fuzz rename"})
        self.note(f"rename {level} {unit['code']} to {name} -> {answer.status_code} "
                  + ("" if answer.status_code == 200 else answer.text[:200]))
        if answer.status_code == 200:
            self.tally.commits["unit rename"] += 1
            self.check_all()

    def nudge(self) -> None:
        """Move one boundary point 5-40 cm, bending every unit (street to small neighbourhood)
        around it alike, one PUT /units each, coarsest first; undo the ones done if one is refused."""
        move = self._boundary_point()
        if move is None:
            return self.note("nudge: no clear boundary point found")
        warp, rows = move
        v, to = warp.v, (warp.v[0] + warp.d[0], warp.v[1] + warp.d[1])
        done: list[dict[str, Any]] = []
        for r in rows:
            answer = self.send("nudge", "PUT", f"/units/{r['unit_id']}",
                               {"version": r["version"], "geometry": mapping(r["moved"]), "note": "fuzz nudge"})
            if answer.status_code != 200:
                self.note(f"nudge {v[0]:.7f},{v[1]:.7f}: {r['level']} {r['code']} -> {answer.status_code} "
                          f"{answer.text[:300]}; undoing {len(done)}")
                self._undo(done)
                return
            done.append(r | {"version": answer.json()["version"]})
        self.note(f"nudge {v[0]:.7f},{v[1]:.7f} -> {to[0]:.7f},{to[1]:.7f} in "
                  + ", ".join(f"{r['level']} {r['code']}" for r in rows) + " -> 200")
        self.tally.commits["unit boundary nudge"] += 1
        self.check_all()

    def _undo(self, done: list[dict[str, Any]]) -> None:
        for r in reversed(done):
            answer = self.send("nudge undo", "PUT", f"/units/{r['unit_id']}",
                               {"version": r["version"], "geometry": mapping(r["geom"]), "note": "fuzz undo"})
            if answer.status_code != 200:
                self.found([checks.Problem("nudge", "undoing a nudge refused",
                                           f"{r['level']} {r['code']}: {answer.text[:300]}")])

    def _boundary_point(self) -> tuple[Any, list[dict[str, Any]]] | None:
        """A point on a grid's boundary, away from buildings, where the map can bend 5-40 cm
        (tests/redraw_checks.py `Warp`) without opening a gap, an overlap or an overhang; the warp
        and the units it changes (coarsest first), each with its geometry `moved`."""
        grids = self.units("grid")
        for _ in range(30):
            grid = self.geoms("unit_id = %s", [self.rng.choice(grids)["unit_id"]])[0]
            v = self.rng.choice(list(shapely.get_parts(grid["geom"])[0].exterior.coords)[:-1])
            if self._buildings_near(v):
                continue
            warp = checks.nudge(self.rng, v)
            disc = warp.disc()
            around = self.geoms("geom && ST_Expand(ST_MakeEnvelope(%s, %s, %s, %s, 4326), %s)",
                                [*disc.bounds, 1e-6])
            moved = {r["unit_id"]: warp.apply(r["geom"]) for r in around
                     if r["level"] in EDITABLE and r["geom"].boundary.intersects(disc)}
            if not moved or not all(g.is_valid for g in moved.values()):
                continue
            before = {r["unit_id"]: checks.Near(r["level"], r["geom"],
                                                tuple(r[PARENT_COLUMNS[p]] for p in PARENTS[r["level"]]))
                      for r in around}
            if checks.damage(before, moved):
                continue
            rows = [r | {"moved": moved[r["unit_id"]]} for r in around if r["unit_id"] in moved]
            return warp, sorted(rows, key=lambda r: (LEVELS.index(r["level"]), r["unit_id"]))
        return None

    def report(self) -> None:
        lon, lat, where = self._position()
        gcj = self.rng.random() < 0.35
        x, y = datums.wgs84_to_gcj02(lon, lat) if gcj else (lon, lat)
        body = {"category": self.rng.choice(CATEGORIES), "lon": x, "lat": y, "crs": "gcj02" if gcj else "wgs84",
                "channel": "wechat" if gcj else self.rng.choice(CHANNELS), "description": f"fuzz {self.step}"}
        answer = self.send("report", "POST", "/incidents", body)
        if answer.status_code != 201:
            return self.note(f"report {where} -> {answer.status_code} {answer.text[:200]}")
        incident = answer.json()
        grid = (incident.get("grid") or {}).get("code")
        self.note(f"report {where} {body['crs']} {lon:.6f},{lat:.6f} -> incident {incident['id']} "
                  f"grid {grid} {incident['state']}")
        off = math.hypot(incident["wgs84"]["lon"] - lon, incident["wgs84"]["lat"] - lat)
        if off > 1e-8:
            self.found([checks.Problem("incident", f"{body['crs']} position stored off",
                                       f"incident {incident['id']}: {off:.2e} deg from {lon},{lat}")])
        self.found(checks.incidents(self.conn, only=incident["id"]))

    def _position(self) -> tuple[float, float, str]:
        """Mostly inside a grid; some anywhere around the district, a few outside it."""
        r = self.rng.random()
        box = dicts(self.conn, "SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1 FROM "
                               "(SELECT ST_Extent(geom) AS e FROM unit_version WHERE valid_to IS NULL "
                               "AND level = 'street') s")[0]
        if r < 0.05:
            return box["x1"] + self.rng.uniform(0.002, 0.01), self.rng.uniform(box["y0"], box["y1"]), "outside"
        if r < 0.15:
            return self.rng.uniform(box["x0"], box["x1"]), self.rng.uniform(box["y0"], box["y1"]), "anywhere"
        grid = self.geoms("unit_id = %s", [self.rng.choice(self.units("grid"))["unit_id"]])[0]
        x0, y0, x1, y1 = grid["geom"].bounds
        for _ in range(100):
            x, y = self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)
            if grid["geom"].contains(Point(x, y)):
                break
        return x, y, f"in {grid['code']}"

    def transition(self) -> None:
        rows = dicts(self.conn, "SELECT id FROM incident WHERE state = ANY(%s) ORDER BY id", [list(OPEN_STATES)])
        if not rows or self.rng.random() < 0.25:
            rows = dicts(self.conn, "SELECT id FROM incident ORDER BY id")
        incident = self.client.get(f"/incidents/{self.rng.choice(rows)['id']}").json()
        to = self.rng.choice(TRANSITIONS[incident["state"]] if self.rng.random() < 0.9 else STATES)
        version = incident["version"] - (1 if self.rng.random() < 0.05 and incident["version"] > 1 else 0)
        answer = self.send("transition", "POST", f"/incidents/{incident['id']}/transitions",
                           {"to": to, "version": version, "actor": "网格员", "note": f"fuzz {self.step}"})
        self.note(f"incident {incident['id']} {incident['state']} -> {to} -> {answer.status_code} "
                  + ("" if answer.status_code == 200 else answer.text[:200]))

    def add_worker(self) -> None:
        role = self.rng.choice(("grid_worker", "grid_worker", "community_worker", "neighbourhood_head"))
        level = {"grid_worker": "grid", "community_worker": "community", "neighbourhood_head": "neighbourhood"}[role]
        unit = self.rng.choice(self.units(level))
        answer = self._attach(role, unit)
        self.note(f"worker {role} on {unit['code']} -> {answer.status_code}")

    ACTIONS: dict[str, tuple[str, int, bool]] = {
        # kind: (method, weight, needs a draft plan)
        "split communities": ("split_communities", 4, False),
        "split community into grids": ("split_community_grids", 4, False),
        "split grid into grids": ("split_grid_grids", 3, False),
        "split grid into neighbourhoods": ("split_neighbourhoods", 3, False),
        "merge": ("merge", 4, False),
        "edit plan": ("edit_plan", 8, True),
        "commit": ("commit", 14, True),
        "discard": ("discard", 2, True),
        "rename unit": ("rename", 3, False),
        "nudge boundary": ("nudge", 5, False),
        "report incident": ("report", 12, False),
        "move incident": ("transition", 10, False),
        "add worker": ("add_worker", 2, False),
    }

    def take_step(self) -> None:
        self.step += 1
        has_draft = bool(self.drafts())
        kinds = [k for k, (_, _, needs) in self.ACTIONS.items() if (has_draft or not needs) and k not in SKIP]
        kind = self.rng.choices(kinds, weights=[self.ACTIONS[k][1] for k in kinds])[0]
        self.action = kind
        self.tally.changes[kind] += 1
        getattr(self, self.ACTIONS[kind][0])()

    # -- what it found ---------------------------------------------------------------------------

    def summary(self) -> str:
        t = self.tally
        lines = [f"redraw fuzzer: seed {SEED}, {self.step} changes in {time.monotonic() - self.started:.0f} s"
                 + (f", leaving out {', '.join(sorted(SKIP))}" if SKIP else ""),
                 "changes by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(t.changes.items())),
                 "answers: " + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(t.outcomes.items())),
                 "commits: " + (", ".join(f"{k} {n}" for k, n in sorted(t.commits.items())) or "none"),
                 "invariants checked: " + ", ".join(f"{k} {n}" for k, n in sorted(t.checks.items())),
                 "4xx by reason:"]
        lines += [f"  {n:3d}x {k} {s} {reason}" for (k, s, reason), n in t.refusals.most_common()]
        lines.append(f"distinct failures: {len(self.findings)}")
        for f in sorted(self.findings.values(), key=lambda f: f.step):
            lines.append(f"  step {f.step} ({f.action}) [{f.invariant}] {f.signature} "
                         f"(seen {f.seen}x): {f.message[:400]}")
        return "\n".join(lines)


def test_redraw_walk_keeps_every_invariant(redraw_target):
    walk = Walk(redraw_target, random.Random(SEED))
    try:
        walk.setup()
        while walk.step < STEPS:
            walk.take_step()
        walk.recheck_records()
    finally:
        report = walk.summary()
        print("\n--- the walk ---\n" + "\n".join(walk.log) + "\n" + report)
        walk.close()
    assert not walk.findings, report + "\n--- the walk ---\n" + "\n".join(walk.log)
