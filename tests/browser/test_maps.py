"""The maps in a real headless Chromium, served by the real app (uvicorn) over a copy of the
sample district with generated incidents, workers and two stored plans.

Every test fails on any console error, page error or request leaving the machine (see
tests/browser/maps_browser.py). Counts on the map are checked against the database. Screenshots of
each map are saved to out/screenshots/ (git-ignored), or to GRIDMAP_SCREENSHOTS if set:
`make screenshots` refreshes the README's pictures in docs/screenshots/.
"""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import sync_playwright

from geo.coords.datums import wgs84_to_gcj02
from geo.db import units
from geo.incidents import sample as incident_sample
from geo.locate.index import metres_per_degree
from geo.usecases import incidents as intake
from geo.usecases import plans
from geo.usecases import workers as staff
from tests.browser.maps_browser import MapPage, launch
from tests.conftest import ROOT, launch_server, stop_server

SHOTS = Path(os.environ.get("GRIDMAP_SCREENSHOTS") or ROOT / "out" / "screenshots")
OPEN = ("reported", "assigned", "in_progress")


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def maps_db(databases, sample_template) -> str:
    """The sample district, staffed as `gridmap init` staffs it, with 1,200 generated incidents
    over 14 days dispatched to its workers, and two plans."""
    url = databases.url(databases.create(template=sample_template, prefix="gridmap_test_maps"))
    with psycopg.connect(url) as conn:
        staff.staff_sample(conn, "test")
        locator = units.locator(conn)
        end = datetime.now(UTC)
        columns = incident_sample.generate(locator, 1200, end - timedelta(days=14), end, seed=3)
        intake.store_sample(conn, locator, columns, "test")
        oversized = conn.execute(
            "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'community' "
            "ORDER BY households DESC LIMIT 1").fetchone()[0]
        plans.draw_split(conn, oversized, "grid", band=(300, 500))
        plans.draw_merge(conn, "community")
    return url


@pytest.fixture(scope="module")
def app_url(maps_db):
    """The real app in its own process (module-wide: starting it per test would dominate)."""
    proc, base = launch_server(maps_db)
    yield base
    stop_server(proc)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


@pytest.fixture
def open_map(browser, app_url):
    """Open a map page; after the test, no console or page error and no outside request."""
    pages = []

    def opener(path: str) -> MapPage:
        page = MapPage(browser, app_url).open(path)
        pages.append(page)
        return page

    yield opener
    for page in pages:
        page.check_clean()
        page.close()


@pytest.fixture
def db(maps_db):
    with psycopg.connect(maps_db, autocommit=True) as conn:
        yield conn


def one(conn, sql: str, params=()):
    return conn.execute(sql, params).fetchone()[0]


