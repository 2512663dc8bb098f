"""Keys, roles, masking and map sessions, through a real server with auth on (`secured`):
401 without credentials, 403 with the wrong role, the route's own answer with the right one,
on a representative route of every router; no route left open; contact masked for every role
but dispatcher and admin; revoked keys refused; keys stored hashed; the maps' login; and
`gridmap serve` refusing a non-loopback address with auth off."""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from api import security as api_auth
from geo.security import identity as auth
from tests.conftest import ROOT, bearer, free_port, run_cli

ROLES = tuple(auth.ROLES)
EVERYONE = set(ROLES)
LON, LAT = 114.30, 30.55


def _tile(z: int, lon: float = LON, lat: float = LAT) -> str:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/tiles/street/{z}/{x}/{y}.mvt"


@pytest.fixture(scope="module")
def ids(secured, http):
    """A grid and an incident of the secured server to aim the routes at."""
    with psycopg.connect(secured.url) as conn:
        grid = conn.execute("SELECT unit_id FROM unit_version WHERE level = 'grid' AND valid_to IS NULL "
                            "ORDER BY code LIMIT 1").fetchone()[0]
        street = conn.execute("SELECT unit_id FROM unit_version WHERE level = 'street' LIMIT 1").fetchone()[0]
    made = http.post("/incidents", headers=bearer(secured.keys["admin"]), json={
        "category": "garbage", "lon": LON, "lat": LAT, "contact": "13912345678", "description": "垃圾"})
    assert made.status_code == 201, made.text
    return {"grid": grid, "street": street, "incident": made.json()["id"]}


# (method, path, body, roles allowed, what the allowed get). Bodies that pass auth but are
# wrong (stale versions, unknown ids) show the route was reached without changing anything.
CASES = [
    ("GET", "/units?level=street", None, EVERYONE, 200),
    ("GET", "/units/{grid}/history", None, EVERYONE, 200),
    ("PUT", "/units/{grid}", {"version": 999, "name": "x"}, {"planner", "admin"}, 409),
    ("GET", f"/locate?lon={LON}&lat={LAT}", None, EVERYONE, 200),
    ("POST", "/locate", [[LON, LAT]], EVERYONE, 200),
    ("POST", "/incidents", {"category": "no-such", "lon": LON, "lat": LAT}, {"service", "dispatcher", "admin"}, 422),
    ("GET", "/incidents/{incident}", None, EVERYONE, 200),
    ("GET", "/incidents?limit=5", None, EVERYONE, 200),
    ("POST", "/incidents/{incident}/transitions", {"to": "in_progress", "version": 999, "actor": "x"},
     {"dispatcher", "admin"}, 409),
    ("GET", "/stats?level=street&from=2020-01-01&to=2030-01-01", None, EVERYONE, 200),
    ("POST", "/workers", {"name": "x", "role": "grid_worker", "unit_id": "{street}"}, {"dispatcher", "admin"}, 422),
    ("GET", "/workers?unit_id={grid}", None, EVERYONE, 200),
    ("GET", "/open311/v2/services.json", None, EVERYONE, 200),
    ("GET", "/open311/v2/requests/{incident}.json", None, EVERYONE, 200),
    ("POST", "/open311/v2/requests.json", {"service_code": "garbage"}, {"service", "dispatcher", "admin"}, 400),
    ("GET", "/plans", None, {"planner", "admin"}, 200),
    ("POST", "/plans/split", {"unit": 999999}, {"planner", "admin"}, 404),
    ("POST", "/plans/999999/commit", None, {"planner", "admin"}, 404),
    ("GET", "/validate?level=street", None, {"planner", "admin"}, 200),
    ("GET", _tile(12), None, EVERYONE, 200),
    ("GET", "/ogc/collections", None, EVERYONE, 200),
    ("GET", "/ogc/collections/incidents/items?limit=2", None, EVERYONE, 200),
    ("GET", "/maps/overview", None, EVERYONE, 200),
    ("GET", "/maps/api/incidents", None, EVERYONE, 200),
    ("GET", "/maps/plan/999999", None, {"planner", "admin"}, 404),
    ("GET", "/keys", None, {"admin"}, 200),
    ("POST", "/keys", {"role": "superuser", "name": "x"}, {"admin"}, 422),
    ("DELETE", "/keys/999999", None, {"admin"}, 404),
    ("GET", "/audit?limit=5", None, {"admin"}, 200),
    ("GET", "/whoami", None, EVERYONE, 200),
]


