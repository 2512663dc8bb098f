"""A retired unit's URL (issue 13, item 9), over the real app and the sample district: a plan
redraws the grids of one community, then two of the new grids are merged. GET /units/{id} of
a retired grid answers 410 Gone with its last version, when it was retired, links to its
history and lineage, and the current units it became (followed through the merge); an id
that never existed stays 404."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import psycopg
import pytest
import shapely
from shapely.ops import unary_union

from geo.units.model import UnitInput
from geo.usecases import boundaries, plans
from tests.conftest import launch_server, stop_server


@pytest.fixture(scope="module")
def retired(databases, sample_template):
    """(base URL, database URL, a retired grid, its direct successors, the merged grid, the two it merged)."""
    url = databases.url(databases.create(template=sample_template))
    with psycopg.connect(url, autocommit=True) as conn:
        community = conn.execute("SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'community' "
                                 "ORDER BY households DESC LIMIT 1").fetchone()[0]
        old = [r[0] for r in conn.execute(
            "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'grid' AND community_id = %s",
            [community])]
        plans.commit_plan(conn, plans.draw_split(conn, community, "grid", seed=0)["id"])
        # the retired grid with the most successors, and two of them that touch, merged
        grid, direct = max(((g, [r[0] for r in conn.execute(
            "SELECT to_unit_id FROM unit_lineage WHERE from_unit_id = %s ORDER BY 1", [g])]) for g in old),
            key=lambda x: (len(x[1]), -x[0]))
        assert len(direct) >= 2
        rows = conn.execute(
            "SELECT a.unit_id, b.unit_id, a.code, ST_AsBinary(a.geom), ST_AsBinary(b.geom), a.households, "
            "b.households FROM unit_version a JOIN unit_version b ON a.unit_id < b.unit_id "
            "AND ST_Length(ST_Intersection(ST_Boundary(a.geom), ST_Boundary(b.geom))) > 0 "
            "WHERE a.valid_to IS NULL AND b.valid_to IS NULL AND a.unit_id = ANY(%s) AND b.unit_id = ANY(%s) "
            "ORDER BY 1, 2 LIMIT 1", [direct, direct]).fetchone()
        a, b, code, wkb_a, wkb_b, h_a, h_b = rows
        merged_geom = unary_union([shapely.from_wkb(bytes(wkb_a)), shapely.from_wkb(bytes(wkb_b))])
        used = {r[0] for r in conn.execute("SELECT code FROM unit_version WHERE code LIKE %s", [code[:12] + "%"])}
        code = next(c for n in range(1, 1000) if (c := f"{code[:12]}{n:03d}") not in used)  # a code never used
        with conn.transaction():
            summary = boundaries.replace_units(conn, [a, b], [
                UnitInput("grid", code, "合并网格", merged_geom, households=(h_a or 0) + (h_b or 0))], kind="merge")
        merged = summary.created[0]
    proc, base = launch_server(url)
    yield base, url, grid, direct, merged, (a, b)
    stop_server(proc)


@pytest.fixture
def client(retired):
    with httpx.Client(base_url=retired[0], timeout=60) as http:
        yield http


def test_a_retired_unit_answers_410_with_its_last_version_and_where_it_went(retired, client):
    _, url, grid, direct, merged, pair = retired
    answer = client.get(f"/units/{grid}")
    assert answer.status_code == 410, answer.text
    body = answer.json()
    assert body["error"] == "Gone"
    history = client.get(body["links"]["history"])
    assert history.status_code == 200
    last = history.json()[-1]
    # the last version, as a current unit's answer would show it
    for key in ("unit_id", "version", "level", "code", "name", "households", "population", "valid_from",
                "valid_to", "community_id", "geometry", "attributes"):
        assert body[key] == last[key], key
    assert body["geometry"]["type"] == "MultiPolygon"
    assert datetime.fromisoformat(body["retired_at"]) == datetime.fromisoformat(last["valid_to"])
    # its successors: the direct ones still current, and the merged grid for the two merged away
    expected = sorted({*direct, merged} - set(pair))
    assert sorted(s["unit_id"] for s in body["successors"]) == expected
    for successor in body["successors"]:
        now = client.get(successor["url"])
        assert now.status_code == 200 and now.json()["code"] == successor["code"]
    lineage = client.get(body["links"]["lineage"]).json()
    assert sorted(u["unit_id"] for u in lineage["to"]) == direct
    assert body["links"]["history"] in body["detail"] and body["code"] in body["detail"]


def test_a_unit_retired_by_a_merge_points_to_the_merged_unit(retired, client):
    _, _, _, _, merged, pair = retired
    for unit_id in pair:
        body = client.get(f"/units/{unit_id}").json()
        assert body["error"] == "Gone" and [s["unit_id"] for s in body["successors"]] == [merged]
        assert body["successors"][0]["url"] == f"/units/{merged}"


def test_as_of_reads_a_retired_unit_while_it_stood_and_410_after(retired, client):
    _, _, grid, _, merged, _ = retired
    body = client.get(f"/units/{grid}").json()
    while_it_stood = datetime.fromisoformat(body["retired_at"]) - timedelta(seconds=1)
    then = client.get(f"/units/{grid}", params={"as_of": while_it_stood.isoformat()})
    assert then.status_code == 200 and then.json()["unit_id"] == grid
    after = client.get(f"/units/{grid}", params={"as_of": body["retired_at"]})
    assert after.status_code == 410 and after.json()["unit_id"] == grid
    # a unit asked for before it existed was not retired: 404
    merged_from = client.get(f"/units/{merged}").json()["valid_from"]
    before = datetime.fromisoformat(merged_from) - timedelta(seconds=1)
    assert client.get(f"/units/{merged}", params={"as_of": before.isoformat()}).status_code == 404


def test_an_id_that_never_existed_stays_404(client):
    answer = client.get("/units/999999999")
    assert answer.status_code == 404 and answer.json()["error"] == "NotFound"


def test_openapi_documents_the_410_and_the_answer_fits_it(retired, client):
    _, _, grid, _, _, _ = retired
    document = client.get("/openapi.json").json()
    gone = document["paths"]["/units/{unit_id}"]["get"]["responses"]["410"]
    schema = gone["content"]["application/json"]["schema"]
    body = client.get(f"/units/{grid}").json()
    assert set(schema["required"]) <= set(body)
    types = {"integer": int, "string": str, "object": dict, "array": list}
    for key, spec in schema["properties"].items():
        assert isinstance(body[key], types[spec["type"]]), key
    item = schema["properties"]["successors"]["items"]
    for successor in body["successors"]:
        assert set(item["required"]) <= set(successor)


def test_an_edit_of_a_retired_unit_answers_410_naming_what_it_became(retired, client):
    _, _, grid, direct, merged, _ = retired
    answer = client.put(f"/units/{grid}", json={"version": 1, "name": "还在吗"})
    assert answer.status_code == 410, answer.text
    body = answer.json()
    assert "was retired" in body["detail"] and "can no longer change" in body["detail"]
    assert body["retired_at"] and body["successors"]
    assert {u["unit_id"] for u in body["successors"]} <= set(direct) | {merged}
