"""No route shows a resident's contact or a worker's phone to a service or planner key.

Masking is decided in one place, by the readers that know the viewer (geo/db/incidents.py and
geo/db/workers.py, through geo/security/privacy.py). This test does not trust that: it walks
every GET route the app documents, with real ids in every path, as each role without the
`contact` permission, and looks for the secrets in every answer. A route added later is walked
too, and a path parameter this test cannot fill fails it, so the new route gets looked at."""

from __future__ import annotations

import math
import re

import psycopg
import pytest

from tests.conftest import bearer

LON, LAT = 114.30, 30.55
PHONE, EMAIL, NAME = "13812345678", "wang.xiaoming@example.cn", "王小明"
WORKER_PHONE = "13987654321"
SECRETS = (PHONE, EMAIL, NAME, WORKER_PHONE)


def _tile(z: int) -> tuple[int, int]:
    n = 2 ** z
    return (int((LON + 180) / 360 * n),
            int((1 - math.asinh(math.tan(math.radians(LAT))) / math.pi) / 2 * n))


@pytest.fixture(scope="module")
def planted(secured, http):
    """An incident and a worker holding the secrets, and the ids to aim every route at."""
    admin = bearer(secured.keys["admin"])
    made = http.post("/incidents", headers=admin, json={
        "category": "garbage", "lon": LON, "lat": LAT, "contact": f"{NAME} {PHONE} {EMAIL}",
        "description": f"楼下垃圾没人收，请打 {PHONE} 或发邮件 {EMAIL}", "external_id": "privacy-1"})
    assert made.status_code == 201, made.text
    incident = made.json()
    moved = http.post(f"/incidents/{incident['id']}/transitions", headers=admin, json={
        "to": "rejected", "version": incident["version"], "actor": "王科长", "note": f"已电话联系 {PHONE}"})
    assert moved.status_code == 200, moved.text
    grid = incident["grid"]["id"]
    worker = http.post("/workers", headers=admin, json={"name": "李网格员", "role": "grid_worker",
                                                         "unit_id": grid, "phone": WORKER_PHONE})
    assert worker.status_code == 201, worker.text
    plan = http.post("/plans/merge", headers=admin, json={"level": "community"})
    assert plan.status_code == 201, plan.text
    with psycopg.connect(secured.url) as conn:
        unit = conn.execute("SELECT unit_id FROM unit_version WHERE level = 'community' AND valid_to IS NULL "
                            "ORDER BY code LIMIT 1").fetchone()[0]
    z = 15
    x, y = _tile(z)
    return {
        "path": {"unit_id": grid, "incident_id": incident["id"], "plan_id": plan.json()["id"],
                 "collectionId": "incidents", "featureId": incident["id"], "request_id": incident["id"],
                 "level": "grid", "z": z, "x": x, "y": y, "path": "gridmap/gridmap.css",
                 "worker_id": worker.json()["id"], "fmt": "json",
                 "token": "not-a-token"},
        "query": {"level": "grid", "unit_id": grid, "from": "2020-01-01", "to": "2100-01-01", "q": "网格",
                  "bbox": f"{LON - 0.01},{LAT - 0.01},{LON + 0.01},{LAT + 0.01}", "lon": LON, "lat": LAT},
        "community": unit,
    }


def _get_routes(http, key: str) -> list[tuple[str, list[str], list[str]]]:
    """Every GET route the app documents: path, its path parameters, its required query ones."""
    spec = http.get("/openapi.json", headers=bearer(key)).json()
    routes = []
    for path, ops in spec["paths"].items():
        op = ops.get("get")
        if op is None:
            continue
        params = op.get("parameters", [])
        routes.append((path, re.findall(r"{(\w+)}", path),
                       [p["name"] for p in params if p["in"] == "query" and p.get("required")]))
    return routes


def test_contacts_are_reachable_for_a_dispatcher(secured, http, planted):
    """The control: the secrets are there to be found, for those who may see them."""
    dispatcher = bearer(secured.keys["dispatcher"])
    one = http.get(f"/incidents/{planted['path']['incident_id']}", headers=dispatcher).text
    assert PHONE in one and EMAIL in one and NAME in one
    assert WORKER_PHONE in http.get("/workers", params={"unit_id": planted["query"]["unit_id"]},
                                    headers=dispatcher).text


@pytest.mark.parametrize("role", ["service", "planner"])
def test_no_route_shows_a_contact_to_a_role_without_the_contact_permission(secured, http, planted, role):
    key = secured.keys[role]
    routes = _get_routes(http, secured.keys["admin"])
    assert len(routes) > 30, "the OpenAPI document lists the GET routes"
    unknown = {name for _, path_params, query in routes for name in path_params + query
               if name not in planted["path"] and name not in planted["query"]}
    assert not unknown, f"teach this test what to put in {sorted(unknown)}"
    answered, leaks = {}, []
    for path, path_params, required in routes:
        url = path.format(**{name: planted["path"][name] for name in path_params})
        params = {name: planted["query"][name] for name in required}
        if path == "/incidents":
            params["unit_id"] = planted["query"]["unit_id"]
        response = http.get(url, params=params, headers=bearer(key) | {"Accept": "text/html, application/json"})
        answered[path] = response.status_code
        leaks += [f"{path} ({response.status_code}) shows {secret!r}" for secret in SECRETS
                  if secret in response.text]
    assert not leaks, "\n".join(leaks)
    # the routes that carry incidents and workers were reached, not refused
    for path in ("/incidents/{incident_id}", "/incidents", "/workers", "/workers/{worker_id}", "/maps/api/incidents",
                 "/open311/v2/requests.{fmt}", "/open311/v2/requests/{request_id}.{fmt}",
                 "/open311/v2/servicerequestupdates.{fmt}",
                 "/ogc/collections/{collectionId}/items", "/audit"):
        expected = 403 if path == "/audit" else 200
        assert answered.get(path) == expected, (path, answered.get(path))
