"""Codes are identities that follow the chain (issue 13, item 1): after a community split, a
merge or a recode, every code names the parents its unit lies in; old codes stay readable as of
before and are never given to other land; /validate reports a code that contradicts its chain."""

from __future__ import annotations

import psycopg
import pytest

from geo.db import units
from geo.errors import Conflict, InvalidInput
from geo.units import codes, levels
from geo.usecases import plans, validation
from geo.usecases import units as unit_work


def contradictions(conn: psycopg.Connection) -> list[str]:
    """Every current unit whose code names another parent than the one it lies in."""
    found = []
    for level in levels.LEVELS:
        p_level = codes.code_parent_level(level)
        if p_level is None:
            continue
        for r in units.code_chains(conn, level, p_level):
            if codes.against_chain(level, r["code"], r["parent_code"]):
                found.append(f"{level} {r['code']} in {r['parent_code']}")
    return found


def unit_id(conn: psycopg.Connection, code: str) -> int:
    return units.resolve(conn, code)


def test_a_community_split_gives_every_unit_beneath_a_code_under_its_new_parent(sample_url):
    with psycopg.connect(sample_url) as conn:
        before = conn.execute("SELECT now()").fetchone()[0]
        conn.commit()
        old_grids = {r["code"] for r in units.units_rows(conn, "grid")}
        plan = plans.draw_split(conn, unit_id(conn, "420199001008"), "community")
        result = plans.commit_plan(conn, plan["id"])
        assert result["status"] == "committed"
        assert contradictions(conn) == []
        new_communities = [r for r in units.units_rows(conn, "community") if r["code"][:9] == "420199001"]
        grids = units.units_rows(conn, "grid")
        community_code = {r["unit_id"]: r["code"] for r in new_communities}
        moved = [g for g in grids if g["code"] not in old_grids]
        assert moved, "some grids lie under the new communities"
        for g in moved:
            assert g["code"][:12] == community_code[g["community_id"]]
        # the old codes stay readable as of before, on the same units
        then = {r["unit_id"]: r["code"] for r in units.units_rows(conn, "grid", as_of=before)}
        for g in moved:
            assert then[g["unit_id"]].startswith("420199001008")
        # /validate finds no code against its chain
        report = validation.validate(conn)
        assert report["counts"].get("code_against_chain", 0) == 0


def test_a_merge_of_communities_recodes_the_grids_of_the_small_one(sample_url):
    with psycopg.connect(sample_url) as conn:
        try:
            plan = plans.draw_merge(conn, "community", floor=1000)
        except InvalidInput as exc:
            pytest.skip(f"the sample has no community to merge: {exc}")
        plans.commit_plan(conn, plan["id"])
        assert contradictions(conn) == []
        used = {}
        for r in conn.execute("SELECT level, code, unit_id FROM unit_version").fetchall():
            used.setdefault((r[0], r[1]), set()).add(r[2])
        # a code was never given to two units, except a code passed from a retired unit to its successor
        lineage = set(conn.execute("SELECT from_unit_id, to_unit_id FROM unit_lineage").fetchall())
        for (level, code), holders in used.items():
            if len(holders) > 1:
                ids = sorted(holders)
                assert all((a, b) in lineage or (b, a) in lineage for a in ids for b in ids if a != b), (level, code)


def test_validate_reports_a_code_that_contradicts_its_chain(sample_url):
    with psycopg.connect(sample_url) as conn:
        grid = units.units_rows(conn, "grid")[0]
        # make the defect the old pipeline made, behind the pipeline's back
        conn.execute("UPDATE unit_version SET code = %s WHERE unit_id = %s AND valid_to IS NULL",
                     ["420199001099001", grid["unit_id"]])
        report = validation.validate(conn, "grid")
        found = [f for f in report["features"] if f["properties"]["problem"] == "code_against_chain"]
        assert [f["properties"]["code"] for f in found] == ["420199001099001"]
        assert "420199001099" in found[0]["properties"]["message"]
        assert "recode" in found[0]["properties"]["message"]
        conn.rollback()