def _fill(value, ids):
    if isinstance(value, str):
        filled = value.format(**ids)
        return int(filled) if value.startswith("{") and filled.isdigit() else filled
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("method, path, body, allowed, ok", CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_each_role_gets_401_403_or_the_route(http, secured, ids, method, path, body, allowed, ok):
    path, body = _fill(path, ids), _fill(body, ids)
    kwargs = {"json": body} if body is not None else {}
    anonymous = http.request(method, path, **kwargs)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"].startswith('Bearer realm="gridmap"')
    refused = anonymous.json()
    if path.startswith("/open311/"):  # GeoReport's own error shape, [{code, description}]
        [georeport] = refused
        assert georeport["code"] == 401 and "Authorization: Bearer" in georeport["description"]
        for role in ROLES:
            answer = http.request(method, path, headers=bearer(secured.keys[role]), **kwargs)
            assert answer.status_code == (ok if role in allowed else 403), (role, answer.text)
            if role not in allowed:
                assert answer.json()[0]["code"] == 403 and f"({role})" in answer.json()[0]["description"]
        return
    assert refused["error"] == "Unauthorized" and "Authorization: Bearer" in refused["detail"]
    assert set(refused["needs"]["roles"]) == set(auth.roles_with(refused["needs"]["permission"])) == allowed
    for role in ROLES:
        answer = http.request(method, path, headers=bearer(secured.keys[role]), **kwargs)
        if role in allowed:
            assert answer.status_code == ok, (role, answer.text)
        else:
            assert answer.status_code == 403, (role, answer.status_code, answer.text)
            body_403 = answer.json()
            assert body_403["error"] == "Forbidden" and f"({role})" in body_403["detail"]
            assert role not in body_403["needs"]["roles"]
            assert set(body_403["needs"]["roles"]) == set(auth.roles_with(body_403["needs"]["permission"]))


def test_no_route_answers_without_credentials(http):
    """Every route the app serves, but the public few, refuses a caller with no key."""
    from api.app import app

    checked = set()
    for route in api_auth.routes(app):
        if route.path in api_auth.PUBLIC:
            continue
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            answer = http.request(method, path)
            assert answer.status_code == 401, (method, route.path, answer.status_code, answer.text[:200])
            checked.add((method, route.path))
    # every operation the API documents was among them (GET /locate is served once, by its fast route)
    documented = {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
                  if path not in api_auth.PUBLIC}
    assert documented <= checked, documented - checked
    assert len(checked) >= 49


def test_a_route_without_a_permission_stops_the_app_from_starting():
    from fastapi import FastAPI

    loose = FastAPI()

    @loose.get("/open")
    def open_route() -> dict:
        return {}

    with pytest.raises(RuntimeError, match="routes without a permission.*/open"):
        api_auth.check_routes(loose)


def test_x_api_key_works_and_bad_credentials_are_refused(http, secured):
    who = http.get("/whoami", headers={"X-API-Key": secured.keys["planner"]}).json()
    assert who["role"] == "planner" and who["actor"].endswith("test-planner (planner)")
    assert who["permissions"] == ["plan", "read"] and who["auth"] == "on"
    wrong = secured.keys["planner"][:-4] + "AAAA"
    for headers in ({"Authorization": f"Bearer {wrong}"}, {"X-API-Key": "gm_nonsense"},
                    {"Authorization": f"Basic {secured.keys['admin']}"}):
        answer = http.get("/units", params={"level": "street"}, headers=headers)
        assert answer.status_code == 401, headers
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
        edit = http.put("/units/1", json={"version": 1}, headers=headers)
        assert edit.status_code == 401 and edit.json()["needs"]["permission"] == "plan"
    assert http.get("/health").json()["auth"] == "on"  # health stays public


def test_contact_is_masked_for_every_role_but_dispatcher_and_admin(http, secured, ids):
    report = {"category": "noise", "lon": LON, "lat": LAT, "contact": "张三 13812345678 zhang.san@example.cn",
              "description": "楼上噪音，回电13812345678", "channel": "wechat"}
    made = http.post("/incidents", json=report, headers=bearer(secured.keys["service"]))
    assert made.status_code == 201, made.text
    assert made.json()["contact"] == "张* 138****5678 z***@example.cn"  # the intake service sees it masked
    incident = made.json()["id"]
    masked_text = "楼上噪音，回电138****5678"
    for role in ROLES:
        headers = bearer(secured.keys[role])
        one = http.get(f"/incidents/{incident}", headers=headers).json()
        listed = next(i for i in http.get("/incidents", headers=headers).json()["items"] if i["id"] == incident)
        open311 = http.get(f"/open311/v2/requests/{incident}.json", headers=headers).json()[0]
        dispatch = http.get("/maps/api/incidents", headers=headers).json()
        k = dispatch["fields"].index("description")
        on_map = next(r for r in dispatch["incidents"] if r[0] == incident)[k]
        if role in ("dispatcher", "admin"):
            assert one["contact"] == listed["contact"] == report["contact"], role
            assert one["description"] == open311["description"] == on_map == report["description"], role
        else:
            assert one["contact"] == listed["contact"] == "张* 138****5678 z***@example.cn", role
            assert one["description"] == open311["description"] == on_map == masked_text, role
    worker = http.post("/workers", headers=bearer(secured.keys["dispatcher"]),
                       json={"name": "李网格员", "role": "grid_worker", "unit_id": ids["grid"], "phone": "13700001111"})
    assert worker.status_code == 201, worker.text
    phones = {role: http.get("/workers", params={"unit_id": ids["grid"]}, headers=bearer(secured.keys[role])).json()[-1]
              ["phone"] for role in ROLES}
    assert phones == {"service": "137****1111", "planner": "137****1111", "dispatcher": "13700001111",
                      "admin": "13700001111"}


def test_a_key_revoked_through_the_api_is_refused_at_once(http, secured):
    made = http.post("/keys", json={"role": "service", "name": "short-lived"}, headers=bearer(secured.keys["admin"]))
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert key.startswith(f"gm_{made.json()['prefix']}_")
    assert http.get("/whoami", headers=bearer(key)).status_code == 200
    revoked = http.delete(f"/keys/{made.json()['id']}", headers=bearer(secured.keys["admin"]))
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert http.get("/whoami", headers=bearer(key)).status_code == 401  # this worker forgot it at once
    again = http.delete(f"/keys/{made.json()['id']}", headers=bearer(secured.keys["admin"]))
    assert again.status_code == 409 and "already revoked" in again.json()["detail"]


def test_a_key_revoked_from_the_command_line_is_refused_within_the_ttl(http, secured):
    env = {"DATABASE_URL": secured.url}
    made = run_cli("keys", "create", "--role", "dispatcher", "--name", "desk 2", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert "copy it now" in made.stderr and key not in made.stderr
    assert http.get("/whoami", headers=bearer(key)).json()["name"] == "desk 2"
    key_id = http.get("/whoami", headers=bearer(key)).json()["key_id"]
    listed = run_cli("keys", "list", env=env)
    assert listed.returncode == 0 and "desk 2" in listed.stdout and key not in listed.stdout
    revoked = run_cli("keys", "revoke", str(key_id), env=env)
    assert revoked.returncode == 0, revoked.stderr
    time.sleep(1.5)  # the server's key cache holds verified keys for 1 s here (30 s by default)
    assert http.get("/whoami", headers=bearer(key)).status_code == 401
    assert run_cli("keys", "revoke", str(key_id), env=env).returncode == 2
    bad = run_cli("keys", "create", "--role", "root", "--name", "x", env=env)
    assert bad.returncode == 2 and "unknown role 'root'" in bad.stderr


def test_keys_are_stored_hashed_and_nowhere_in_the_database(secured):
    made = run_cli("keys", "create", "--role", "service", "--name", "hash check", env={"DATABASE_URL": secured.url})
    key = made.stdout.strip()
    secret = key.split("_", 2)[2]
    with psycopg.connect(secured.url) as conn:
        prefix, stored = conn.execute("SELECT prefix, hash FROM api_key WHERE name = 'hash check'").fetchone()
        assert key == f"gm_{prefix}_{secret}" and bytes(stored) == hashlib.sha256(key.encode()).digest()
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE'")]
        for table in tables:
            found = conn.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s',
                                 [f"%{secret[:20]}%"]).fetchone()[0]
            assert found == 0, table


def test_maps_send_a_browser_to_login_and_the_session_cookie_opens_them(secured):
    page = {"Accept": "text/html,application/xhtml+xml"}
    with httpx.Client(base_url=secured.base, timeout=60) as browser:
        first = browser.get("/maps/dispatch?refresh=30", headers=page)
        assert first.status_code == 303 and first.headers["location"] == "/login?next=%2Fmaps%2Fdispatch%3Frefresh%3D30"
        form = browser.get("/login", params={"next": "/maps/dispatch?refresh=30"})
        assert form.status_code == 200 and 'name="key"' in form.text and 'type="password"' in form.text
        wrong = browser.post("/login", data={"key": "gm_00000000_" + "A" * 43, "next": "/maps/dispatch"})
        assert wrong.status_code == 401 and "not valid" in wrong.text and "gridmap_session" not in browser.cookies
        elsewhere = browser.post("/login", data={"key": secured.keys["dispatcher"], "next": "https://evil.example/"},
                                 headers={"Sec-Fetch-Site": "cross-site"})
        assert elsewhere.status_code == 403  # a form posted from another site
        login = browser.post("/login", data={"key": secured.keys["dispatcher"], "next": "/maps/dispatch?refresh=30"})
        assert login.status_code == 303 and login.headers["location"] == "/maps/dispatch?refresh=30"
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("gridmap_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Max-Age=43200" in cookie and "Path=/" in cookie and "Secure" not in cookie  # plain http here
        assert secured.keys["dispatcher"] not in cookie
        dispatch = browser.get("/maps/dispatch?refresh=30", headers=page)
        assert dispatch.status_code == 200 and "leaflet" in dispatch.text.lower()
        static = re.search(r'src="(/maps/static/[^"]+\.js[^"]*)"', dispatch.text).group(1)
        assert browser.get(static).status_code == 200
        assert browser.get("/maps/api/incidents").status_code == 200
        assert browser.get(_tile(13)).status_code in (200, 204)
        assert browser.get("/whoami").json()["role"] == "dispatcher"
        # the cookie is for reading: a write needs the key itself
        write = browser.post("/incidents", json={"category": "garbage", "lon": LON, "lat": LAT})
        assert write.status_code == 401
        # an open redirect is not: next must be a path on this site
        away = browser.post("/login", data={"key": secured.keys["dispatcher"], "next": "//evil.example/x"})
        assert away.headers["location"] == "/maps"
        # a tampered cookie is no session
        value = browser.cookies["gridmap_session"]
        tampered = value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1]
        for cookie_value, status in ((tampered, 303), (value, 200)):
            answer = httpx.get(secured.base + "/maps/dispatch",
                               headers={**page, "Cookie": f"gridmap_session={cookie_value}"})
            assert answer.status_code == status
        out = browser.get("/logout")
        assert out.status_code == 303 and 'gridmap_session=""' in out.headers["set-cookie"]
        assert browser.get("/maps/dispatch", headers=page).status_code == 303


def test_a_session_ends_with_its_key_and_a_service_key_sees_no_plans(secured):
    admin = bearer(secured.keys["admin"])
    with httpx.Client(base_url=secured.base, timeout=60) as browser:
        made = browser.post("/keys", json={"role": "service", "name": "wall screen"}, headers=admin).json()
        browser.post("/login", data={"key": made["key"], "next": "/maps"})
        index = browser.get("/maps", headers={"Accept": "text/html"})
        assert index.status_code == 200 and "/maps/dispatch" in index.text and "Plans" not in index.text
        plan_page = browser.get("/maps/plan/1", headers={"Accept": "text/html"})
        assert plan_page.status_code == 403 and "<h1>403" in plan_page.text
        browser.delete(f"/keys/{made['id']}", headers=admin)
        assert browser.get("/maps", headers={"Accept": "text/html"}).status_code == 303


def test_serve_refuses_a_non_loopback_address_with_auth_off(secured):
    def serve(*args: str, auth_setting: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", "serve", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env={**_env(), "DATABASE_URL": secured.url,
                                                          "GRIDMAP_AUTH": auth_setting, "COLUMNS": "300"})

    refused = serve("--host", "0.0.0.0", "--port", str(free_port()), auth_setting="off")
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 with auth off" in refused.stderr
    assert "gridmap keys create --role admin --name NAME" in refused.stderr
    unclear = serve("--host", "127.0.0.1", "--port", str(free_port()), auth_setting="maybe")
    assert unclear.returncode == 2 and "use on or off" in unclear.stderr


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "GRIDMAP_AUTH"}


def test_with_auth_off_everyone_is_an_admin_who_sees_contacts(server):
    with httpx.Client(base_url=server, timeout=60) as client:
        assert client.get("/health").json()["auth"] == "off"
        who = client.get("/whoami").json()
        assert who["actor"] == "anonymous (auth off)" and who["role"] == "admin"
        made = client.post("/incidents", json={"category": "garbage", "lon": LON, "lat": LAT,
                                                "contact": "13812345678"}).json()
        assert client.get(f"/incidents/{made['id']}").json()["contact"] == "13812345678"
        assert client.get("/login").status_code == 200 and "Auth is off" in client.get("/login").text
