"""/maps/plan/{id}: a split or merge plan beside the boundaries it replaces, and /maps, the
index of the maps and plans.

The page draws what geo/usecases/plan_review.py gathers: the plan's proposed units (with
households, band and Polsby-Popper), the units it replaces at the versions it was drawn
from, the outline of the unit it redraws, where each part's households come from, the
plan's metrics and targets missed, and the problems the checks of stored units find on the
proposed and the current units.
"""

from __future__ import annotations

import html
import json
from typing import Any

from geo.units import levels
from maps import page

KIND_ZH = {"split": "拆分", "redraw": "重划", "merge": "合并"}
STATUS_ZH = {"draft": "草案", "committed": "已实施", "discarded": "已放弃"}


def render(data: dict[str, Any], api: dict[str, str], *, base: str | None = None) -> str:
    """The page of one plan: `data` from geo/usecases/plan_review.py, `api` the URLs it links
    (plan, compare, units, unit), from the router."""
    p = data["plan"]
    p.update(kind_zh=KIND_ZH.get(p["kind"], p["kind"]), status_zh=STATUS_ZH.get(p["status"]),
             level_zh=levels.LABEL_ZH[p["level"]])
    if data.get("parent"):
        data["parent"]["level_zh"] = levels.LABEL_ZH[data["parent"]["level"]]
    title = f"方案 #{p['id']} {p['kind_zh']} Plan · gridmap"
    config = {"api": api, "bands": {lv: list(b) for lv, b in levels.HOUSEHOLD_BANDS.items()}}
    return page.render("plan", title, config, data=json.dumps(data, ensure_ascii=False, default=str), base=base)


def index_page(plans: list[dict[str, Any]], links: dict[str, str], with_plans: bool = True) -> str:
    """/maps: the three maps and (for those who may see plans) every stored plan. `links`:
    the URLs of overview, dispatch and a plan's map (with {id}), from the router."""
    rows = plans if with_plans else []
    items = "".join(
        f"<tr><td><a href='{links['plan'].replace('{id}', str(p['id']))}'>#{p['id']}</a></td>"
        f"<td>{KIND_ZH.get(p['kind'], p['kind'])} {html.escape(p['kind'])}</td>"
        f"<td>{levels.LABEL_ZH.get(p['level'], p['level'])}</td>"
        f"<td>{STATUS_ZH.get(p['status'], p['status'])}</td><td>{p['parts'] or '–'}</td>"
        f"<td>{'全部达标 all met' if not p['targets_missed'] else str(p['targets_missed']) + ' 项未达标 missed'}</td>"
        f"<td>{p['created_at']:%Y-%m-%d %H:%M}</td></tr>"
        for p in rows)
    table = (f"<table><tr><th>方案 Plan</th><th>类型 Kind</th><th>层级 Level</th><th>状态 Status</th>"
             f"<th>单元 Parts</th><th>目标 Targets</th><th>创建 Created</th></tr>{items}</table>"
             if rows else
             "<p>还没有方案 No plans yet: <code>POST /plans/split</code> or <code>gridmap plan split</code>.</p>")
    body = ("<h1>网格地图 gridmap maps</h1><ul>"
            f"<li><a href='{links['overview']}'>总览 Overview</a> — 各级单元、户数与标准、搜索 "
            "every level, households against the band, search</li>"
            f"<li><a href='{links['overview']}?base=amap'>总览（高德底图）Overview on Amap</a></li>"
            f"<li><a href='{links['dispatch']}'>事件调度 Dispatch</a> — 事件、热力图、网格统计 "
            "incidents, heat map, per-grid counts</li>"
            "</ul>" + (f"<h2>规划方案 Plans</h2>{table}" if with_plans else ""))
    return page.simple_page("网格地图 gridmap maps", body)
