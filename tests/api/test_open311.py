"""Open311 GeoReport v2, complete: read by a client written elsewhere (`georeport` from PyPI) in
JSON and in XML, and written as the spec's clients write: `api_key` as a form field, an
address_string kept and returned, Chinese names in their order, status and date filters, and
every status change as an update since a time. Real app with auth on, real PostGIS."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import httpx
import psycopg
import pytest
from georeport import GeoReport

from geo.usecases.keys import create_key
from tests.conftest import launch_server, stop_server


@pytest.fixture(scope="module")
def city(databases, sample_template):
    """A server with auth on over the sample, a resident-facing key and a dispatcher's, and a spot."""
    from types import SimpleNamespace

    url = databases.url(databases.create(template=sample_template))
    with psycopg.connect(url) as conn:
        _, reporter = create_key(conn, "service", "wechat app", "test")
        _, dispatcher = create_key(conn, "dispatcher", "desk", "test")
        x, y = conn.execute("SELECT ST_X(p), ST_Y(p) FROM unit_version, ST_PointOnSurface(geom) p "
                            "WHERE level = 'neighbourhood' ORDER BY code LIMIT 1 OFFSET 40").fetchone()
    proc, base = launch_server(url, {"GRIDMAP_AUTH": "on"})
    yield SimpleNamespace(url=url, base=base, reporter=reporter, dispatcher=dispatcher, lon=x, lat=y)
    stop_server(proc)


def _post(city, fmt: str = "json", **fields):
    body = {"service_code": "manhole", "lat": city.lat, "long": city.lon, **fields}
    return httpx.post(f"{city.base}/open311/v2/requests.{fmt}", data=body, timeout=60)


def test_a_resident_reports_with_the_api_key_field_and_an_address(city):
    refused = _post(city, description="no key")
    assert refused.status_code == 401 and refused.json()[0]["code"] == 401
    made = _post(city, api_key=city.reporter, description="井盖不见了", address_string="武昌区中南路 12 号门口",
                 first_name="三", last_name="张", phone="13800000000")
    assert made.status_code == 201, made.text
    request_id = made.json()[0]["service_request_id"]
    one = httpx.get(f"{city.base}/open311/v2/requests/{request_id}.json",
                    headers={"X-API-Key": city.dispatcher}, timeout=60).json()[0]
    assert one["address"] == "武昌区中南路 12 号门口"
    incident = httpx.get(f"{city.base}/incidents/{request_id}", headers={"X-API-Key": city.dispatcher}).json()
    assert incident["contact"] == "张三 13800000000"  # family name first, as written in Chinese
    western = _post(city, api_key=city.reporter, first_name="Ada", last_name="Lovelace", email="ada@example.org")
    incident = httpx.get(f"{city.base}/incidents/{western.json()[0]['service_request_id']}",
                         headers={"X-API-Key": city.dispatcher}).json()
    assert incident["contact"] == "Ada Lovelace ada@example.org"
    # a key that is not valid, in the field, is refused as in a header
    assert _post(city, api_key="gm_nothere_0000000000000000000000").status_code == 401
    # XML in, XML out: the created request and errors alike
    made_xml = _post(city, "xml", api_key=city.reporter, description="XML 客户端")
    assert made_xml.status_code == 201 and made_xml.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(made_xml.content)
    assert root.tag == "service_requests" and root.find("request/service_request_id").text.isdigit()
    bad = _post(city, "xml", api_key=city.reporter, lat="北纬")
    assert bad.status_code == 400
    error = ElementTree.fromstring(bad.content)
    assert error.tag == "errors" and error.find("error/code").text == "400"
    assert "numbers" in error.find("error/description").text


