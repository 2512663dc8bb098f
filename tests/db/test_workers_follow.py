"""Workers follow their units through a redraw: geo/usecases/workers.py follow_change, which
boundaries.replace_units runs (through `follow`) in the change's transaction; its answer is in
the summary (`followed["workers"]`), and calling it again for the same change does nothing.

The district: one community of two grids side by side (west 0–200 m, east 200–400 m), two
compounds along the same line, and four buildings: 150 and 250 households in the west grid,
300 (at 220–240 m) and 50 (at 320–340 m) households in the east grid."""

from __future__ import annotations

import psycopg
import pytest

from geo.db import audit
from geo.db import workers as workers_db
from geo.units.model import UnitInput
from geo.usecases import boundaries
from geo.usecases import workers as staff
from geo.usecases.units import load_file
from tests import shapes

C = shapes.COMMUNITY
WEST, EAST = C + "001", C + "002"
BUILDINGS = [("C001B001", 40, 150), ("C001B002", 140, 250), ("C002B003", 220, 300), ("C002B004", 320, 50)]


def _load(tmp_path, with_buildings: bool) -> None:
    load_file(shapes.write(tmp_path / "s.geojson", shapes.street_rows()), "street")
    load_file(shapes.write(tmp_path / "c.geojson", shapes.community_rows()), "community")
    load_file(shapes.write(tmp_path / "g.geojson", shapes.grid_rows()), "grid")
    compounds = [{"code": C + "C001", "name": "西小区", "geometry": shapes.rect(0, 0, 200, 400)},
                 {"code": C + "C002", "name": "东小区", "geometry": shapes.rect(200, 0, 400, 400)}]
    load_file(shapes.write(tmp_path / "k.geojson", compounds), "compound")
    if with_buildings:
        rows = [{"code": C + code, "name": code, "households": hh, "geometry": shapes.rect(x, 190, x + 20, 210)}
                for code, x, hh in BUILDINGS]
        load_file(shapes.write(tmp_path / "b.geojson", rows), "building")


@pytest.fixture
def district(db_url, tmp_path):
    _load(tmp_path, with_buildings=True)
    return db_url


@pytest.fixture
def bare(db_url, tmp_path):
    """The same district without buildings: no household counts to go by."""
    _load(tmp_path, with_buildings=False)
    return db_url


def _unit(conn, code: str) -> int:
    return conn.execute("SELECT unit_id FROM unit_version WHERE code = %s ORDER BY version DESC LIMIT 1",
                        [code]).fetchone()[0]


def _worker(conn, worker_id: int) -> dict:
    row = conn.execute("SELECT unit_id, active, unplaced_since, unplaced_reason FROM worker WHERE id = %s",
                       [worker_id]).fetchone()
    return dict(zip(("unit_id", "active", "unplaced_since", "unplaced_reason"), row, strict=True))


def _events(conn, worker_id: int) -> list[tuple]:
    return conn.execute("SELECT kind, from_unit_id, to_unit_id, change_id, data FROM worker_event "
                        "WHERE worker_id = %s ORDER BY id", [worker_id]).fetchall()


def _followed(conn, summary) -> dict:
    """What followed the change for workers; a second call for the same change moves nobody."""
    assert staff.follow_change(conn, summary.change_id, "test") == {"moved": [], "unplaced": []}
    return summary.followed["workers"]


def _split_east(conn, cut: float = 260):
    """Retire the east grid; open 003 (200–cut m) and 004 (cut–400 m) in its place."""
    a = UnitInput("grid", C + "003", "东一网格", shapes.rect(200, 0, cut, 400))
    b = UnitInput("grid", C + "004", "东二网格", shapes.rect(cut, 0, 400, 400))
    return boundaries.replace_units(conn, [_unit(conn, EAST)], [a, b], kind="split", note="east grid split")


