"""A real headless Chromium for the map tests (Playwright driving /usr/bin/chromium).

The test machine has no internet: the base-map tile servers (OpenStreetMap, Amap) are answered
with one small light-grey PNG made here, so a missing tile never shows as a console error, and
any other request that leaves the machine is refused and recorded, so a map that still points
at a CDN fails its test. Every console error and page error is recorded too.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path
from urllib.parse import urlparse

import pytest

from maps.basemaps import TILE_HOSTS

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
LEAVING = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost)[:/])")


def png(width: int = 256, height: int = 256, rgb: tuple[int, int, int] = (0xEE, 0xF1, 0xF4)) -> bytes:
    """A plain PNG of one colour (the maps' own background colour, so tile seams never show)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


STUB_TILE = png()


def launch(playwright):
    if not CHROMIUM.exists():
        message = "Chromium is missing: run `make chromium` (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


class MapPage:
    """One page with tile stubs, external requests refused, and errors collected."""

    def __init__(self, browser, base_url: str):
        self.base = base_url
        self.context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.external: list[str] = []
        self.tiles: list[str] = []  # base-map tile URLs the page asked for
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        # only requests leaving the machine come to Python (a round trip each); the app's own go straight
        self.page.route(LEAVING, self._route)

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"console error: {msg.text}")

    def _route(self, route) -> None:
        url = route.request.url
        host = urlparse(url).hostname or ""
        if any(host == h or host.endswith("." + h) for h in TILE_HOSTS):
            self.tiles.append(url)
            route.fulfill(status=200, content_type="image/png", body=STUB_TILE)
        else:
            self.external.append(url)
            route.abort()

    def open(self, path: str) -> MapPage:
        self.page.goto(self.base + path)
        self.page.wait_for_function("window.gridmap && window.gridmap.ready === true")
        return self

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def wait(self, expression: str, arg=None) -> None:
        self.page.wait_for_function(expression, arg=arg)

    def check_clean(self) -> None:
        assert not self.errors, "\n".join(self.errors)
        assert not self.external, f"requests that left the machine: {self.external}"

    def close(self) -> None:
        self.context.close()
