"""/maps/plan/{id}: a split or merge plan beside the boundaries it replaces.

The page holds the plan's proposed units (with households, band and Polsby-Popper), the
units it replaces at the versions it was drawn from, the outline of the unit it redraws,
where each part's households come from (geo/plans.compare), the plan's metrics and targets
missed (geo/plan_quality), and validation problems found by geo/validate's checks, run on
the proposed units and on the current ones: out of band, not contiguous, overlaps, gaps and
units reaching outside what they redraw.
"""

from __future__ import annotations

import html
import json

import numpy as np
import shapely

from geo import crs, levels, plans, store, validate
from maps import page

KIND_ZH = {"split": "拆分", "redraw": "重划", "merge": "合并"}
STATUS_ZH = {"draft": "草案", "committed": "已实施", "discarded": "已放弃"}


def _feature(geom, props: dict) -> dict:
    return {"type": "Feature", "geometry": shapely.geometry.mapping(geom), "properties": props}


def _with_label_points(conn, rows: list[dict]) -> None:
    """Each row's label point (centre of the largest inscribed circle), computed in PostGIS."""
    if not rows:
        return
    points = conn.execute(
        "SELECT ST_X(c), ST_Y(c) FROM unnest(%s::bytea[]) WITH ORDINALITY AS g(wkb, k), "
        "LATERAL (SELECT (ST_MaximumInscribedCircle(ST_GeomFromWKB(g.wkb, 4326))).center AS c) l ORDER BY k",
        [[shapely.to_wkb(r["geom"]) for r in rows]],
    ).fetchall()
    for r, (lon, lat) in zip(rows, points):
        r["lp"] = [round(lon, 7), round(lat, 7)]
        minx, miny, maxx, maxy = r["geom"].bounds
        r["room"] = [round(maxx - minx, 6), round(maxy - miny, 6)]


def _proposed(conn, plan_id: int, revision: int) -> list[dict]:
    rows = conn.execute(
        "SELECT grp, seq, code, name, households, ST_AsBinary(geom), ST_Area(geom::geography) FROM plan_unit "
        "WHERE plan_id = %s AND revision = %s ORDER BY seq", [plan_id, revision]).fetchall()
    return [{"grp": r[0], "seq": r[1], "code": r[2], "name": r[3], "households": r[4],
             "geom": shapely.from_wkb(bytes(r[5])), "area_m2": round(r[6], 1)} for r in rows]


def _replaced(conn, plan_id: int) -> list[dict]:
    """The units the plan replaces, at the versions it was drawn from."""
    rows = conn.execute(
        "SELECT v.unit_id, v.version, v.level, v.code, v.name, v.households, ST_AsBinary(v.geom), "
        "v.valid_to IS NULL, r.grp FROM plan_replaces r JOIN unit_version v "
        "ON v.unit_id = r.unit_id AND v.version = r.version WHERE r.plan_id = %s ORDER BY r.grp, r.code",
        [plan_id]).fetchall()
    return [{"id": r[0], "version": r[1], "level": r[2], "code": r[3], "name": r[4], "households": r[5],
             "geom": shapely.from_wkb(bytes(r[6])), "current": r[7], "grp": r[8]} for r in rows]


def _problems(level: str, rows: list[dict], parent: dict | None, source: str) -> list[dict]:
    """geo/validate's checks (band, contiguity, overlaps, gaps, outside the parent) on `rows`."""
    if not rows:
        return []
    geoms = np.array([r["geom"] for r in rows] + ([parent["geom"]] if parent else []), dtype=object)
    geoms_m, metric = crs.to_metric(geoms)
    parent_m = geoms_m[-1] if parent else None
    geoms_m = geoms_m[:len(rows)]
    found = validate._per_unit(level, rows, geoms_m, metric)
    found += validate._siblings(level, rows, geoms_m, metric, list(range(len(rows))), parent, parent_m)
    for f in found:
        f["properties"]["source"] = source
    return found


def _short(name: str, parent: dict | None) -> str:
    """A part's name without its parent's (黄鹤湖社区第3网格 -> 第3网格), for labels."""
    if parent and name.startswith(parent["name"]) and len(name) > len(parent["name"]):
        return name[len(parent["name"]):]
    return name