def test_a_split_moves_the_grid_worker_to_the_part_holding_most_households(district):
    """003 is the smaller part by area but holds 300 of the old grid's 350 households."""
    with psycopg.connect(district) as conn:
        east, west = _unit(conn, EAST), _unit(conn, WEST)
        community = _unit(conn, C)
        li = staff.add_worker(conn, " 李网格员 ", "grid_worker", east, "13900000001")["id"]
        head = staff.add_worker(conn, "张网格长", "grid_head", east)["id"]
        gone = staff.add_worker(conn, "已离职", "grid_worker", east)["id"]
        staff.update_worker(conn, gone, {"active": False})
        stays = staff.add_worker(conn, "王网格员", "grid_worker", west)["id"]
        social = staff.add_worker(conn, "赵社工", "community_worker", community)["id"]
        conn.commit()
        with conn.transaction():
            summary = _split_east(conn)
            result = _followed(conn, summary)
        new_003 = _unit(conn, C + "003")
        assert result == {"moved": [{"worker_id": li, "name": "李网格员", "from_unit": east, "to_unit": new_003},
                                    {"worker_id": head, "name": "张网格长", "from_unit": east, "to_unit": new_003}],
                          "unplaced": []}
        assert _worker(conn, li) == {"unit_id": new_003, "active": True, "unplaced_since": None,
                                     "unplaced_reason": None}
        # the inactive worker, the other grid's worker and the community's stay where they were
        assert _worker(conn, gone)["unit_id"] == east and not _worker(conn, gone)["active"]
        assert _worker(conn, stays)["unit_id"] == west
        assert _worker(conn, social)["unit_id"] == community
        kind, from_unit, to_unit, change_id, data = _events(conn, li)[-1]
        assert (kind, from_unit, to_unit, change_id) == ("follow", east, new_003, summary.change_id)
        assert data["by"] == "households" and data["households"] == 300
        rows = audit.query(conn, action="worker.follow")
        assert sorted(r["subject_ids"][0] for r in rows) == [li, head]
        assert {r["change_id"] for r in rows} == {summary.change_id}
        assert {(r["before"]["unit_id"], r["after"]["unit_id"]) for r in rows} == {(east, new_003)}
        assert len(rows) == 2


def test_without_buildings_the_part_sharing_most_area_takes_the_worker(bare):
    with psycopg.connect(bare) as conn:
        east = _unit(conn, EAST)
        li = staff.add_worker(conn, "李网格员", "grid_worker", east)["id"]
        conn.commit()
        with conn.transaction():
            summary = _split_east(conn)
            result = _followed(conn, summary)
        new_004 = _unit(conn, C + "004")
        assert result["moved"] == [{"worker_id": li, "name": "李网格员", "from_unit": east, "to_unit": new_004}]
        data = _events(conn, li)[-1][4]
        assert data["by"] == "area" and data["households"] == 0
        assert abs(data["area_m2"] - 140 * 400) < 0.01 * 140 * 400


def test_a_merge_keeps_one_grid_worker_and_flags_the_other(district):
    """Both grid workers would land on the merged grid: the west grid gives it 400 households,
    the east 350, so the west grid's worker moves though the east one was added first."""
    with psycopg.connect(district) as conn:
        west, east = _unit(conn, WEST), _unit(conn, EAST)
        first = staff.add_worker(conn, "东网格员", "grid_worker", east)["id"]
        second = staff.add_worker(conn, "西网格员", "grid_worker", west)["id"]
        head = staff.add_worker(conn, "东网格长", "grid_head", east)["id"]
        conn.commit()
        with conn.transaction():
            merged = UnitInput("grid", C + "601", "合并网格", shapes.rect(0, 0, 400, 400))
            summary = boundaries.replace_units(conn, [west, east], [merged], kind="merge")
            result = _followed(conn, summary)
            now = conn.execute("SELECT now()").fetchone()[0]
        new_601 = _unit(conn, C + "601")
        assert result["moved"] == [{"worker_id": first, "name": "东网格员", "from_unit": east, "to_unit": new_601},
                                   {"worker_id": second, "name": "西网格员", "from_unit": west, "to_unit": new_601},
                                   {"worker_id": head, "name": "东网格长", "from_unit": east, "to_unit": new_601}]
        reason = (f"its successor grid {C}601 already has a grid_worker: 西网格员 (worker {second}): "
                  "attached there, flagged, until a dispatcher gives them a unit")
        assert result["unplaced"] == [{"worker_id": first, "name": "东网格员", "unit_id": new_601, "reason": reason}]
        # on the current grid, active and flagged: incidents go to the other worker
        assert _worker(conn, first) == {"unit_id": new_601, "active": True, "unplaced_since": now,
                                        "unplaced_reason": reason}
        assert workers_db.first_active(conn, "grid_worker", new_601) == second
        assert _events(conn, first)[-1][:4] == ("unplaced", new_601, None, summary.change_id)
        flagged = audit.query(conn, action="worker.unplaced")
        assert [(r["subject_ids"], r["change_id"], r["detail"]["reason"]) for r in flagged] == [
            ([first], summary.change_id, reason)]
        # deactivated, the worker needs no unit any more
        staff.deactivate_worker(conn, first, "test")
        assert _worker(conn, first) == {"unit_id": new_601, "active": False, "unplaced_since": None,
                                        "unplaced_reason": None}


