"""A committed plan is a record (issue 13, item 3): its comparison, households moved and code
changes stay as they were at commit; before commit, compare shows every code change the
commit will make (and the same ones happen)."""

from __future__ import annotations

import psycopg

from geo.db import units
from geo.usecases import plan_review, plans


def test_compare_shows_code_changes_before_commit_and_keeps_them_after(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        plan = plans.draw_split(conn, units.resolve(conn, "420199001008"), "community")
        before = plans.compare(conn, plan["id"])
        assert before["as_committed"] is False
        assert "problem" not in before, before.get("problem")
        assert before["code_changes"], "grids and compounds under the split community change code"
        # the dry run changed nothing
        assert units.units_rows(conn, "community")
        assert conn.execute("SELECT count(*) FROM unit_version WHERE valid_to IS NULL AND code = '420199001008'"
                            ).fetchone()[0] == 1
        committed = plans.commit_plan(conn, plan["id"])
        assert committed["code_changes"] == before["code_changes"]
        after = plans.compare(conn, plan["id"])
        assert after["as_committed"] is True
        assert after["code_changes"] == before["code_changes"]
        assert len(plan_review.review(conn, plan["id"])["compare"]["code_changes"]) == len(before["code_changes"])


def test_a_committed_redraw_keeps_the_households_it_moved(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        plan = plans.draw_split(conn, units.resolve(conn, "420199001008"), "grid")
        before = plans.compare(conn, plan["id"])
        assert "problem" not in before, before.get("problem")
        assert before["households_moved"] > 0
        plans.commit_plan(conn, plan["id"])
        after = plans.compare(conn, plan["id"])
        assert after["as_committed"] is True
        assert after["households_moved"] == before["households_moved"]
        assert [u["from"] for u in after["units"]] == [u["from"] for u in before["units"]]
        assert all(u["from"] for u in after["units"])
        # the plan map shows what the commit did
        shown = plan_review.review(conn, plan["id"])
        assert shown["compare"]["households_moved"] == before["households_moved"]
        assert sum(sum(p["from"].values()) - max(p["from"].values()) for p in shown["parts"]) \
            == before["households_moved"]
