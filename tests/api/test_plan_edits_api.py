"""Editing plans over real HTTP and the real `gridmap` command (issue 13, items 4 and 7): a
QGIS user's partial edit (only the changed features) answers 200 with a new revision, in WGS84
or GCJ-02; a polygon that cannot be used answers 422 naming the feature, never 500, and the
command prints the error without a traceback; a plan reports before commit what commit would
refuse, and a commit of an older revision is refused in words about the commit."""

from __future__ import annotations

import json
import re

import httpx
import psycopg
import pytest
import shapely
import shapely.affinity

from geo.usecases import plans
from tests.conftest import launch_server, run_cli, stop_server
from tests.db.test_plan_edits import feature, gcj02, to_metric, to_wgs84, with_spike


@pytest.fixture(scope="module")
def site(databases, sample_template, tmp_path_factory):
    """The real app over its own copy of the sample district; the codes of its oversized communities."""
    url = databases.url(databases.create(template=sample_template))
    with psycopg.connect(url) as conn:
        big = [r[0] for r in conn.execute("SELECT code FROM unit_version WHERE valid_to IS NULL "
                                          "AND level = 'community' AND households > 3000 ORDER BY code")]
    log = tmp_path_factory.mktemp("plan-edits") / "server.log"
    proc, base = launch_server(url, log=log)
    with httpx.Client(base_url=base, timeout=120) as http:
        yield {"http": http, "url": url, "big": big, "log": log}
    stop_server(proc)
    assert "Traceback" not in log.read_text(errors="replace")


def _draw(site, k: int) -> tuple[dict, list[dict]]:
    """A plan splitting the k-th oversized community into grids, and its export."""
    http = site["http"]
    r = http.post("/plans/split", json={"unit": site["big"][k], "into": "grids"})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["metrics"]["targets_missed"] == []
    return plan, http.get(f"/plans/{plan['id']}/units").json()["features"]


def test_a_partial_edit_of_one_feature_sent_back_unchanged_answers_200_and_a_new_revision(site):
    http = site["http"]
    plan, features = _draw(site, 0)
    r = http.put(f"/plans/{plan['id']}/units", json={"revision": 1, "features": [features[0]]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["revision"] == 2 and body["metrics"]["targets_missed"] == []
    assert body["metrics"]["households"] == plan["metrics"]["households"]
    assert body["metrics"]["edit"]["codes"] == [features[0]["properties"]["code"]]
    # a second edit on the new revision, of another feature, exported again
    again = http.get(f"/plans/{plan['id']}/units").json()["features"]
    r = http.put(f"/plans/{plan['id']}/units", json={"revision": 2, "features": [again[-1]]})
    assert r.status_code == 200 and r.json()["revision"] == 3, r.text


def test_a_gcj02_edit_answers_200(site):
    http = site["http"]
    plan, features = _draw(site, 1)
    f = features[1]
    sent = feature(f["properties"]["code"], gcj02(shapely.geometry.shape(f["geometry"])))
    r = http.put(f"/plans/{plan['id']}/units", json={"revision": 1, "features": [sent], "crs": "gcj02"})
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 2 and r.json()["metrics"]["targets_missed"] == []
    assert r.json()["metrics"]["households"] == plan["metrics"]["households"]


def test_a_polygon_that_cannot_be_used_answers_422_naming_the_feature(site):
    http = site["http"]
    plan, features = _draw(site, 2)
    code = features[0]["properties"]["code"]
    x0, y0, x1, y1 = shapely.geometry.shape(features[0]["geometry"]).bounds
    bowtie = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    far = shapely.affinity.translate(shapely.geometry.shape(features[0]["geometry"]), xoff=0.05)
    cases = [
        (feature(code, bowtie), rf"feature 1 \({code}\): invalid geometry \(Self-intersection"),
        (feature(code, far), rf"feature 1 \({code}\): nothing of it lies inside the area the plan redraws"),
        (features[0] | {"geometry": {"type": "Polygon", "coordinates": [[1, 2]]}},
         rf"feature 1 \({code}\): geometry is not valid GeoJSON"),
    ]
    for sent, detail in cases:
        r = http.put(f"/plans/{plan['id']}/units", json={"revision": 1, "features": [sent]})
        assert r.status_code == 422, r.text
        assert re.match(detail, r.json()["detail"]), r.json()["detail"]
    assert http.get(f"/plans/{plan['id']}").json()["revision"] == 1


def test_a_plan_reports_what_its_commit_would_refuse(site):
    http = site["http"]
    plan, features = _draw(site, 3)
    with psycopg.connect(site["url"]) as conn:
        ctx = plans.load_context(conn, plan["parent_id"])
    along = ctx.outline.boundary.buffer(0.01)
    shapes = {f["properties"]["code"]: to_metric(shapely.geometry.shape(f["geometry"]), ctx.metric) for f in features}
    code = next(c for c in sorted(shapes) if shapes[c].boundary.intersection(along).length > 10)
    moved = to_wgs84(with_spike(shapes[code], ctx.outline, 3.0), ctx.metric)
    r = http.put(f"/plans/{plan['id']}/units", json={"revision": 1, "features": [feature(code, moved)]})
    assert r.status_code == 200, r.text
    m = r.json()["metrics"]
    [problem] = m["commit_problems"]
    assert re.match(rf"grid {code}: reaches 3\.\d m outside its community {plan['unit']} ", problem), problem
    assert m["targets_missed"] == [f"commit would be refused: {problem}"]
    refused = http.post(f"/plans/{plan['id']}/commit", json={"revision": 2})
    assert refused.status_code == 422
    assert problem.split(": ", 1)[1] in refused.json()["detail"]
    stale = http.post(f"/plans/{plan['id']}/commit", json={"revision": 1})
    assert stale.status_code == 409
    assert stale.json()["detail"] == (f"plan {plan['id']} is at revision 2, but the commit was asked for revision 1: "
                                      "review revision 2 and commit it")


def test_gridmap_plan_edit_takes_a_partial_edit_and_prints_errors_without_a_traceback(site, tmp_path):
    plan, features = _draw(site, 4)
    env = {"DATABASE_URL": site["url"]}
    good = tmp_path / "one.geojson"
    good.write_text(json.dumps({"type": "FeatureCollection", "features": [features[2]]}), encoding="utf-8")
    out = run_cli("plan", "edit", str(plan["id"]), str(good), "--revision", "1", env=env)
    assert out.returncode == 0, out.stderr
    assert "revision 2" in out.stderr and "every quality target met" in out.stderr
    code = features[2]["properties"]["code"]
    x0, y0, x1, y1 = shapely.geometry.shape(features[2]["geometry"]).bounds
    bad = tmp_path / "bowtie.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature(code, shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)]))]}), encoding="utf-8")
    out = run_cli("plan", "edit", str(plan["id"]), str(bad), "--revision", "2", env=env)
    assert out.returncode == 2
    assert f"feature 1 ({code}): invalid geometry" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("plan", "commit", str(plan["id"]), "--revision", "1", env=env)
    assert out.returncode == 2 and "the commit was asked for revision 1" in out.stderr
    assert "Traceback" not in out.stderr