def test_a_retired_unit_no_current_unit_succeeds_leaves_its_worker_unplaced(bare):
    """A replacement sharing no land with the retired grid (replace_units leaves tiling to the
    plans that call it) records no lineage: nobody succeeds the east grid."""
    with psycopg.connect(bare) as conn:
        east = _unit(conn, EAST)
        li = staff.add_worker(conn, "李网格员", "grid_worker", east)["id"]
        conn.commit()
        with conn.transaction():
            elsewhere = UnitInput("grid", C + "003", "别处网格", shapes.rect(0, 0, 150, 400))
            summary = boundaries.replace_units(conn, [east], [elsewhere], kind="redraw")
            result = _followed(conn, summary)
        reason = f"unit {east} was retired by change {summary.change_id} and no current unit succeeds it"
        assert result == {"moved": [], "unplaced": [{"worker_id": li, "name": "李网格员", "unit_id": east,
                                                     "reason": reason}]}
        assert _worker(conn, li)["unplaced_reason"] == reason


def test_a_community_split_moves_every_community_worker_and_no_grid_worker(district):
    """Community workers are many to a community: all of them follow, to the part with most
    households (the west, 400 of 750). The grids only change community: their workers stay."""
    with psycopg.connect(district) as conn:
        old = _unit(conn, C)
        west, east = _unit(conn, WEST), _unit(conn, EAST)
        socials = [staff.add_worker(conn, name, "community_worker", old)["id"] for name in ("赵社工", "钱社工")]
        grid_worker = staff.add_worker(conn, "李网格员", "grid_worker", east)["id"]
        conn.commit()
        with conn.transaction():
            parts = [UnitInput("community", "420199001002", "西社区", shapes.rect(0, 0, 200, 400)),
                     UnitInput("community", "420199001003", "东社区", shapes.rect(200, 0, 400, 400))]
            summary = boundaries.replace_units(conn, [old], parts, kind="split")
            result = _followed(conn, summary)
        new_west = _unit(conn, "420199001002")
        assert result == {"moved": [{"worker_id": w, "name": n, "from_unit": old, "to_unit": new_west}
                                    for w, n in zip(socials, ("赵社工", "钱社工"), strict=True)],
                          "unplaced": []}
        assert _worker(conn, grid_worker)["unit_id"] == east
        assert _unit(conn, WEST) == west


def test_a_flagged_worker_follows_the_next_redraw_too_and_gets_a_unit_of_their_own(district):
    """Found by the 500-step redraw walk: a worker flagged by a merge was skipped by the next
    redraw of the merged grid and stayed, active, on a retired unit."""
    with psycopg.connect(district) as conn:
        west, east = _unit(conn, WEST), _unit(conn, EAST)
        first = staff.add_worker(conn, "东网格员", "grid_worker", east)["id"]
        second = staff.add_worker(conn, "西网格员", "grid_worker", west)["id"]
        conn.commit()
        with conn.transaction():
            merged = UnitInput("grid", C + "601", "合并网格", shapes.rect(0, 0, 400, 400))
            boundaries.replace_units(conn, [west, east], [merged], kind="merge")
        assert _worker(conn, first)["unplaced_since"] is not None
        with conn.transaction():
            again = boundaries.replace_units(conn, [_unit(conn, C + "601")], [
                UnitInput("grid", C + "602", "西", shapes.rect(0, 0, 200, 400)),
                UnitInput("grid", C + "603", "东", shapes.rect(200, 0, 400, 400))], kind="split")
        moved = {m["worker_id"]: m["to_unit"] for m in again.followed["workers"]["moved"]}
        assert set(moved) == {first, second}
        current = {r[0] for r in conn.execute("SELECT unit_id FROM unit_version WHERE valid_to IS NULL")}
        for worker in (first, second):
            assert _worker(conn, worker)["unit_id"] in current
        # both land on the merged grid's successor holding most of its households: one keeps the
        # place, the other stays flagged, on a current grid
        assert moved[first] == moved[second]
        flagged = [w for w in (first, second) if _worker(conn, w)["unplaced_since"] is not None]
        assert len(flagged) == 1
