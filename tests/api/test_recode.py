"""Correcting a wrong code over HTTP and from the command line (issue 13, item 1): admins only,
descendants follow, /validate reports codes against their chain, and the export of a level
loads again."""

from __future__ import annotations

import psycopg

from tests.conftest import bearer, run_cli


def _grid(conn: psycopg.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT unit_id, code FROM unit_version WHERE level = 'grid' AND valid_to IS NULL "
                       "ORDER BY code LIMIT 1").fetchone()
    return int(row[0]), row[1]


def test_a_wrong_code_is_reported_and_an_admin_corrects_it(http, secured):
    with psycopg.connect(secured.url, autocommit=True) as conn:
        unit_id, code = _grid(conn)
        wrong = code[:9] + "099" + code[12:]
        # the state the old pipeline left behind: a code naming another community
        conn.execute("UPDATE unit_version SET code = %s WHERE unit_id = %s AND valid_to IS NULL", [wrong, unit_id])
    admin, planner = bearer(secured.keys["admin"]), bearer(secured.keys["planner"])
    report = http.get("/validate", params={"level": "grid"}, headers=planner).json()
    found = [f["properties"] for f in report["features"] if f["properties"]["problem"] == "code_against_chain"]
    assert [f["code"] for f in found] == [wrong]
    # an ordinary edit cannot carry a code, and says where to go
    edit = http.put(f"/units/{unit_id}", json={"version": 1, "code": code}, headers=planner)
    assert edit.status_code == 422
    # a planner may not recode; an admin may
    assert http.post(f"/units/{unit_id}/recode", json={"code": code}, headers=planner).status_code == 403
    bad = http.post(f"/units/{unit_id}/recode", json={"code": code[:9] + "098" + code[12:]}, headers=admin)
    assert bad.status_code == 422 and "its code says" in bad.json()["detail"]
    done = http.post(f"/units/{unit_id}/recode", json={"code": code, "note": "typo"}, headers=admin)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["code"] == code
    assert body["recoded"][0]["from"] == wrong and body["recoded"][0]["to"] == code
    # its small neighbourhoods and buildings name compounds, not grids: their codes stay
    report = http.get("/validate", params={"level": "grid"}, headers=planner).json()
    assert not [f for f in report["features"] if f["properties"]["problem"] == "code_against_chain"]
    history = http.get(f"/units/{unit_id}/history", headers=planner).json()
    assert [h["code"] for h in history][-2:] == [wrong, code] or [h["code"] for h in history][:2] == [code, wrong]
    audit = http.get("/audit", params={"action": "unit.recode"}, headers=admin).json()
    items = audit["items"] if isinstance(audit, dict) else audit
    assert any(a["before"]["code"] == wrong and a["after"]["code"] == code for a in items)


def test_recode_from_the_command_line(sample_url, tmp_path):
    with psycopg.connect(sample_url, autocommit=True) as conn:
        compound = conn.execute("SELECT unit_id, code FROM unit_version WHERE level = 'compound' "
                                "AND valid_to IS NULL AND code LIKE '%%C%%' ORDER BY code LIMIT 1").fetchone()
    new = compound[1][:13] + "950"
    env = {"DATABASE_URL": sample_url}
    done = run_cli("units", "recode", compound[1], new, "--note", "renumbered", env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    said = done.stdout + done.stderr
    assert f"compound {compound[1]} -> {new}" in said
    assert f"{compound[1]}N" in said or f"{compound[1]}B" in said  # its descendants followed
    # taking back its own old code is allowed, and its descendants take back theirs
    back = run_cli("units", "recode", str(compound[0]), compound[1], env=env)
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"{new}B001 -> {compound[1]}B001" in back.stdout + back.stderr
    with psycopg.connect(sample_url, autocommit=True) as conn:
        other = conn.execute("SELECT code FROM unit_version WHERE level = 'compound' AND valid_to IS NULL "
                             "AND code LIKE %s AND unit_id <> %s LIMIT 1", [compound[1][:12] + "C%", compound[0]]
                             ).fetchone()[0]
    again = run_cli("units", "recode", str(compound[0]), other, env=env)
    assert again.returncode != 0
    assert "never given to other land" in again.stdout + again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    # export and load into an empty database gives the same codes
    out = tmp_path / "compound.geojson"
    assert run_cli("export", "--level", "compound", "--format", "geojson", "-o", str(out), env=env).returncode == 0
    text = out.read_text(encoding="utf-8")
    assert compound[1] in text and new not in text
