"""Boundaries are versioned, never overwritten; lineage records splits and merges."""

from datetime import timedelta

import psycopg
import pytest
import shapely

from geo.db import units
from geo.errors import Conflict, InvalidInput
from geo.units.model import UnitInput
from geo.usecases import boundaries
from geo.usecases import units as unit_work
from geo.usecases.units import load_file
from tests import shapes


@pytest.fixture
def small(db_url, tmp_path):
    """One street, one community, two grids (hand-made, metres around Wuhan)."""
    load_file(shapes.write(tmp_path / "s.geojson", shapes.street_rows()), "street")
    load_file(shapes.write(tmp_path / "c.geojson", shapes.community_rows()), "community")
    load_file(shapes.write(tmp_path / "g.geojson", shapes.grid_rows()), "grid")
    return db_url


def _grid(conn, code):
    return conn.execute(
        "SELECT unit_id, version FROM unit_version WHERE code = %s AND valid_to IS NULL", [code]
    ).fetchone()


def test_boundary_change_keeps_the_old_version_readable_as_of_earlier(small):
    code = shapes.COMMUNITY + "001"
    with psycopg.connect(small) as conn:
        unit_id, version = _grid(conn, code)
        before = conn.execute("SELECT now()").fetchone()[0]
        conn.commit()
        old = units.get_unit(conn, unit_id)
        new_geom = shapes.rect(0, 0, 250, 400)
        with conn.transaction():
            result = unit_work.edit_unit(conn, unit_id, expected_version=version, geom=new_geom,
                                     households=520, note="grid grows east by 50 m")
        assert result["version"] == version + 1

        now_geom = shapely.geometry.shape(units.get_unit(conn, unit_id)["geometry"])
        then = units.get_unit(conn, unit_id, as_of=before)
        then_geom = shapely.geometry.shape(then["geometry"])
        assert then["version"] == version and then["households"] == 450
        assert then_geom.equals_exact(shapely.geometry.shape(old["geometry"]), 1e-12)
        assert abs(shapes.to_metres(now_geom).area - 250 * 400) < 1
        assert abs(shapes.to_metres(then_geom).area - 200 * 400) < 1

        history = units.history(conn, unit_id)
        assert [h["version"] for h in history] == [1, 2]
        assert history[0]["valid_to"] == history[1]["valid_from"]
        assert history[1]["valid_to"] is None
        # the export as of the earlier time still shows the old boundary
        rows = units.units_rows(conn, "grid", as_of=before)
        assert {r["code"]: r["version"] for r in rows}[code] == 1
        rows_now = units.units_rows(conn, "grid")
        assert {r["code"]: r["version"] for r in rows_now}[code] == 2
        # and a time before anything was loaded shows nothing
        assert units.units_rows(conn, "grid", as_of=history[0]["valid_from"] - timedelta(seconds=1)) == []


def test_stale_edit_is_refused_and_changes_nothing(small):
    code = shapes.COMMUNITY + "002"
    with psycopg.connect(small) as conn:
        unit_id, version = _grid(conn, code)
        with conn.transaction():
            unit_work.edit_unit(conn, unit_id, expected_version=version, name="改名网格")
        with pytest.raises(Conflict, match="version 2.*version 1"):
            with conn.transaction():
                unit_work.edit_unit(conn, unit_id, expected_version=version, name="过期的编辑")
        assert units.get_unit(conn, unit_id)["name"] == "改名网格"
        assert len(units.history(conn, unit_id)) == 2


def test_edit_that_leaves_a_child_outside_is_refused(small, tmp_path):
    """Shrinking the community would leave its grid 2 outside: refused, nothing changes."""
    with psycopg.connect(small) as conn:
        unit_id, version = conn.execute(
            "SELECT unit_id, version FROM unit_version WHERE level = 'community' AND valid_to IS NULL"
        ).fetchone()
        with pytest.raises(InvalidInput, match=r"leaves its grid 420199001001002 outside \(reaches 200\.0 m outside"):
            with conn.transaction():
                unit_work.edit_unit(conn, unit_id, expected_version=version, geom=shapes.rect(0, 0, 200, 400))
        assert len(units.history(conn, unit_id)) == 1


def test_reloading_an_unchanged_file_adds_no_version_and_a_changed_one_adds_one(small, tmp_path):
    rows = shapes.grid_rows()
    again = load_file(shapes.write(tmp_path / "same.geojson", shapes.grid_rows()), "grid")
    assert (again["created"], again["changed"], again["unchanged"]) == (0, 0, 2)
    rows[1]["households"] = 470
    changed = load_file(shapes.write(tmp_path / "changed.geojson", rows), "grid")
    assert (changed["created"], changed["changed"], changed["unchanged"]) == (0, 1, 1)
    with psycopg.connect(small) as conn:
        versions = dict(conn.execute(
            "SELECT code, max(version) FROM unit_version WHERE level = 'grid' GROUP BY code"
        ).fetchall())
    assert versions == {shapes.COMMUNITY + "001": 1, shapes.COMMUNITY + "002": 2}