def test_recode_corrects_a_code_and_its_descendants_follow(sample_url):
    with psycopg.connect(sample_url) as conn:
        compound = next(r for r in units.units_rows(conn, "compound") if "C" in r["code"])
        old = compound["code"]
        community = old[:12]
        taken = {r["code"] for r in units.units_rows(conn, "compound")}
        new = next(f"{community}C{k:03d}" for k in range(900, 999) if f"{community}C{k:03d}" not in taken)
        with conn.transaction():
            result = unit_work.recode_unit(conn, compound["unit_id"], new, actor="test")
        assert result["code"] == new
        assert result["recoded"][0] == {"level": "compound", "unit_id": compound["unit_id"], "from": old, "to": new}
        below = list(result["recoded"][1:])
        assert below and all(r["from"].startswith(old) and r["to"].startswith(new) for r in below)
        assert contradictions(conn) == []
        stored = conn.execute("SELECT count(*) FROM unit_version WHERE valid_to IS NULL AND code LIKE %s",
                              [old + "%"]).fetchone()[0]
        assert stored == 0
        row = conn.execute("SELECT action, before, after FROM audit_log WHERE action = 'unit.recode' "
                           "ORDER BY id DESC LIMIT 1").fetchone()
        assert row[1]["code"] == old and row[2]["code"] == new
        # a code that names another community is refused, and so is a code once given to other land
        with pytest.raises(InvalidInput, match="its code says"):
            with conn.transaction():
                unit_work.recode_unit(conn, compound["unit_id"], "420199001099C001", actor="test")
        other = next(r for r in units.units_rows(conn, "compound") if r["unit_id"] != compound["unit_id"]
                     and r["code"].startswith(community))
        with pytest.raises(Conflict, match="never given to other land"):
            with conn.transaction():
                unit_work.recode_unit(conn, compound["unit_id"], other["code"], actor="test")
        with pytest.raises(Conflict, match="never given to other land"):
            with conn.transaction():
                unit_work.recode_unit(conn, other["unit_id"], old, actor="test")


def test_two_drafts_never_propose_the_same_new_code_and_both_commit(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        first = plans.draw_split(conn, unit_id(conn, "420199001008"), "community")
        second = plans.draw_split(conn, unit_id(conn, "420199001007"), "community")
        ours = {u["code"] for u in first["units"]}
        theirs = {u["code"] for u in second["units"]}
        assert not (ours & theirs - {"420199001008", "420199001007"})
        plans.commit_plan(conn, first["id"])
        plans.commit_plan(conn, second["id"])
        assert contradictions(conn) == []


def test_a_replacement_may_not_take_a_code_another_unit_had(sample_url):
    from geo.units.model import UnitInput
    from geo.usecases import boundaries

    with psycopg.connect(sample_url) as conn:
        a, b = (units.current(conn, unit_id(conn, c)) for c in ("420199001008", "420199001009"))
        with pytest.raises(Conflict, match="420199001009 belongs to unit"):
            with conn.transaction():
                boundaries.replace_units(conn, [a["unit_id"]], [
                    UnitInput("community", "420199001009", "x", a["geom"], a["households"])], kind="redraw")


def test_repair_codes_mends_a_database_the_old_pipeline_left_contradicting_its_chain(sample_url):
    with psycopg.connect(sample_url) as conn:
        # what the old pipeline left behind: grids and compounds of community 009 with codes of 008
        # (their neighbourhoods and buildings keep codes naming the old compound codes)
        conn.execute("UPDATE unit_version SET code = '420199001008' || substr(code, 13) "
                     "WHERE valid_to IS NULL AND level IN ('grid', 'compound', 'neighbourhood', 'building') "
                     "AND code LIKE '420199001009%%' AND substr(code, 13, 1) IN ('C', '0') "
                     "AND NOT EXISTS (SELECT 1 FROM unit_version o WHERE o.valid_to IS NULL "
                     "AND o.level = unit_version.level AND o.code = '420199001008' || substr(unit_version.code, 13))")
        broken = contradictions(conn)
        assert broken
        with conn.transaction():
            changed = unit_work.repair_codes(conn, actor="test")
        assert contradictions(conn) == []
        assert {c["from"] for c in changed if c["level"] in ("grid", "compound")} == {
            b.split()[1] for b in broken if b.split()[0] in ("grid", "compound")}
        assert unit_work.repair_codes(conn, actor="test") == []


def test_a_code_kept_by_a_split_passes_on_down_its_own_line(sample_url):
    """Found by the redraw fuzzer: a split's largest part kept its community's code (a new
    unit); merging that part later must be able to keep the code it came with."""
    from geo.units.model import UnitInput
    from geo.usecases import boundaries

    with psycopg.connect(sample_url, autocommit=True) as conn:
        plan = plans.draw_split(conn, unit_id(conn, "420199001008"), "community")
        if "420199001008" not in {u["code"] for u in plan["units"]}:
            pytest.skip("no part of this split holds most of the old community's land")
        plans.commit_plan(conn, plan["id"])
        kept = units.current(conn, unit_id(conn, "420199001008"))
        with conn.transaction():
            summary = boundaries.replace_units(conn, [kept["unit_id"]], [
                UnitInput("community", "420199001008", kept["name"], kept["geom"], kept["households"])],
                kind="redraw")
        assert len(summary.created) == 1
        assert contradictions(conn) == []
