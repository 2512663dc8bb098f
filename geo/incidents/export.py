"""Incidents and their statistics as tables a grid office opens in Excel: Chinese headers, local
times, one row per incident, or per unit (and month).

`incident_rows` and `stats_rows` give (headers, rows); `csv_bytes` and `xlsx_bytes` write them:
CSV in UTF-8 with a BOM (so Excel reads the Chinese), XLSX with openpyxl in write-only mode (a
well-kept library for a format nobody should write by hand; it streams rows).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from geo.incidents.lifecycle import STATE_ZH, STATES

INCIDENT_HEADERS = ("编号", "类别", "类别代码", "状态", "状态代码", "上报时间", "时限", "是否超期", "办结时间",
                    "街道", "社区", "网格", "网格编码", "处置人", "渠道", "描述", "地址", "经度", "纬度", "区县代码")
Table = tuple[Sequence[str], list[list[Any]]]


def _local(value: datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def incident_rows(items: Iterable[Mapping[str, Any]], zone: str) -> Table:
    """Incidents (as geo/db/incidents.py reads them, for the viewer) as a table."""
    tz = ZoneInfo(zone)

    def name(unit: Mapping[str, Any] | None) -> str:
        return "" if not unit else str(unit["name"])

    rows = [[
        i["id"], i["category_zh"], i["category"], STATE_ZH.get(i["state"], i["state"]), i["state"],
        _local(i["reported_at"], tz), _local(i["deadline"], tz), "是" if i["overdue"] else "否",
        _local(i["resolved_at"], tz), name(i.get("street")), name(i.get("community")), name(i.get("grid")),
        (i.get("grid") or {}).get("code", ""), (i.get("worker") or {}).get("name", ""), i["channel"],
        i["description"] or "", i.get("address") or "", i["wgs84"]["lon"], i["wgs84"]["lat"], i.get("district", ""),
    ] for i in items]
    return INCIDENT_HEADERS, rows


def stats_rows(answers: Sequence[tuple[str | None, Mapping[str, Any]]]) -> Table:
    """/stats answers, each with its month (None: the whole window), as one table: a row per unit
    (and month): counts, resolution, time to resolve and each state."""
    monthly = any(month for month, _ in answers)
    headers = [*(("月份",) if monthly else ()), "编码", "名称", "总数", "已办结", "办结率", "超期",
               "处置时长中位数（小时）", "已评价", "满意率", *(f"{STATE_ZH[s]}" for s in STATES), "已撤销单元"]
    rows = []
    for month, answer in answers:
        for u in answer["units"]:
            rate = u["resolution_rate"]
            rows.append([*((month,) if monthly else ()), u.get("code", ""), u.get("name", ""), u["total"],
                         u["resolved"], "" if rate is None else round(rate * 100, 1), u["overdue"],
                         "" if u["median_hours_to_resolve"] is None else u["median_hours_to_resolve"],
                         u.get("evaluated", 0),
                         "" if u.get("satisfaction_rate") is None else round(u["satisfaction_rate"] * 100, 1),
                         *(u["by_state"].get(s, 0) for s in STATES), "是" if u.get("retired") else "否"])
    return headers, rows


def csv_bytes(table: Table) -> bytes:
    headers, rows = table
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def xlsx_bytes(table: Table, sheet: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    headers, rows = table
    book = Workbook(write_only=True)
    page = book.create_sheet(sheet)
    page.freeze_panes = "A2"
    bold = []
    for h in headers:
        cell = WriteOnlyCell(page, value=h)
        cell.font = Font(bold=True)
        bold.append(cell)
    page.append(bold)
    for row in rows:
        page.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
