"""Planning against the real sample district in a real PostGIS: split, merge, validate,
plans, commit, stale and failed commits."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
import shapely

from geo.coords import crs
from geo.errors import Conflict, InvalidInput
from geo.usecases import plan_edits, plans, validation
from geo.usecases import units as unit_work

OVERSIZED = 3000


def _oversized(conn) -> list[tuple[int, str, int]]:
    return conn.execute(
        "SELECT unit_id, code, households FROM unit_version WHERE valid_to IS NULL AND level = 'community' "
        "AND households > %s ORDER BY code", [OVERSIZED]
    ).fetchall()


def _state(conn) -> tuple:
    """Everything a failed commit must leave as it was."""
    return conn.execute(
        "SELECT (SELECT count(*) FROM unit_version), (SELECT count(*) FROM unit_version WHERE valid_to IS NULL), "
        "(SELECT count(*) FROM change_set), (SELECT count(*) FROM unit_lineage), "
        "(SELECT md5(string_agg(id::text || coalesce(valid_to::text, ''), ',' ORDER BY id)) FROM unit_version)"
    ).fetchone()


def test_split_every_oversized_community_meets_every_target(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        big = _oversized(conn)
        assert len(big) == 15
        for unit_id, code, households in big:
            plan = plans.draw_split(conn, unit_id, "grid", band=(300, 500), seed=0)
            m = plan["metrics"]
            assert m["targets_missed"] == [], (code, m["targets_missed"], plan["notes"])
            assert all(300 <= h <= 500 for h in m["households"]), code
            assert sum(m["households"]) == households, code
            assert m["contiguous"] == m["parts"]
            assert m["compounds_split"] == [] and m["buildings_split"] == []
            assert m["road_or_wall_share"] >= 0.70
            assert m["polsby_popper_mean"] >= 0.5 and m["polsby_popper_min"] >= 0.3
            assert m["gap_m2"] <= 1.0 and m["overlap_m2"] <= 1.0
            assert plan["status"] == "draft" and plan["kind"] == "redraw"
            # codes: the community's code + 3 digits, each once
            assert all(u["code"].startswith(code) and len(u["code"]) == 15 for u in plan["units"])
            assert len({u["code"] for u in plan["units"]}) == len(plan["units"])


def test_split_is_deterministic_for_a_seed(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        unit_id = _oversized(conn)[0][0]
        a = json.loads(plans.plan_geojson(conn, plans.draw_split(conn, unit_id, "grid", seed=3)["id"]))
        b = json.loads(plans.plan_geojson(conn, plans.draw_split(conn, unit_id, "grid", seed=3)["id"]))
    ga = [shapely.geometry.shape(f["geometry"]) for f in a["features"]]
    gb = [shapely.geometry.shape(f["geometry"]) for f in b["features"]]
    assert len(ga) == len(gb)
    assert all(x.equals_exact(y, 1e-9) for x, y in zip(ga, gb, strict=True))


def test_commit_split_opens_new_grids_with_lineage_and_valid_coverage(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        unit_id, code, households = _oversized(conn)[0]
        old = conn.execute(
            "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'grid' AND community_id = %s",
            [unit_id]).fetchall()
        plan = plans.draw_split(conn, unit_id, "grid", seed=0)
        compared = plans.compare(conn, plan["id"])
        assert compared["households_moved"] >= 0
        assert sum(sum(u["from"].values()) for u in compared["units"]) == households
        done = plans.commit_plan(conn, plan["id"])
        assert done["status"] == "committed" and done["change_id"]
        grids = conn.execute(
            "SELECT unit_id, code, households FROM unit_version WHERE valid_to IS NULL AND level = 'grid' "
            "AND community_id = %s ORDER BY code", [unit_id]).fetchall()
        assert [g[1] for g in grids] == [u["code"] for u in plan["units"]]
        assert all(g[0] not in {o[0] for o in old} for g in grids)
        # the old grids are closed, not deleted, and lineage links them to the new ones
        closed = conn.execute(
            "SELECT count(*) FROM unit_version WHERE unit_id = ANY(%s) AND valid_to IS NOT NULL",
            [[o[0] for o in old]]).fetchone()[0]
        assert closed == len(old)
        links = conn.execute("SELECT count(*) FROM unit_lineage WHERE from_unit_id = ANY(%s)",
                             [[o[0] for o in old]]).fetchone()[0]
        assert links >= len(grids)
        # buildings and neighbourhoods now hang from the new grids
        orphan = conn.execute(
            "SELECT count(*) FROM unit_version WHERE valid_to IS NULL AND level IN ('building', 'neighbourhood') "
            "AND grid_id = ANY(%s)", [[o[0] for o in old]]).fetchone()[0]
        assert orphan == 0
        report = validation.validate(conn, "grid")
        assert report["counts"].get("gap", 0) == 0 and report["counts"].get("overlap", 0) == 0, report["counts"]
        with pytest.raises(Conflict):
            plans.commit_plan(conn, plan["id"])  # committed already


def test_stale_commit_is_refused_and_changes_nothing(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        unit_id = _oversized(conn)[1][0]
        plan = plans.draw_split(conn, unit_id, "grid", seed=0)
        # someone edits one of the grids after the plan was drawn
        gid, version = conn.execute(
            "SELECT unit_id, version FROM unit_version WHERE valid_to IS NULL AND level = 'grid' "
            "AND community_id = %s ORDER BY code LIMIT 1", [unit_id]).fetchone()
        unit_work.edit_unit(conn, gid, expected_version=version, name="renamed grid")
        before = _state(conn)
        with pytest.raises(Conflict, match="draw the plan again"):
            plans.commit_plan(conn, plan["id"])
        assert _state(conn) == before
        assert plans.get_plan(conn, plan["id"])["status"] == "draft"


def test_failed_commit_leaves_the_store_unchanged(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        unit_id = _oversized(conn)[2][0]
        plan = plans.draw_split(conn, unit_id, "grid", seed=0)
        fc = json.loads(plans.plan_geojson(conn, plan["id"]))
        # shrink one unit: the plan now leaves a gap, which commit must refuse
        f = fc["features"][0]
        g = shapely.geometry.shape(f["geometry"])
        lon, lat = g.centroid.coords[0]
        metric = crs.local_metric(lon, lat)
        g_m = crs.transform(np.array([g], dtype=object), crs.WGS84, metric)[0]
        smaller = crs.transform(np.array([g_m.buffer(-15)], dtype=object), metric, crs.WGS84)[0]
        f["geometry"] = shapely.geometry.mapping(smaller)
        edited = plan_edits.edit_plan(conn, plan["id"], [f], expected_revision=1)
        assert edited["revision"] == 2
        # an edit made on the old revision is stale
        with pytest.raises(Conflict, match="revision"):
            plan_edits.edit_plan(conn, plan["id"], [f], expected_revision=1)
        before = _state(conn)
        with pytest.raises(InvalidInput, match="gap"):
            plans.commit_plan(conn, plan["id"])
        assert _state(conn) == before
        # the first revision is still on record
        first = json.loads(plans.plan_geojson(conn, plan["id"], revision=1))
        assert len(first["features"]) == len(fc["features"])


def test_merge_undersized_communities_yields_valid_coverage(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        small = conn.execute(
            "SELECT code, households FROM unit_version WHERE valid_to IS NULL AND level = 'community' "
            "AND households < 1000").fetchall()
        assert len(small) == 4
        plan = plans.draw_merge(conn, "community", floor=1000)
        merges = plan["metrics"]["merges"]
        # every undersized community is merged (as the small one or the receiving one) or explained
        named = {m["small"] for m in merges} | {m["into"] for m in merges} | {n.split()[1] for n in plan["notes"]}
        assert named >= {s[0] for s in small}
        assert all(m["households"] <= 5000 for m in merges)
        assert plan["metrics"]["households_moved"] == sum(
            h for c, h in small if c in {m["small"] for m in merges})
        before = validation.validate(conn, "community")["counts"]
        plans.commit_plan(conn, plan["id"])
        after = validation.validate(conn, "community")
        assert after["counts"].get("gap", 0) == before.get("gap", 0) == 0
        assert after["counts"].get("overlap", 0) == 0 and after["counts"].get("invalid_edge", 0) == 0
        left = conn.execute(
            "SELECT count(*) FROM unit_version WHERE valid_to IS NULL AND level = 'community' "
            "AND households < 1000").fetchone()[0]
        assert left < len(small)
        # grids now lie in the merged communities
        report = validation.validate(conn, "grid")
        assert report["counts"].get("outside_parent", 0) == 0 and report["counts"].get("gap", 0) == 0


def test_validation_finds_planted_gaps_and_overlaps(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        assert validation.validate(conn, "grid")["counts"].get("gap", 0) == 0
        rows = conn.execute(
            "SELECT unit_id, version, code, ST_AsBinary(geom) FROM unit_version WHERE valid_to IS NULL "
            "AND level = 'grid' AND code LIKE '420199001001%%' ORDER BY code").fetchall()
        (a_id, _, a_code, a_wkb), (b_id, _, b_code, b_wkb) = rows[0], rows[1]
        a = shapely.from_wkb(bytes(a_wkb))
        b = shapely.from_wkb(bytes(b_wkb))
        lon, lat = a.centroid.coords[0]
        metric = crs.local_metric(lon, lat)
        a_m, b_m = crs.transform(np.array([a, b], dtype=object), crs.WGS84, metric)
        # plant a gap: cut a 20 m square hole out of grid A (nothing else covers it)
        c = a_m.representative_point()
        hole = shapely.box(c.x - 10, c.y - 10, c.x + 10, c.y + 10)
        # and an overlap: grow B into A by 8 m along their shared edge
        grown = shapely.intersection(b_m.union(shapely.intersection(a_m, b_m.buffer(8))), a_m.union(b_m))
        new_a, new_b = crs.transform(np.array([a_m.difference(hole), grown], dtype=object), metric, crs.WGS84)
        with conn.transaction():
            conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for uid, geom in ((a_id, new_a), (b_id, new_b)):
                conn.execute("UPDATE unit_version SET geom = ST_Multi(ST_GeomFromWKB(%s, 4326)) "
                             "WHERE unit_id = %s AND valid_to IS NULL", [shapely.to_wkb(geom), uid])
        report = validation.validate(conn, "grid")
        gaps = [f for f in report["features"] if f["properties"]["problem"] == "gap"]
        overlaps = [f for f in report["features"] if f["properties"]["problem"] == "overlap"]
        assert len(gaps) >= 1 and any(abs(f["properties"]["area_m2"] - 400) < 5 for f in gaps)
        assert len(overlaps) == 1 and set(overlaps[0]["properties"]["codes"]) == {a_code, b_code}
        assert overlaps[0]["properties"]["area_m2"] > 100
        # each problem carries a location a map can show, inside the grid's community
        lon_, lat_ = gaps[0]["properties"]["location"]
        assert abs(lon_ - lon) < 0.01 and abs(lat_ - lat) < 0.01
        assert report["valid"] is False


def _grid_buildings(conn, grid_id: int) -> list[tuple]:
    return conn.execute(
        "SELECT unit_id, version, code, households, attributes FROM unit_version WHERE valid_to IS NULL "
        "AND level = 'building' AND grid_id = %s ORDER BY code", [grid_id]).fetchall()


def _plan_parts(conn, plan_id: int, metric) -> list[tuple[str, int, object]]:
    units = json.loads(plans.plan_geojson(conn, plan_id))["features"]
    geoms = crs.transform(np.array([shapely.geometry.shape(u["geometry"]) for u in units], dtype=object),
                          crs.WGS84, metric)
    return [(u["properties"]["code"], u["properties"]["households"], g) for u, g in zip(units, geoms, strict=True)]


def test_split_grids_into_small_neighbourhoods(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        grids = conn.execute("SELECT unit_id, code FROM unit_version WHERE valid_to IS NULL AND level = 'grid' "
                             "ORDER BY code").fetchall()
        drawn = 0
        for grid_id, code in grids[::12]:
            ctx = plans.load_context(conn, grid_id)
            if not any((c.households or 0) > 0 for c in ctx.compounds):
                with pytest.raises(InvalidInput, match="no residential compound"):
                    plans.draw_split(conn, grid_id, "neighbourhood")
                continue
            plan = plans.draw_split(conn, grid_id, "neighbourhood", seed=0)
            drawn += 1
            m = plan["metrics"]
            assert all(10 <= h <= 80 for h in m["households"]), (code, m["households"], plan["notes"])
            assert sum(m["households"]) == sum(b[3] for b in _grid_buildings(conn, grid_id)), code
            assert m["contiguous"] == m["parts"], code
            assert m["gap_m2"] <= 1.0 and m["overlap_m2"] <= 1.0 and m["outside_m2"] <= 1.0, code
            assert m["between_dwellings_share"] >= 0.7, code
            assert m["polsby_popper_mean"] >= 0.5, code
            # a small neighbourhood never crosses a compound wall
            compounds = [c for c in ctx.compounds if (c.households or 0) > 0]
            for ncode, _, geom in _plan_parts(conn, plan["id"], ctx.metric):
                inside = [c.code for c in compounds if shapely.intersection(c.geom, geom).area > 1.0]
                assert len(inside) == 1, (ncode, inside)
                assert ncode.startswith(inside[0]) and ncode[len(inside[0])] == "N"
        assert drawn >= 25


def test_commit_small_neighbourhoods_of_a_grid(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        grid_id, code = conn.execute(
            "SELECT unit_id, code FROM unit_version WHERE valid_to IS NULL AND level = 'grid' ORDER BY code "
            "OFFSET 40 LIMIT 1").fetchone()
        old = [r[0] for r in conn.execute("SELECT unit_id FROM unit_version WHERE valid_to IS NULL "
                                          "AND level = 'neighbourhood' AND grid_id = %s", [grid_id]).fetchall()]
        plan = plans.draw_split(conn, grid_id, "neighbourhood", seed=0)
        assert plan["kind"] == "redraw" and {r["unit_id"] for r in plan["replaces"]} == set(old)
        plans.commit_plan(conn, plan["id"])
        new = conn.execute(
            "SELECT code, households, compound_id, grid_id FROM unit_version WHERE valid_to IS NULL "
            "AND level = 'neighbourhood' AND grid_id = %s ORDER BY code", [grid_id]).fetchall()
        assert sorted(r[0] for r in new) == sorted(u["code"] for u in plan["units"])
        assert all(r[2] is not None for r in new)  # each hangs from its compound
        assert sum(r[1] for r in new) == sum(b[3] for b in _grid_buildings(conn, grid_id))
        closed = conn.execute("SELECT count(*) FROM unit_version WHERE unit_id = ANY(%s) AND valid_to IS NOT NULL",
                              [old]).fetchone()[0]
        assert closed == len(old)
        report = validation.validate(conn, "neighbourhood")
        mine = [f for f in report["features"] if f["properties"]["problem"] in ("gap", "overlap", "outside_parent")
                and any(c.startswith(code[:12])
                        for c in f["properties"].get("codes", [f["properties"].get("code", "")]))]
        assert mine == []


def test_neighbourhood_split_explains_an_entrance_over_the_ceiling(sample_url):
    # a tower whose every entrance (单元) holds 99 households: no small neighbourhood can be
    # drawn inside the band around it, so each entrance stands alone, 19 over, and the plan
    # names the entrance instead of blaming the grouping
    with psycopg.connect(sample_url, autocommit=True) as conn:
        grid_id = conn.execute("SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'grid' "
                               "ORDER BY code LIMIT 1").fetchone()[0]
        b_id, version, b_code, _, attrs = max(_grid_buildings(conn, grid_id), key=lambda b: b[3])
        entrances = int(attrs["entrances"])
        unit_work.edit_unit(conn, b_id, expected_version=version, households=99 * entrances,
                        attributes=attrs | {"households_per_floor": 99 * entrances // 33, "floors": 33})
        plan = plans.draw_split(conn, grid_id, "neighbourhood", seed=0)
        m = plan["metrics"]
        over = [h for h in m["households"] if h > 80]
        assert over == [99] * entrances, m["households"]
        assert sum(1 for n in plan["notes"] if f"of building {b_code} alone has 99 households" in n
                   and "never drawn through an entrance" in n) == entrances, plan["notes"]
        assert all(10 <= h <= 80 for h in m["households"] if h != 99)
        assert m["targets_missed"] == [f"{entrances} part(s) outside 10-80 households"], m["targets_missed"]


def test_planning_over_http(server):
    import httpx

    with httpx.Client(base_url=server, timeout=60) as http:
        units = http.get("/units", params={"level": "community"}).json()["features"]
        big = max(units, key=lambda f: f["properties"]["households"])["properties"]
        r = http.post("/plans/split", json={"unit": big["code"], "into": "grids", "households": "300-500"})
        assert r.status_code == 201, r.text
        plan = r.json()
        assert plan["status"] == "draft" and plan["metrics"]["targets_missed"] == []
        preview = http.get(f"/plans/{plan['id']}/units")
        assert preview.headers["content-type"].startswith("application/geo+json")
        fc = preview.json()
        assert len(fc["features"]) == len(plan["units"]) and fc["revision"] == 1
        compared = http.get(f"/plans/{plan['id']}/compare").json()
        assert sum(u["households"] for u in compared["units"]) == big["households"]
        assert http.get("/plans", params={"status": "draft"}).json()[0]["id"] == plan["id"]
        # bad input gets a 4xx naming the problem
        bad = http.post("/plans/split", json={"unit": big["code"], "into": "grids", "households": "500-300"})
        assert bad.status_code == 422 and "floor" in bad.json()["detail"]
        bad = http.post("/plans/split", json={"unit": big["code"], "into": "streets"})
        assert bad.status_code == 422 and "split into" in bad.json()["detail"]
        assert http.post("/plans/split", json={"unit": "999999999999"}).status_code == 404
        bad = http.put(f"/plans/{plan['id']}/units", json={"revision": 1, "features": [
            {"type": "Feature", "properties": {"code": "nope"}, "geometry": fc["features"][0]["geometry"]}]})
        assert bad.status_code == 422 and "nope" in bad.json()["detail"]
        stale = http.put(f"/plans/{plan['id']}/units", json={"revision": 7, "features": fc["features"][:1]})
        assert stale.status_code == 409
        assert http.post("/plans/split", content=b"{not json", headers={"content-type": "application/json"}
                         ).status_code == 422
        # commit applies it; a second commit is refused
        done = http.post(f"/plans/{plan['id']}/commit", json={"revision": 1})
        assert done.status_code == 200, done.text
        assert http.post(f"/plans/{plan['id']}/commit").status_code == 409
        grids = http.get("/units", params={"level": "grid", "within": big["id"]}).json()["features"]
        assert sorted(g["properties"]["code"] for g in grids) == sorted(u["code"] for u in plan["units"])
        # validation over HTTP, as GeoJSON
        report = http.get("/validate", params={"level": "grid"})
        assert report.status_code == 200 and report.json()["type"] == "FeatureCollection"
        assert report.json()["counts"].get("gap", 0) == 0
        assert http.get("/validate", params={"level": "planet"}).status_code == 422
        # bad merges and unknown plans: a clear 4xx, and no plan stored
        count = len(http.get("/plans").json())
        bad = http.post("/plans/merge", json={"level": "community", "floor": 6000, "ceiling": 5000})
        assert bad.status_code == 422 and "floor" in bad.json()["detail"]
        bad = http.post("/plans/merge", json={"level": "building"})
        assert bad.status_code == 422 and "building" in bad.json()["detail"]
        assert http.post("/plans/merge", json={"level": "community", "flor": 10}).status_code == 422
        assert len(http.get("/plans").json()) == count
        assert http.get("/plans/999999").status_code == 404
        assert http.get("/plans/999999/compare").status_code == 404
        assert http.post("/plans/999999/commit").status_code == 404
        assert http.get("/plans", params={"status": "maybe"}).status_code == 422
        # merge, then discard
        merged = http.post("/plans/merge", json={"level": "community", "floor": 1000})
        assert merged.status_code == 201 and merged.json()["kind"] == "merge"
        assert http.post(f"/plans/{merged.json()['id']}/discard").json()["status"] == "discarded"


def test_planning_cli(sample_url):
    from tests.conftest import run_cli

    with psycopg.connect(sample_url) as conn:
        code = _oversized(conn)[0][1]
    out = run_cli("plan", "split", code, "--into", "grids", "--households", "300-500")
    assert out.returncode == 0, out.stderr
    assert "every quality target met" in out.stderr
    plan_id = int(out.stderr.split("plan ")[1].split()[0])
    shown = run_cli("plan", "show", str(plan_id))
    assert shown.returncode == 0 and "households that would change unit" in shown.stderr
    committed = run_cli("plan", "commit", str(plan_id))
    assert committed.returncode == 0, committed.stderr
    again = run_cli("plan", "commit", str(plan_id))
    assert again.returncode == 2 and "committed" in again.stderr
    checked = run_cli("validate", "--level", "grid")
    assert checked.returncode == 0, checked.stderr
    bad = run_cli("plan", "split", code, "--into", "streets")
    assert bad.returncode == 2 and "split into" in bad.stderr
