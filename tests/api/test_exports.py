"""Incidents and statistics exported as a grid office opens them: CSV (UTF-8 with a BOM) and XLSX,
Chinese headers, Beijing times; statistics month by month. Real app and PostGIS; the files read
back with the csv module and openpyxl, the figures against independent SQL counts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from openpyxl import load_workbook

from geo.usecases import units as imports

BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def office(db_url, start_server):
    """The sample in force for a year, incidents in this month and the last, and the app."""
    imports.load_district(imports.SAMPLE_PATH, url=db_url, valid_from=datetime.now(UTC) - timedelta(days=365))
    base = start_server(db_url)
    with psycopg.connect(db_url) as conn:
        spots = conn.execute("SELECT ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
                             "WHERE level = 'neighbourhood' AND valid_to IS NULL ORDER BY code LIMIT 6").fetchall()
    now = datetime.now(BEIJING)
    last_month = now.replace(day=1) - timedelta(days=3)
    made = []
    for n, (x, y) in enumerate(spots):
        when = (now if n % 2 else last_month).isoformat()
        answer = httpx.post(f"{base}/incidents", json={"category": ("garbage", "noise")[n % 2], "lon": x, "lat": y,
                                                       "reported_at": when, "description": f"第{n}件",
                                                       "address": "中南路"})
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    return base, db_url, made


def _csv(answer: httpx.Response) -> list[list[str]]:
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith("\ufeff".encode())  # the BOM: Excel reads it as UTF-8
    return list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))


def _xlsx(answer: httpx.Response) -> list[list]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(answer.content), read_only=True).active
    return [["" if v is None else v for v in row] for row in sheet.iter_rows(values_only=True)]


def test_incidents_export_as_csv_and_xlsx_with_chinese_headers(office):
    base, url, made = office
    rows = _csv(httpx.get(f"{base}/incidents/export.csv", timeout=60))
    header, body = rows[0], rows[1:]
    assert header[:6] == ["编号", "类别", "类别代码", "状态", "状态代码", "上报时间"]
    assert len(body) == len(made)
    by_id = {int(r[0]): dict(zip(header, r, strict=True)) for r in body}
    for incident in made:
        row = by_id[incident["id"]]
        reported = datetime.fromisoformat(incident["reported_at"]).astimezone(BEIJING)
        assert row["上报时间"] == f"{reported:%Y-%m-%d %H:%M}" and row["地址"] == "中南路"
        assert row["状态"] == "待派单" and row["类别"] == incident["category_zh"]
        assert row["网格"] == incident["grid"]["name"] and row["区县代码"] == "420199"
    sheet = _xlsx(httpx.get(f"{base}/incidents/export.xlsx", timeout=60))
    assert [str(v) for v in sheet[0]] == header
    assert sorted(str(r[0]) for r in sheet[1:]) == sorted(r[0] for r in body)
    noise = _csv(httpx.get(f"{base}/incidents/export.csv", params={"category": "噪音扰民"}, timeout=60))
    assert {r[2] for r in noise[1:]} == {"noise"} and len(noise) - 1 == len(made) // 2
    assert httpx.get(f"{base}/incidents/export.pdf").status_code == 404


def test_statistics_month_by_month_and_their_export(office):
    base, url, made = office
    start = (datetime.now(BEIJING).replace(day=1) - timedelta(days=20)).replace(day=1, hour=0, minute=0, second=0,
                                                                               microsecond=0)
    params = {"level": "community", "from": start.isoformat(), "by": "month"}
    answer = httpx.get(f"{base}/stats", params=params, timeout=60).json()
    months = {m["month"]: sum(u["total"] for u in m["units"]) for m in answer["months"]}
    with psycopg.connect(url) as conn:
        expected = dict(conn.execute(
            "SELECT to_char(reported_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), count(*) FROM incident "
            "WHERE community_id IS NOT NULL AND reported_at >= %s GROUP BY 1", [start]).fetchall())
    assert months == expected and len(months) == 2
    rows = _csv(httpx.get(f"{base}/stats/export.csv", params=params, timeout=60))
    header = rows[0]
    assert header[:4] == ["月份", "编码", "名称", "总数"] and "待派单" in header
    per_month: dict[str, int] = {}
    for r in rows[1:]:
        per_month[r[0]] = per_month.get(r[0], 0) + int(r[3])
    assert per_month == expected
    sheet = _xlsx(httpx.get(f"{base}/stats/export.xlsx", params={"level": "street"}, timeout=60))
    assert sheet[0][:3] == ["编码", "名称", "总数"] and len(sheet) == 1 + 4  # the sample's four streets
    too_long = httpx.get(f"{base}/stats", params={"by": "month", "from": "2020-01-01", "level": "street"})
    assert too_long.status_code == 422 and "at most 36" in too_long.json()["detail"]