def plan_data(conn, plan_id: int) -> dict:
    """Everything the plan map shows (NotFound for an unknown plan)."""
    plan = plans.get_plan(conn, plan_id)
    level = plan["level"]
    metrics = plan["metrics"] or {}
    band = metrics.get("band") or (plan["params"] or {}).get("band") or levels.HOUSEHOLD_BANDS.get(level)
    proposed = _proposed(conn, plan_id, plan["revision"])
    replaced = _replaced(conn, plan_id)
    parent = None
    if plan["parent_id"] is not None:
        p = store.get_unit(conn, plan["parent_id"], as_of=None if plan["status"] == "draft" else plan["created_at"])
        parent = {"id": p["unit_id"], "level": p["level"], "code": p["code"], "name": p["name"],
                  "households": p["households"], "geom": shapely.geometry.shape(p["geometry"])}
    # the unit a split or redraw covers is the parent; a merge covers the units it joins
    check_parent = parent if plan["kind"] != "merge" else None
    problems = _problems(level, proposed, check_parent, "proposed")
    problems += _problems(level, [r for r in replaced if r["level"] == level], check_parent, "current")
    if parent and parent["level"] != level:
        problems += _problems(parent["level"], [parent], None, "current")
    _with_label_points(conn, proposed + replaced)
    flows = {u["seq"]: u for u in plans.compare(conn, plan_id)["units"]}
    pp = metrics.get("polsby_popper") or []
    by_code: dict[str, list[str]] = {}
    for f in problems:
        if f["properties"]["source"] == "proposed":
            for code in [f["properties"].get("code"), *f["properties"].get("codes", [])]:
                if code:
                    by_code.setdefault(code, []).append(f["properties"]["problem"])
    parts = []
    for k, u in enumerate(proposed):
        parts.append({"seq": u["seq"], "group": u["grp"], "code": u["code"], "name": u["name"],
                      "households": u["households"], "area_m2": u["area_m2"],
                      "polsby_popper": pp[k] if k < len(pp) and plan["kind"] != "merge" else None,
                      "contiguous": "not_contiguous" not in by_code.get(u["code"], []),
                      "problems": sorted(set(by_code.get(u["code"], []))),
                      "from": flows.get(u["seq"], {}).get("from", {})})
    if plan["kind"] == "merge":
        for part, merge in zip(parts, metrics.get("merges") or []):
            part["polsby_popper"] = merge.get("polsby_popper")
            part["merges"] = {"small": merge.get("small"), "into": merge.get("into"),
                              "households_moved": merge.get("households_moved")}
    return {
        "plan": {k: plan[k] for k in ("id", "kind", "status", "level", "revision", "params", "notes", "created_at",
                                      "updated_at", "closed_at")}
                | {"kind_zh": KIND_ZH.get(plan["kind"], plan["kind"]), "status_zh": STATUS_ZH.get(plan["status"]),
                   "level_zh": levels.LABEL_ZH[level]},
        "band": list(band) if band else None,
        "metrics": metrics,
        "parent": {k: v for k, v in parent.items() if k != "geom"} | {"level_zh": levels.LABEL_ZH[parent["level"]]}
        if parent else None,
        "parts": parts,
        "proposed": {"type": "FeatureCollection", "features": [
            _feature(u["geom"], {"id": u["seq"], "seq": u["seq"], "code": u["code"], "name": u["name"],
                                 "short": _short(u["name"], parent), "households": u["households"], "lp": u["lp"],
                                 "room": u["room"]}) for u in proposed]},
        "current": {"type": "FeatureCollection", "features": [
            _feature(r["geom"], {"id": r["id"], "code": r["code"], "name": r["name"], "households": r["households"],
                                 "version": r["version"], "level": r["level"], "current": r["current"],
                                 "lp": r["lp"], "room": r["room"]}) for r in replaced]},
        "outline": _feature(parent["geom"], {"code": parent["code"], "name": parent["name"]}) if parent else None,
        "problems": {"type": "FeatureCollection", "features": problems},
    }


def render(conn, plan_id: int, *, base: str | None = None) -> str:
    data = plan_data(conn, plan_id)
    p = data["plan"]
    title = f"方案 #{p['id']} {p['kind_zh']} Plan · gridmap"
    config = {"api": {"plan": f"/plans/{plan_id}", "compare": f"/plans/{plan_id}/compare",
                      "units": f"/plans/{plan_id}/units", "unit": "/units/"},
              "bands": {lv: list(b) for lv, b in levels.HOUSEHOLD_BANDS.items()}}
    return page.render("plan", title, config, data=json.dumps(data, ensure_ascii=False, default=str), base=base)


def index_page(conn, with_plans: bool = True) -> str:
    """/maps: the three maps and (for those who may see plans) every stored plan."""
    rows = plans.list_plans(conn) if with_plans else []
    items = "".join(
        f"<tr><td><a href='/maps/plan/{p['id']}'>#{p['id']}</a></td>"
        f"<td>{KIND_ZH.get(p['kind'], p['kind'])} {html.escape(p['kind'])}</td>"
        f"<td>{levels.LABEL_ZH.get(p['level'], p['level'])}</td>"
        f"<td>{STATUS_ZH.get(p['status'], p['status'])}</td><td>{p['parts'] or '–'}</td>"
        f"<td>{'全部达标 all met' if not p['targets_missed'] else str(p['targets_missed']) + ' 项未达标 missed'}</td>"
        f"<td>{p['created_at']:%Y-%m-%d %H:%M}</td></tr>"
        for p in rows)
    table = (f"<table><tr><th>方案 Plan</th><th>类型 Kind</th><th>层级 Level</th><th>状态 Status</th>"
             f"<th>单元 Parts</th><th>目标 Targets</th><th>创建 Created</th></tr>{items}</table>"
             if rows else "<p>还没有方案 No plans yet: <code>POST /plans/split</code> or <code>gridmap plan split</code>.</p>")
    body = ("<h1>网格地图 gridmap maps</h1><ul>"
            "<li><a href='/maps/overview'>总览 Overview</a> — 各级单元、户数与标准、搜索 every level, households against the band, search</li>"
            "<li><a href='/maps/overview?base=amap'>总览（高德底图）Overview on Amap</a></li>"
            "<li><a href='/maps/dispatch'>事件调度 Dispatch</a> — 事件、热力图、网格统计 incidents, heat map, per-grid counts</li>"
            "</ul>" + (f"<h2>规划方案 Plans</h2>{table}" if with_plans else ""))
    return page.simple_page("网格地图 gridmap maps", body)
