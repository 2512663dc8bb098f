"""Merging the sample's small neighbourhoods (the redraw fuzzer's case: level neighbourhood,
floor 30): compare and commit answered 500 with a GEOS "side location conflict", raised by
the tiling check on merged units made invalid by the projection to metres. Now every group
is measured, compare answers, and commit either refuses (InvalidInput, Conflict) or writes
valid units."""

from __future__ import annotations

import psycopg
import pytest

from geo.db import plans as db
from geo.db import units
from geo.errors import Conflict, InvalidInput
from geo.usecases import plans


def _merge(conn: psycopg.Connection, within: int | None = None) -> dict | None:
    try:
        return plans.draw_merge(conn, "neighbourhood", floor=30, within=within)
    except InvalidInput as exc:  # nothing below the floor can be merged (the pairs merge allows)
        assert "no neighbourhood below the floor" in str(exc)
        return None


def _commit_is_clean(conn: psycopg.Connection, plan_id: int) -> bool:
    """Compare, then commit: only InvalidInput or Conflict may stop it; what it writes is valid.
    Whether it committed."""
    shown = plans.compare(conn, plan_id)
    assert "TopologyException" not in (shown.get("problem") or "")
    try:
        done = plans.commit_plan(conn, plan_id)
    except (InvalidInput, Conflict) as exc:
        assert "TopologyException" not in str(exc) or "cannot be overlaid" in str(exc)
        assert shown.get("problem"), "compare foresaw no problem, but commit was refused"
        return False
    assert "problem" not in shown
    assert done["status"] == "committed" and done["change_ids"]
    invalid = conn.execute("""SELECT code, ST_IsValidReason(geom) FROM unit_version
                              WHERE valid_to IS NULL AND level = 'neighbourhood' AND NOT ST_IsValid(geom)""").fetchall()
    assert not invalid, invalid
    return True


def test_every_group_of_the_sample_merge_is_measured_and_compare_commit_answer(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        plan = _merge(conn)
        if plan is None:
            pytest.skip("no neighbourhood of the sample below 30 households can be merged")
        proposed = db.units(conn, plan["id"], plan["revision"])
        for grp in sorted({u["grp"] for u in proposed}):
            found = plans._check_tiling(conn, plan | {"replaces": [r for r in plan["replaces"] if r["grp"] == grp]},
                                        [u for u in proposed if u["grp"] == grp], refuse=False)
            assert not [p for p in found if "cannot be checked" in p], (grp, found)
        _commit_is_clean(conn, plan["id"])


@pytest.mark.parametrize("community", ["420199001006", "420199003005"])
def test_a_merge_that_broke_the_tiling_check_commits_valid_units(sample_url, community):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        plan = _merge(conn, within=units.resolve(conn, community))
        if plan is None:
            pytest.skip(f"no neighbourhood of community {community} below 30 households can be merged")
        assert _commit_is_clean(conn, plan["id"]), plans.compare(conn, plan["id"]).get("problem")
