"""The maps' login in a real browser: a map asks for a key, and with one it loads through the
session cookie (the API side of sessions is tests/api/test_auth.py)."""

from __future__ import annotations


def test_in_a_browser_the_dispatch_map_asks_for_a_key_and_then_loads(secured):
    """Headless Chromium: /maps/dispatch lands on /login; with a dispatcher key the map loads,
    its data, assets and tiles all through the session cookie, with no error."""
    from playwright.sync_api import sync_playwright

    from tests.browser.maps_browser import MapPage, launch

    with sync_playwright() as pw:
        chromium = launch(pw)
        page = MapPage(chromium, secured.base)
        try:
            page.page.goto(secured.base + "/maps/dispatch")
            assert page.page.url == secured.base + "/login?next=%2Fmaps%2Fdispatch"
            page.page.fill("#key", "gm_00000000_" + "B" * 43)
            page.page.click("button[type=submit]")
            assert "not valid" in page.page.inner_text("main")
            assert [e for e in page.errors if "401" not in e] == []  # the refused form answers 401
            page.errors.clear()
            page.page.fill("#key", secured.keys["dispatcher"])
            page.page.click("button[type=submit]")
            page.wait("window.gridmap && window.gridmap.ready === true")
            assert page.page.url == secured.base + "/maps/dispatch"
            page.wait("gridmap.last && gridmap.last.total >= 0")  # its JSON came, through the cookie
            cookie = next(c for c in page.context.cookies() if c["name"] == "gridmap_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            assert page.js("document.cookie").find("gridmap_session") < 0  # not readable by scripts
            page.check_clean()
        finally:
            page.close()
            chromium.close()