def shot(page: MapPage, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.page.wait_for_timeout(300)  # let the last tiles and labels paint (a picture, not a check)
    page.page.screenshot(path=str(SHOTS / name))


def metres_apart(a: tuple[float, float], b: tuple[float, float]) -> float:
    """(lon, lat) points, metres apart (local flat approximation, fine below a few km)."""
    per_lon, per_lat = metres_per_degree(a[1])
    return math.hypot((a[0] - b[0]) * float(per_lon), (a[1] - b[1]) * float(per_lat))


# ---------------------------------------------------------------------------- assets

def test_every_script_and_stylesheet_is_served_by_the_app(app_url, db):
    plan_id = one(db, "SELECT min(id) FROM plan")
    for path in ("/maps/overview", "/maps/dispatch", f"/maps/plan/{plan_id}", "/maps"):
        html = httpx.get(app_url + path).text
        assets = re.findall(r'<script[^>]+src="([^"]+)"', html) + re.findall(r'<link[^>]+href="([^"]+)"', html)
        assert assets, path
        for asset in assets:
            assert asset.startswith("/maps/static/"), f"{path} loads {asset} from elsewhere"
            assert httpx.get(app_url + asset).status_code == 200, asset
    # the licences travel with the libraries, and nothing outside the static folder is served
    for lib in ("leaflet-1.9.4/LICENSE", "leaflet.markercluster-1.5.3/MIT-LICENCE.txt",
                "leaflet.heat-0.2.0/LICENSE", "leaflet.vectorgrid-1.3.0/README.md", "VENDORED.md"):
        assert httpx.get(f"{app_url}/maps/static/vendor/{lib}").status_code == 200, lib
    assert httpx.get(app_url + "/maps/static/../page.py").status_code == 404
    assert httpx.get(app_url + "/maps/static/%2e%2e/page.py").status_code == 404


# ---------------------------------------------------------------------------- overview

def test_overview_draws_every_level_and_a_click_shows_the_unit_with_its_parents(open_map, db):
    page = open_map("/maps/overview")
    shot(page, "overview.png")
    for level in ("street", "community", "grid", "compound"):
        stored = one(db, "SELECT count(*) FROM unit_version WHERE valid_to IS NULL AND level = %s", [level])
        assert page.js(f"gridmap.counts.{level}") == stored, level
    # grids are drawn as SVG paths, one each; compounds are off until asked for
    grids = one(db, "SELECT count(*) FROM unit_version WHERE valid_to IS NULL AND level = 'grid'")
    assert page.page.locator("path.gm-unit-grid").count() == grids
    assert page.page.locator("path.gm-unit-compound").count() == 0
    # the big levels come as vector tiles and are offered in the layer control
    control = page.page.locator(".leaflet-control-layers-overlays").inner_text()
    assert "小邻里" in control and "2,605" in control and "楼栋" in control
    # labels: one level at a time, the finest that fits; zoomed in, grid labels with codes
    assert page.js("gridmap.labelLevel") in ("street", "community")
    page.js("void gridmap.map.setZoom(16.5, {animate: false})")
    assert page.js("gridmap.labelLevel") == "grid"
    assert page.page.locator(".gm-label-grid").count() > 0
    assert re.search(r"\d{15}", page.page.locator(".gm-label-grid").first.inner_text())
    page.js("void gridmap.map.setZoom(14, {animate: false})")

    # a real click on a grid well inside the window
    target = page.js("""() => {
        const box = gridmap.map.getContainer().getBoundingClientRect();
        for (const [id, layer] of Object.entries(gridmap.units.grid.byId)) {
            const f = layer.feature.properties;
            const p = gridmap.map.latLngToContainerPoint(gridmap.latLng(f.lp[0], f.lp[1]));
            if (p.x > 450 && p.x < 900 && p.y > 250 && p.y < 650)
                return {id: f.id, x: p.x + box.left, y: p.y + box.top};
        }
    }""")
    page.page.mouse.click(target["x"], target["y"])
    popup = page.page.locator(".gm-pop-unit")
    popup.locator(".gm-chain").wait_for()
    code, households, street, community = db.execute(
        "SELECT v.code, v.households, s.code, c.code FROM unit_version v "
        "JOIN unit_version s ON s.unit_id = v.street_id AND s.valid_to IS NULL "
        "JOIN unit_version c ON c.unit_id = v.community_id AND c.valid_to IS NULL "
        "WHERE v.unit_id = %s AND v.valid_to IS NULL", [target["id"]]).fetchone()
    text = popup.inner_text()
    assert code in text and f"{households:,}" in text and street in text and community in text
    assert "300–500" in text and ("在范围内" in text or "低于" in text or "高于" in text)
    assert popup.locator(f"a[href='/units/{target['id']}']").count() == 1


def test_search_by_code_zooms_to_the_unit_and_opens_it(open_map, db):
    page = open_map("/maps/overview")
    unit_id, code, name = db.execute(
        "SELECT unit_id, code, name FROM unit_version WHERE valid_to IS NULL AND level = 'grid' "
        "ORDER BY code OFFSET 100 LIMIT 1").fetchone()
    box = page.page.locator(".gm-search input")
    box.fill(name[:2])  # a first search whose results are still listed when the code is typed
    page.page.locator(".gm-results li").first.wait_for()
    box.fill(code)
    box.press("Enter")  # at once: the unit with this code, not the first of the old results
    popup = page.page.locator(f".gm-pop-unit[data-id='{unit_id}']")
    popup.locator(".gm-chain").wait_for()
    assert code in popup.inner_text() and name in popup.inner_text()
    centre = page.js("(() => { const c = gridmap.map.getCenter(); return [c.lng, c.lat]; })()")
    inside = one(db, "SELECT ST_DWithin(geom, ST_SetSRID(ST_Point(%s, %s), 4326), 0.002) FROM unit_version "
                     "WHERE unit_id = %s AND valid_to IS NULL", [*centre, unit_id])
    assert inside and page.js("gridmap.map.getZoom()") >= 15
    # a name finds it too, and nonsense finds nothing
    box.fill(name)
    page.page.locator(".gm-results li", has_text=code).first.wait_for()
    box.fill("不存在的地方")
    page.page.locator(".gm-results .gm-none").wait_for()


def test_amap_moves_every_overlay_to_gcj02_and_back(open_map, db):
    grid_id, lon, lat = db.execute(
        "SELECT unit_id, ST_X(ST_PointN(ST_ExteriorRing(ST_GeometryN(geom, 1)), 1)), "
        "ST_Y(ST_PointN(ST_ExteriorRing(ST_GeometryN(geom, 1)), 1)) FROM unit_version "
        "WHERE valid_to IS NULL AND level = 'grid' ORDER BY code LIMIT 1").fetchone()
    shifted = wgs84_to_gcj02(lon, lat)
    assert metres_apart((lon, lat), shifted) > 400  # ~585 m in Wuhan
    page = open_map("/maps/overview?colour=neighbourhood")

    def vertex():
        lat_, lon_ = page.js(f"gridmap.units.grid.vertex({grid_id})")
        return lon_, lat_

    assert page.js("gridmap.datum") == "wgs84"
    assert metres_apart(vertex(), (lon, lat)) < 0.5
    page.page.locator(".leaflet-control-layers-base label", has_text="高德地图 Amap").click()
    page.wait("gridmap.datum === 'gcj02'")
    assert metres_apart(vertex(), shifted) < 0.5
    # vector tiles are asked for in GCJ-02 too, and the view kept the same place in the middle
    page.js("void gridmap.map.setZoom(16, {animate: false})")
    page.wait("gridmap.units.neighbourhood.count() > 0")
    asked = page.js("performance.getEntriesByType('resource').map(e => e.name)")
    # the tile URLs carry the level's state (immutable in caches) and the datum
    assert any("/tiles/neighbourhood/" in u and "datum=gcj02" in u and "?v=" in u for u in asked)
    # and no tile below the level's first zoom was asked for
    zooms = [int(u.split("/tiles/neighbourhood/")[1].split("/")[0]) for u in asked if "/tiles/neighbourhood/" in u]
    assert zooms and min(zooms) >= 14
    assert any("autonavi.com" in u for u in page.tiles)
    page.page.locator(".leaflet-control-layers-base label", has_text="OpenStreetMap").click()
    page.wait("gridmap.datum === 'wgs84'")
    assert metres_apart(vertex(), (lon, lat)) < 0.5

    fresh = open_map("/maps/overview?base=amap")
    assert fresh.js("gridmap.datum") == "gcj02"
    lat_, lon_ = fresh.js(f"gridmap.units.grid.vertex({grid_id})")
    assert metres_apart((lon_, lat_), shifted) < 0.5
    shot(fresh, "overview-amap.png")


def test_big_levels_are_drawn_from_vector_tiles(open_map, db, app_url):
    page = open_map("/maps/overview?colour=neighbourhood")
    assert page.js("gridmap.units.neighbourhood.mode") == "tiles"
    page.js("void gridmap.map.setView([30.548, 114.295], 17, {animate: false})")
    page.wait("gridmap.units.neighbourhood.count() > 0")
    page.page.wait_for_load_state("networkidle")
    drawn = set(page.js("gridmap.units.neighbourhood.ids()"))
    box = [float(v) for v in page.js("gridmap.viewBox()").split(",")]
    in_view = {r[0] for r in db.execute(
        "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'neighbourhood' "
        "AND ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))", box)}
    assert in_view and in_view <= drawn
    assert drawn <= {r[0] for r in db.execute(
        "SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'neighbourhood'")}
    assert page.page.locator(".leaflet-pane.leaflet-gm-fill-neighbourhood-pane path").count() > 0
    # labels of tile levels come from the labels endpoint as the view moves
    page.js("void gridmap.map.setZoom(18, {animate: false})")
    page.wait("gridmap.labelLevel === 'neighbourhood' && "
              "document.querySelectorAll('.gm-label-neighbourhood').length > 0")

    # any level can be forced to tiles: the grids then come from /tiles as well
    forced = open_map("/maps/overview?tiles_above=100")
    assert forced.js("gridmap.units.grid.mode") == "tiles"
    forced.wait("gridmap.units.grid.count() > 0")
    grids = {r[0] for r in db.execute("SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'grid'")}
    forced.page.wait_for_load_state("networkidle")
    assert set(forced.js("gridmap.units.grid.ids()")) == grids


# ---------------------------------------------------------------------------- dispatch

def _where(states=OPEN, category=None, since=None) -> tuple[str, list]:
    clauses, params = ["state = ANY(%s)"], [list(states)]
    if category:
        clauses.append("category = %s")
        params.append(category)
    if since:
        clauses.append("reported_at >= %s")
        params.append(since)
    return " AND ".join(clauses), params


def _cluster_total(page: MapPage) -> int:
    """Incidents on screen: the numbers on the cluster icons plus the single markers."""
    return page.js("""Array.from(document.querySelectorAll('.gm-cluster span'))
                          .reduce((s, e) => s + Number(e.textContent), 0)
                      + document.querySelectorAll('.leaflet-marker-pane .gm-inc').length""")


def test_dispatch_shows_every_open_incident_with_its_grid_chain_and_worker(open_map, db, app_url):
    # a grid worker, and a report dispatched to them through the API
    grid_id, grid_code, community_code, street_code, lon, lat = db.execute(
        "SELECT g.unit_id, g.code, c.code, s.code, ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom)) "
        "FROM unit_version g JOIN unit_version c ON c.unit_id = g.community_id AND c.valid_to IS NULL "
        "JOIN unit_version s ON s.unit_id = g.street_id AND s.valid_to IS NULL "
        "WHERE g.valid_to IS NULL AND g.level = 'grid' ORDER BY g.code OFFSET 7 LIMIT 1").fetchone()
    # (the grid's own worker, staffed as the sample is, steps aside: the new one takes its reports)
    for held in httpx.get(app_url + "/workers", params={"unit_id": grid_id}).json():
        if held["unit"]["id"] == grid_id:
            assert httpx.delete(f"{app_url}/workers/{held['id']}").status_code == 200
    worker = httpx.post(app_url + "/workers", json={"name": "王网格员", "role": "grid_worker", "unit_id": grid_id})
    assert worker.status_code == 201, worker.text
    report = httpx.post(app_url + "/incidents", json={"category": "manhole", "lon": lon, "lat": lat,
                                                      "description": "井盖缺失", "channel": "rider"})
    assert report.status_code == 201, report.text
    incident_id = report.json()["id"]

    page = open_map("/maps/dispatch")
    where, params = _where()
    expected = one(db, f"SELECT count(*) FROM incident WHERE {where}", params)
    assert page.js("gridmap.counts.markers") == page.js("gridmap.counts.total") == expected
    assert _cluster_total(page) == expected
    overdue = one(db, f"SELECT count(*) FROM incident WHERE {where} AND now() > deadline", params)
    assert page.js("gridmap.counts.overdue") == overdue
    assert page.page.locator(".gm-filters .gm-total").inner_text() == f"{expected:,}"
    # grids coloured by their open incidents
    open_grids = one(db, f"SELECT count(DISTINCT grid_id) FROM incident WHERE {where} AND grid_id IS NOT NULL", params)
    assert page.js("gridmap.counts.openGrids") == open_grids
    shot(page, "dispatch.png")

    # the incident's popup: state, its grid chain with codes, its worker
    page.js(f"""new Promise(done => gridmap.cluster.zoomToShowLayer(gridmap.markers[{incident_id}], done))""")
    page.page.locator(".leaflet-marker-pane .gm-inc").filter(has_text="井").first.wait_for()
    page.js(f"gridmap.markers[{incident_id}].getElement().dispatchEvent(new MouseEvent('click', {{bubbles: true}}))")
    popup = page.page.locator(f".gm-pop-incident[data-id='{incident_id}']")
    popup.wait_for()
    text = popup.inner_text()
    for expected_text in (grid_code, community_code, street_code, "王网格员", "井盖缺失", "已派单"):
        assert expected_text in text, expected_text


def test_dispatch_refresh_picks_up_a_new_incident_in_place(open_map, db, app_url):
    page = open_map("/maps/dispatch?refresh=1")
    before = page.js("gridmap.counts.markers")
    page.js("window.__same_page = true")
    lon, lat = db.execute("SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM unit_version "
                          "WHERE valid_to IS NULL AND level = 'grid' ORDER BY code DESC LIMIT 1").fetchone()
    new = httpx.post(app_url + "/incidents", json={"category": "water_leak", "lon": lon, "lat": lat})
    assert new.status_code == 201, new.text
    incident = new.json()
    page.wait(f"gridmap.markers[{incident['id']}] !== undefined")
    assert page.js("gridmap.counts.markers") == before + 1
    # (shown on its own, out of any cluster: reports just outside the district sit near it)
    page.js(f"""new Promise(done => gridmap.cluster.zoomToShowLayer(gridmap.markers[{incident['id']}], done))""")
    assert page.js(f"gridmap.markers[{incident['id']}].getElement().className").count(f"gm-state-{incident['state']}")
    # a dispatcher rejects it elsewhere: it leaves the map (open incidents only) on the next refresh
    moved = httpx.post(f"{app_url}/incidents/{incident['id']}/transitions",
                       json={"to": "rejected", "version": incident["version"], "actor": "调度员", "note": "重复上报"})
    assert moved.status_code == 200, moved.text
    page.wait(f"gridmap.markers[{incident['id']}] === undefined")
    assert page.js("gridmap.counts.markers") == before
    assert page.js("window.__same_page") is True  # no reload
    assert page.js("gridmap.refreshes") >= 3


def test_dispatch_on_amap_draws_incidents_in_gcj02(open_map, db):
    page = open_map("/maps/dispatch?base=amap")
    incident_id, lon, lat = db.execute(
        "SELECT id, ST_X(geom), ST_Y(geom) FROM incident WHERE state = ANY(%s) ORDER BY id LIMIT 1", [list(OPEN)]
    ).fetchone()
    drawn = page.js(f"(() => {{ const ll = gridmap.markers[{incident_id}].getLatLng(); return [ll.lng, ll.lat]; }})()")
    assert metres_apart(tuple(drawn), wgs84_to_gcj02(lon, lat)) < 0.5
    assert metres_apart(tuple(drawn), (lon, lat)) > 400


def test_dispatch_filters_change_what_is_shown(open_map, db):
    page = open_map("/maps/dispatch")

    def settle():
        """Until the map shows the answer to the latest filters (a change asks at once)."""
        page.wait("gridmap.applied === gridmap.requested")

    # every state
    page.page.locator(".gm-filters button[data-preset=all]").click()
    settle()
    assert page.js("gridmap.counts.total") == one(db, "SELECT count(*) FROM incident")
    # one category
    page.page.locator(".gm-filters select[name=category]").select_option("garbage")
    settle()
    assert page.js("gridmap.counts.markers") == one(db, "SELECT count(*) FROM incident WHERE category = 'garbage'")
    # the last 24 hours (the window the server used, from its answer)
    page.page.locator(".gm-filters select[name=hours]").select_option("24")
    settle()
    since = datetime.fromisoformat(page.js("gridmap.last.from"))
    assert page.js("gridmap.counts.total") == one(
        db, "SELECT count(*) FROM incident WHERE category = 'garbage' AND reported_at >= %s", [since])
    # only what is being handled
    page.page.locator(".gm-filters select[name=hours]").select_option("")
    settle()
    for state in ("reported", "assigned", "resolved", "closed", "rejected", "duplicate"):
        box = page.page.locator(f".gm-filters input[name=state][value={state}]")
        if box.is_checked():
            box.uncheck()
            settle()
    handled = one(db, "SELECT count(*) FROM incident WHERE category = 'garbage' AND state = 'in_progress'")
    assert page.js("gridmap.counts.total") == handled > 0
    assert _cluster_total(page) == page.js("gridmap.counts.markers")


def test_dispatch_above_the_marker_limit_shows_heat_and_counts_only(open_map, db):
    page = open_map("/maps/dispatch?max_markers=5")
    assert page.js("gridmap.counts.tooMany") is True
    assert page.js("gridmap.counts.markers") == 0 and _cluster_total(page) == 0
    assert page.js("gridmap.counts.heat") > 0 and page.js("gridmap.map.hasLayer(gridmap.layers.heat)")
    assert page.page.locator(".gm-too-many").is_visible()
    where, params = _where()
    assert page.js("gridmap.counts.total") == one(db, f"SELECT count(*) FROM incident WHERE {where}", params)
    # with no markers, each grid with open incidents carries its count
    page.js("void gridmap.map.setZoom(14.5, {animate: false})")
    assert page.page.locator(".gm-badge").count() == page.js("gridmap.counts.openGrids") > 0
    page.js("void gridmap.map.fitBounds(gridmap.bounds(gridmap.config.extent), {padding: [20, 20], animate: false})")
    shot(page, "dispatch-heat.png")


# ---------------------------------------------------------------------------- plans

def test_plan_map_shows_the_parts_with_their_metrics_beside_the_current_units(open_map, db, app_url):
    plan_id = one(db, "SELECT id FROM plan WHERE kind <> 'merge' ORDER BY id LIMIT 1")
    parts = db.execute("SELECT seq, code, households FROM plan_unit WHERE plan_id = %s AND revision = "
                       "(SELECT revision FROM plan WHERE id = %s) ORDER BY seq", [plan_id, plan_id]).fetchall()
    replaced = one(db, "SELECT count(*) FROM plan_replaces WHERE plan_id = %s", [plan_id])
    metrics = one(db, "SELECT metrics FROM plan WHERE id = %s", [plan_id])
    page = open_map(f"/maps/plan/{plan_id}")
    assert page.js("gridmap.counts.proposed") == len(parts)
    assert page.js("gridmap.counts.current") == replaced
    assert page.page.locator("path.gm-part").count() == len(parts)
    rows = page.page.locator("tr.gm-part")
    assert rows.count() == len(parts)
    for k, (_seq, code, households) in enumerate(parts):
        text = rows.nth(k).inner_text()
        assert code in text and f"{households:,}" in text
    panel = page.page.locator(".gm-plan").inner_text()
    assert f"{metrics['polsby_popper_mean']:.2f}" in panel
    assert f"{round(metrics['road_or_wall_share'] * 100)}%" in panel
    if metrics["targets_missed"]:
        assert all(t in panel for t in metrics["targets_missed"])
    else:
        assert "全部达标" in panel
    # what the commit will carry with it: the codes that change, as compare lists them
    compared = httpx.get(app_url + f"/plans/{plan_id}/compare").json()
    changes = compared["code_changes"]
    assert f"提交后编码变更 Codes that will change ({len(changes)})" in panel
    assert all(f"{c['from']} → {c['to']}" in panel for c in changes[:200])
    # validation problems (here: the oversized community being split) are listed and drawn
    problems = page.js("gridmap.counts.problems")
    assert problems >= 1 and page.page.locator(".gm-problems li").count() == problems
    assert "above the band" in page.page.locator(".gm-problems").inner_text()
    # a row opens its part; the segment buttons show one side
    rows.nth(0).click()
    popup = page.page.locator(f".gm-pop-part[data-seq='{parts[0][0]}']")
    assert parts[0][1] in popup.inner_text() and "Polsby-Popper" in popup.inner_text()
    page.page.locator(".gm-segment button[data-mode=current]").click()
    assert not page.js("gridmap.map.hasLayer(gridmap.layers.proposed)")
    assert page.js("gridmap.map.hasLayer(gridmap.layers.current)")
    page.page.locator(".gm-segment button[data-mode=both]").click()
    page.js("void gridmap.map.closePopup()")
    page.js("void gridmap.map.fitBounds(gridmap.layers.outline.getBounds(), "
            "{paddingTopLeft: [430, 30], paddingBottomRight: [30, 30], animate: false})")
    shot(page, "plan.png")


def test_merge_plan_map_and_index(open_map, db, app_url):
    plan_id = one(db, "SELECT id FROM plan WHERE kind = 'merge' ORDER BY id LIMIT 1")
    page = open_map(f"/maps/plan/{plan_id}")
    merged = one(db, "SELECT count(*) FROM plan_unit WHERE plan_id = %s", [plan_id])
    assert page.js("gridmap.counts.proposed") == merged
    assert page.page.locator("tr.gm-part").count() == merged
    index = httpx.get(app_url + "/maps")
    assert index.status_code == 200 and f"/maps/plan/{plan_id}" in index.text and "/maps/dispatch" in index.text


def test_unknown_plan_is_a_404_page_or_json(app_url):
    page = httpx.get(app_url + "/maps/plan/999999", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "999999" in page.text and "/maps" in page.text
    api = httpx.get(app_url + "/maps/plan/999999", headers={"Accept": "application/json"})
    assert api.status_code == 404 and api.json()["error"] == "NotFound"
    assert httpx.get(app_url + "/maps/api/units/999999").status_code == 404
    assert httpx.get(app_url + "/maps/api/incidents", params={"state": "lost"}).status_code == 422
    assert httpx.get(app_url + "/maps/api/labels", params={"level": "grid", "bbox": "100,20,120,40"}).status_code == 422

