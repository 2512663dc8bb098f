"""The point index follows commits without a rebuild (issue 14), on the sample district in
PostGIS: after a split of a community (grids, compounds, small neighbourhoods and buildings
re-versioned under new parents), a redraw of grids, a rename and a retirement, the index a
serving process keeps answers exactly as one built afresh; a rename adds no layer; a process
that starts maps the snapshot on disk instead of building; the change log that is too short
makes a new snapshot; and lookups in the past read only the units near the points."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
import shapely

from geo.db import index_feed, pool, units
from geo.units.levels import LEVELS
from geo.usecases import locators, plans
from geo.usecases import units as unit_edits
from tests.locate_checks import answers, one_by_one


@pytest.fixture(autouse=True)
def own_pool():
    """This process's pool and index belong to each test's database."""
    pool.close_pool()
    locators.reset()
    yield
    pool.close_pool()
    locators.reset()


def _points(conn: psycopg.Connection, rng: np.random.Generator, n: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    """Random points over the district, and every vertex of the grids and compounds (on boundaries)."""
    x0, y0, x1, y1 = conn.execute("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                                  "(SELECT ST_Extent(geom) e FROM unit_version WHERE valid_to IS NULL) s").fetchone()
    wkb = [r[0] for r in conn.execute("SELECT ST_AsBinary(geom) FROM unit_version WHERE valid_to IS NULL "
                                      "AND level IN ('grid', 'compound') ORDER BY unit_id")]
    vertices = shapely.get_coordinates(shapely.from_wkb(wkb))[::3]
    return (np.concatenate([rng.uniform(x0, x1, n), vertices[:, 0]]),
            np.concatenate([rng.uniform(y0, y1, n), vertices[:, 1]]))


def _answers(index: Any, x: np.ndarray, y: np.ndarray) -> list[tuple[Any, ...]]:
    return answers(index, x, y, LEVELS)


def _one_by_one(index: Any, x: np.ndarray, y: np.ndarray) -> list[tuple[int | None, ...]]:
    return one_by_one(index, x, y, LEVELS)


def _same_as_fresh(conn: psycopg.Connection, index: Any, x: np.ndarray, y: np.ndarray) -> None:
    fresh = units.locator(conn)
    conn.commit()
    assert index.generation == fresh.generation
    assert index.size() == fresh.size()
    assert _answers(index, x, y) == _answers(fresh, x, y)
    assert _one_by_one(index, x[::7], y[::7]) == _one_by_one(fresh, x[::7], y[::7])


def test_the_index_follows_a_split_a_redraw_a_rename_and_a_retirement(sample_url):
    locators.reset()
    rng = np.random.default_rng(14)
    with psycopg.connect(sample_url, autocommit=True) as conn:
        x, y = _points(conn, rng)
        start = locators.current(conn)
        assert start.layers == 0
        builds = locators.stats["snapshot_builds"]

        plan = plans.draw_split(conn, units.resolve(conn, "420199001008"), "community")
        plans.commit_plan(conn, plan["id"])
        split = locators.current(conn)
        assert split.layers == 1, "a commit adds one layer, not a rebuild"
        assert locators.stats["snapshot_builds"] == builds
        assert split.patched_units() < 0.5 * sum(start.size().values())
        _same_as_fresh(conn, split, x, y)

        plan = plans.draw_split(conn, units.resolve(conn, "420199002003"), "grid")
        plans.commit_plan(conn, plan["id"])
        _same_as_fresh(conn, locators.current(conn), x, y)

        grid = units.get_unit(conn, units.resolve(conn, "420199003002001"))
        conn.commit()
        layers = locators.current(conn).layers
        with conn.transaction():
            unit_edits.edit_unit(conn, grid["unit_id"], expected_version=grid["version"], name="更名网格")
        renamed = locators.current(conn)
        assert renamed.layers == layers, "a rename touches no geometry"
        centre = shapely.from_wkb(conn.execute(
            "SELECT ST_AsBinary(ST_PointOnSurface(geom)) FROM unit_version WHERE unit_id = %s AND valid_to IS NULL",
            [grid["unit_id"]]).fetchone()[0])
        i = renamed.locate_one(centre.x, centre.y)["grid"]
        assert renamed.units["grid"].names[i] == "更名网格"
        assert renamed.units["grid"].versions[i] == grid["version"] + 1
        _same_as_fresh(conn, renamed, x, y)

        building = conn.execute("SELECT unit_id, version, ST_AsBinary(geom) FROM unit_version WHERE level = 'building' "
                                "AND valid_to IS NULL AND GeometryType(geom) = 'MULTIPOLYGON' ORDER BY code LIMIT 1"
                                ).fetchone()
        shrunk = shapely.affinity.scale(shapely.from_wkb(building[2]), 0.5, 0.5)
        with conn.transaction():
            unit_edits.edit_unit(conn, building[0], expected_version=building[1], geom=shrunk)
        _same_as_fresh(conn, locators.current(conn), x, y)


def test_a_process_that_starts_maps_the_snapshot_instead_of_building(sample_url):
    locators.reset()
    with psycopg.connect(sample_url, autocommit=True) as conn:
        first = locators.current(conn)
        plan = plans.draw_split(conn, units.resolve(conn, "420199001008"), "grid")
        plans.commit_plan(conn, plan["id"])
        locators.reset()  # a new process: nothing in memory, the snapshot on disk
        builds, loads = locators.stats["snapshot_builds"], locators.stats["snapshot_loads"]
        restarted = locators.current(conn)
        assert locators.stats["snapshot_builds"] == builds
        assert locators.stats["snapshot_loads"] == loads + 1
        assert restarted.base.generation == first.generation and restarted.layers == 1
        assert isinstance(restarted.base.indexes["grid"].labels, np.memmap)
        x, y = _points(conn, np.random.default_rng(5), 2000)
        _same_as_fresh(conn, restarted, x, y)
        report = locators.status(conn)
        assert [s["generation"] for s in report["snapshots"]] == [first.generation]

        # the log no longer reaches back to the snapshot (a bulk load): a new one is built
        conn.execute("UPDATE boundary_generation SET complete_from = generation")
        locators.reset()
        again = locators.current(conn)
        assert locators.stats["snapshot_builds"] == builds + 1
        assert again.layers == 0 and again.base.generation == index_feed.history(conn).generation


def test_a_restore_or_a_new_database_never_takes_another_history(sample_url):
    locators.reset()
    with psycopg.connect(sample_url, autocommit=True) as conn:
        before = index_feed.history(conn)
        locators.current(conn)
        from geo.db import generation

        generation.move_on(conn, before.generation)
        after = index_feed.history(conn)
        assert after.epoch != before.epoch and after.complete_from == after.generation
        locators.current(conn)
        assert locators.status(conn)["folder"] != str(locators.folder() / before.key)


def test_lookups_in_the_past_read_only_the_units_near_the_points(sample_url):
    locators.reset()
    with psycopg.connect(sample_url, autocommit=True) as conn:
        x, y = _points(conn, np.random.default_rng(9), 1500)
        then = conn.execute("SELECT now()").fetchone()[0]
        plan = plans.draw_split(conn, units.resolve(conn, "420199001008"), "community")
        plans.commit_plan(conn, plan["id"])
        whole = units.locator(conn, as_of=then)
        conn.commit()
        small = locators.around(then, x[:40], y[:40], 20.0, conn)
        conn.commit()
        assert sum(small.size().values()) < sum(whole.size().values()) / 3
        assert _answers(small, x[:40], y[:40]) == _answers(whole, x[:40], y[:40])
        for k in range(40, 400, 13):  # one point at a time, as intake asks
            one = locators.around(then, x[k:k + 1], y[k:k + 1], 20.0, conn)
            conn.commit()
            assert _answers(one, x[k:k + 1], y[k:k + 1]) == _answers(whole, x[k:k + 1], y[k:k + 1])


def test_a_new_snapshot_forgets_the_log_far_behind_it(sample_url, monkeypatch):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        plan = plans.draw_split(conn, units.resolve(conn, "420199001008"), "grid")
        plans.commit_plan(conn, plan["id"])
        logged = conn.execute("SELECT count(*), max(generation) FROM unit_change").fetchone()
        assert logged[0] > 0
        monkeypatch.setattr(locators, "LOG_KEPT", 0)  # keep nothing behind the snapshot
        locators.build_snapshot(conn)
        conn.commit()
        assert conn.execute("SELECT count(*) FROM unit_change").fetchone()[0] == 0
        now = index_feed.history(conn)
        assert now.complete_from == now.generation == logged[1]
        locators.reset()
        assert locators.current(conn).layers == 0  # the snapshot at that generation serves