def test_a_client_written_elsewhere_reads_services_and_requests_in_json_and_xml(city):
    made = _post(city, api_key=city.reporter, description="读客户端", address_string="中南路")
    request_id = made.json()[0]["service_request_id"]
    for fmt in ("json", "xml"):
        client = GeoReport(f"{city.base}/open311/v2", jurisdiction="wuhan.gov.cn", output_format=fmt)
        # the client sends no header: the key travels as api_key in the query, as GeoReport allows
        client.root_address = f"{city.base}/open311/v2"
        services = _with_key(city, lambda c=client: c.get_service_list())
        assert {s["service_code"] for s in services} >= {"manhole", "garbage"}
        manhole = next(s for s in services if s["service_code"] == "manhole")
        assert manhole["service_name"] == "井盖缺失"
        listed = _with_key(city, lambda c=client: c.get_service_requests(status="open", service_code="manhole"))
        listed = listed if isinstance(listed, list) else [listed]
        assert request_id in [r["service_request_id"] for r in listed]
        one = _with_key(city, lambda c=client: c.get_service_request(request_id))
        assert one["address"] == "中南路" and one["service_code"] == "manhole"
        assert float(one["lat"]) == pytest.approx(city.lat)
        extended = one["extended_attributes"]
        assert extended["grid"].startswith("420199") and extended["state"] in ("reported", "assigned")
    # (georeport cannot read an empty XML list, <service_requests />, which the spec allows: asked directly)
    for fmt in ("json", "xml"):
        closed = httpx.get(f"{city.base}/open311/v2/requests.{fmt}", timeout=60, params={
            "status": "closed", "service_code": "manhole", "api_key": city.dispatcher,
            "end_date": "2020-01-01T00:00:00Z", "start_date": "2019-12-01T00:00:00Z"})
        assert closed.status_code == 200
        assert closed.content.strip().endswith(b"<service_requests />") if fmt == "xml" else closed.json() == []


def _with_key(city, call):
    """georeport sends no key on reads; a GET here takes it as the api_key parameter, so the
    client's requests go through a session that adds it (as a client configured with a key would)."""
    import requests

    original = requests.get

    def get(url, params=None, **kwargs):
        return original(url, params={**(params or {}), "api_key": city.dispatcher}, **kwargs)

    requests.get = get
    try:
        return call()
    finally:
        requests.get = original


def test_lists_filter_by_status_dates_and_codes(city):
    headers = {"X-API-Key": city.dispatcher}
    made = _post(city, api_key=city.reporter, service_code="noise", description="夜间施工")
    request_id = made.json()[0]["service_request_id"]
    now = datetime.now(UTC)

    def listed(**params):
        answer = httpx.get(f"{city.base}/open311/v2/requests.json", params=params, headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        return [r["service_request_id"] for r in answer.json()]

    assert request_id in listed(service_code="noise,manhole", status="open,closed")
    assert request_id not in listed(service_code="garbage")
    assert request_id not in listed(status="closed")
    assert request_id in listed(start_date=(now - timedelta(hours=1)).isoformat())
    assert request_id not in listed(end_date=(now - timedelta(days=1)).isoformat())
    bad = httpx.get(f"{city.base}/open311/v2/requests.json", params={"status": "pending"}, headers=headers)
    assert bad.status_code == 400 and "open, closed" in bad.json()[0]["description"]
    assert httpx.get(f"{city.base}/open311/v2/requests.csv", headers=headers).status_code == 404


def test_every_status_change_is_an_update_since_a_time(city):
    headers = {"X-API-Key": city.dispatcher}
    since = datetime.now(UTC) - timedelta(seconds=1)
    made = _post(city, api_key=city.reporter, service_code="garbage", description="垃圾满了")
    request_id = made.json()[0]["service_request_id"]
    incident = httpx.get(f"{city.base}/incidents/{request_id}", headers=headers).json()
    time.sleep(0.05)
    moved = httpx.post(f"{city.base}/incidents/{request_id}/transitions", headers=headers,
                       json={"to": "rejected", "version": incident["version"], "actor": "调度员", "note": "重复上报"})
    assert moved.status_code == 200, moved.text
    updates = httpx.get(f"{city.base}/open311/v2/servicerequestupdates.json", headers=headers,
                        params={"start_date": since.isoformat()}).json()
    mine = [u for u in updates if u["service_request_id"] == request_id]
    assert [u["status"] for u in mine] == ["open", "closed"]
    assert mine[-1]["description"] == "重复上报" and mine[0]["description"] == "待派单 reported"
    assert mine[0]["updated_datetime"] <= mine[1]["updated_datetime"]
    xml = httpx.get(f"{city.base}/open311/v2/servicerequestupdates.xml", headers=headers,
                    params={"start_date": since.isoformat()})
    root = ElementTree.fromstring(xml.content)
    assert root.tag == "service_requests_updates"
    assert request_id in [u.find("service_request_id").text for u in root.findall("request_update")]
    later = httpx.get(f"{city.base}/open311/v2/servicerequestupdates.json", headers=headers,
                      params={"start_date": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}).json()
    assert later == []