def test_split_records_lineage_and_moves_children_to_the_new_units(small):
    with psycopg.connect(small) as conn:
        old_id = conn.execute(
            "SELECT unit_id FROM unit_version WHERE level = 'community' AND valid_to IS NULL"
        ).fetchone()[0]
        before = conn.execute("SELECT now()").fetchone()[0]
        conn.commit()
        west = UnitInput("community", "420199001002", "西社区", shapes.rect(0, 0, 200, 400), 450)
        east = UnitInput("community", "420199001003", "东社区", shapes.rect(200, 0, 400, 400), 450)
        with conn.transaction():
            summary = boundaries.replace_units(conn, [old_id], [west, east], kind="split", note="test split")
        new_ids = summary.created
        assert len(new_ids) == 2
        assert {r["unit_id"] for r in units.lineage(conn, old_id)["to"]} == set(new_ids)
        for new_id in new_ids:
            assert [r["unit_id"] for r in units.lineage(conn, new_id)["from"]] == [old_id]
        # the old community is gone now, readable as of before
        assert units.units_rows(conn, "community", as_of=before)[0]["unit_id"] == old_id
        assert {r["unit_id"] for r in units.units_rows(conn, "community")} == set(new_ids)
        # each grid now belongs to the new community it lies in, and its code follows it (it
        # keeps its sequence); as of before, it had its old code under the old community
        now = {r["code"]: r["community_id"] for r in units.units_rows(conn, "grid")}
        codes = dict(conn.execute(
            "SELECT unit_id, code FROM unit_version WHERE unit_id = ANY(%s)", [new_ids]).fetchall())
        assert codes[now["420199001002001"]] == "420199001002"
        assert codes[now["420199001003002"]] == "420199001003"
        then = {r["code"]: r["community_id"] for r in units.units_rows(conn, "grid", as_of=before)}
        assert then == {shapes.COMMUNITY + "001": old_id, shapes.COMMUNITY + "002": old_id}
        assert sorted((r["from"], r["to"]) for r in summary.recoded) == [
            (shapes.COMMUNITY + "001", "420199001002001"), (shapes.COMMUNITY + "002", "420199001003002")]


def test_failed_split_leaves_the_store_unchanged(small):
    """A new community that does not cover a grid fails the whole split."""
    with psycopg.connect(small) as conn:
        old_id = conn.execute(
            "SELECT unit_id FROM unit_version WHERE level = 'community' AND valid_to IS NULL"
        ).fetchone()[0]
        count = conn.execute("SELECT count(*) FROM unit_version").fetchone()[0]
        conn.commit()
        west = UnitInput("community", "420199001002", "西社区", shapes.rect(0, 0, 150, 400))
        east = UnitInput("community", "420199001003", "东社区", shapes.rect(250, 0, 400, 400))
        with pytest.raises(InvalidInput):
            with conn.transaction():
                boundaries.replace_units(conn, [old_id], [west, east], kind="split")
        assert conn.execute("SELECT count(*) FROM unit_version").fetchone()[0] == count
        assert conn.execute("SELECT count(*) FROM unit_lineage").fetchone()[0] == 0
        assert units.get_unit(conn, old_id)["valid_to"] is None


def test_a_split_whose_grids_no_longer_cover_a_new_community_is_refused(small):
    """Found by the redraw fuzzer: a community boundary moved 0.3 m off the grids' shared edge.
    Each grid still lies in a community (0.5 m tolerance), but 120 m² of the west community is
    in no grid: /validate would report a gap, so the change is refused, naming it."""
    with psycopg.connect(small) as conn:
        old_id = conn.execute(
            "SELECT unit_id FROM unit_version WHERE level = 'community' AND valid_to IS NULL").fetchone()[0]
        conn.commit()
        west = UnitInput("community", "420199001002", "西社区", shapes.rect(0, 0, 200.3, 400))
        east = UnitInput("community", "420199001003", "东社区", shapes.rect(200.3, 0, 400, 400))
        with pytest.raises(InvalidInput, match=r"1[12]\d\.\d m² of community 420199001002 is in no grid"):
            with conn.transaction():
                boundaries.replace_units(conn, [old_id], [west, east], kind="split")
        assert units.get_unit(conn, old_id)["valid_to"] is None


def test_redraw_records_lineage(small):
    with psycopg.connect(small) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT unit_id FROM unit_version WHERE level = 'grid' AND valid_to IS NULL ORDER BY code")]
        a = UnitInput("grid", shapes.COMMUNITY + "003", "新第3网格", shapes.rect(0, 0, 250, 400), 560)
        b = UnitInput("grid", shapes.COMMUNITY + "004", "新第4网格", shapes.rect(250, 0, 400, 400), 340)
        with conn.transaction():
            summary = boundaries.replace_units(conn, ids, [a, b], kind="redraw", note="boundary moved 50 m east")
        kinds = {r["kind"] for r in units.lineage(conn, summary.created[0])["from"]}
        assert kinds == {"redraw"}
        # the new west grid took land from both old grids
        assert {r["unit_id"] for r in units.lineage(conn, summary.created[0])["from"]} == set(ids)
