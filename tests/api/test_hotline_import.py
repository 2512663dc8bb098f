"""Hotline exports as they come: Chinese column names, Chinese category names and aliases,
GB18030 from Excel; refused rows written whole beside their reason, in a file that imports
again once fixed. Against a real PostGIS, through the real command."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from tests.conftest import run_cli


@pytest.fixture
def spot(sample_url):
    with psycopg.connect(sample_url) as conn:
        x, y = conn.execute("SELECT ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
                            "WHERE level = 'neighbourhood' ORDER BY code LIMIT 1 OFFSET 100").fetchone()
    return x, y


def _summary(done) -> dict:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads([line for line in (done.stdout + done.stderr).splitlines() if line.startswith("{")][-1])


def _stored(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT external_id, category FROM incident").fetchall())


def test_a_gb18030_export_with_chinese_columns_and_names(sample_url, spot, tmp_path):
    now = datetime.now(UTC).isoformat()
    path = tmp_path / "12345热线.csv"
    with path.open("w", newline="", encoding="gb18030") as handle:  # as Excel saves a CSV in China
        writer = csv.writer(handle)
        writer.writerow(["工单号", "事件类型", "经度", "纬度", "上报时间", "问题描述", "渠道", "受理人"])
        writer.writerow(["W-1", "井盖缺失", spot[0], spot[1], now, "人行道井盖没了", "hotline", "王"])
        writer.writerow(["W-2", "违停", spot[0], spot[1], now, "消防通道停车", "hotline", "王"])
        writer.writerow(["W-3", "Garbage", spot[0], spot[1], now, "垃圾满了", "hotline", "李"])
        writer.writerow(["W-4", "飞碟", spot[0], spot[1], now, "不明飞行物", "hotline", "李"])
        writer.writerow(["W-5", "噪声", "东经114度", spot[1], now, "坐标写成了文字", "hotline", "赵"])
    result = _summary(run_cli("incidents", "import", str(path)))
    assert (result["created"], result["errors"]) == (3, 2)
    assert _stored(sample_url) == {"W-1": "manhole", "W-2": "parking", "W-3": "garbage"}

    errors = tmp_path / "12345热线.errors.csv"
    assert result["errors_file"] == str(errors)
    with errors.open(encoding="utf-8-sig") as handle:  # UTF-8 with a BOM: Excel shows the Chinese
        rows = list(csv.reader(handle))
    assert rows[0] == ["row", "error", "工单号", "事件类型", "经度", "纬度", "上报时间", "问题描述", "渠道", "受理人"]
    assert [r[0] for r in rows[1:]] == ["4", "5"]
    assert "unknown category '飞碟'" in rows[1][1] and "井盖缺失" in rows[1][1]
    assert "not numbers" in rows[2][1]
    assert rows[1][2:] == ["W-4", "飞碟", str(spot[0]), str(spot[1]), now, "不明飞行物", "hotline", "李"]

    # fixed in the errors file, which imports as it is; the first file again adds nothing
    rows[1][3], rows[2][4] = "其他", str(spot[0])
    with errors.open("w", newline="", encoding="utf-8-sig") as handle:
        csv.writer(handle).writerows(rows)
    fixed = _summary(run_cli("incidents", "import", str(errors), "--errors", str(tmp_path / "left.csv")))
    assert (fixed["created"], fixed["errors"]) == (2, 0)
    assert _stored(sample_url) == {"W-1": "manhole", "W-2": "parking", "W-3": "garbage", "W-4": "other",
                                   "W-5": "noise"}
    assert _summary(run_cli("incidents", "import", str(path)))["created"] == 0


def test_a_file_without_a_needed_column_is_refused_naming_it(sample_url, tmp_path):
    path = tmp_path / "no-place.csv"
    path.write_text("工单号,事件类型,描述\nW-1,井盖,缺失\n", encoding="utf-8")
    done = run_cli("incidents", "import", str(path))
    said = done.stdout + done.stderr
    assert done.returncode != 0 and "no column for lon, lat" in said and "经度" in said and "纬度" in said, said
    assert _stored(sample_url) == {}


def test_refused_features_are_written_whole_to_a_geojson_errors_file(sample_url, spot, tmp_path):
    good = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(spot)},
            "properties": {"工单号": "G-1", "类别": "路灯不亮"}}
    bad = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(spot)},
           "properties": {"工单号": "G-2", "类别": "外星人", "备注": "留着"}}
    path = tmp_path / "reports.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [good, bad]}, ensure_ascii=False),
                    encoding="utf-8")
    result = _summary(run_cli("incidents", "import", str(path)))
    assert (result["created"], result["errors"]) == (1, 1)
    assert _stored(sample_url) == {"G-1": "street_light"}
    written = json.loads((tmp_path / "reports.errors.geojson").read_text(encoding="utf-8"))
    [feature] = written["features"]
    assert feature["geometry"] == bad["geometry"]
    assert feature["properties"]["备注"] == "留着" and feature["properties"]["row"] == 2
    assert "unknown category '外星人'" in feature["properties"]["error"]


def test_the_api_takes_a_category_by_chinese_name_and_lists_aliases(sample_url, spot, start_server):
    base = start_server(sample_url)
    made = httpx.post(f"{base}/incidents", json={"category": "消防通道堵塞", "lon": spot[0], "lat": spot[1]})
    assert made.status_code == 201 and made.json()["category"] == "fire_hazard", made.text
    listed = {c["code"]: c for c in httpx.get(f"{base}/categories").json()}
    assert listed["fire_hazard"]["name_zh"] == "消防隐患" and "消防通道堵塞" in listed["fire_hazard"]["aliases"]
    unknown = httpx.post(f"{base}/incidents", json={"category": "外星人", "lon": spot[0], "lat": spot[1]})
    assert unknown.status_code == 422 and "fire_hazard (消防隐患)" in unknown.json()["detail"]
