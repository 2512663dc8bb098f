"""The page every map is built on.

A folium map whose every script and stylesheet is served by the app from /maps/static (the
vendored Leaflet and plugins, see maps/static/vendor/VENDORED.md, and gridmap's own
script): folium's CDN defaults are replaced, so the maps work on an intranet with no way
out. On it: the base layers of maps/basemaps.py, a layer control, and `gridmap.start(...)`,
which builds the map's overlays and panels (maps/static/gridmap/<kind>.js) from a config
and the data embedded in the page as JSON.
"""

from __future__ import annotations

import hashlib
import html
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import folium
from branca.element import Figure, MacroElement
from folium.elements import JSCSSMixin
from jinja2 import Template  # what branca.element uses (and does not re-export)

from maps import basemaps

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC = "/maps/static"
_VENDOR = f"{STATIC}/vendor"
LEAFLET_JS = [("leaflet", f"{_VENDOR}/leaflet-1.9.4/leaflet.js")]
LEAFLET_CSS = [("leaflet_css", f"{_VENDOR}/leaflet-1.9.4/leaflet.css")]
# Leaflet plugins a map may ask for: (scripts, stylesheets)
PLUGINS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "markercluster": (
        [("markercluster_js", f"{_VENDOR}/leaflet.markercluster-1.5.3/leaflet.markercluster.js")],
        [("markercluster_css", f"{_VENDOR}/leaflet.markercluster-1.5.3/MarkerCluster.css"),
         ("markercluster_default_css", f"{_VENDOR}/leaflet.markercluster-1.5.3/MarkerCluster.Default.css")],
    ),
    "heat": ([("heat_js", f"{_VENDOR}/leaflet.heat-0.2.0/leaflet-heat.js")], []),
    "vectorgrid": ([("vectorgrid_js", f"{_VENDOR}/leaflet.vectorgrid-1.3.0/Leaflet.VectorGrid.bundled.min.js")], []),
}


@lru_cache(maxsize=1)
def asset_version() -> str:
    """A digest of gridmap's own scripts and styles, so a browser never runs a stale one."""
    digest = hashlib.sha1()
    for path in sorted((STATIC_DIR / "gridmap").glob("*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def own_asset(name: str) -> str:
    return f"{STATIC}/gridmap/{name}?v={asset_version()}"


def json_for_script(data: object) -> str:
    """JSON safe inside a <script> element: `<` only occurs inside JSON strings, where \\u003c
    means the same, so no `</script>` or `<!--` can end the element early."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"),
                                                          default=str)
    return text.replace("<", "\\u003c")


class App(JSCSSMixin, MacroElement):
    """Starts the map's own script once folium's map, base layers and layer control exist."""

    _template = Template("""
{% macro html(this, kwargs) %}
<script type="application/json" id="gm-config">{{ this.config_text }}</script>
{% if this.data_text %}<script type="application/json" id="gm-data">{{ this.data_text }}</script>{% endif %}
{% endmacro %}
{% macro script(this, kwargs) %}
gridmap.start({{ this.kind|tojson }}, {
    map: {{ this._parent.get_name() }},
    control: {{ this.control.get_name() }},
    bases: { {% for key, layer in this.bases.items() %}{{ key|tojson }}: {{ layer.get_name() }}, {% endfor %} }
});
{% endmacro %}
""")

    def __init__(self, kind: str, control: folium.LayerControl, bases: dict[str, folium.TileLayer],
                 config: dict[str, Any], data: object, plugins: tuple[str, ...]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # branca's MacroElement.__init__ is unannotated
        self._name = "GridmapApp"
        self.kind = kind
        self.control = control
        self.bases = bases
        self.config_text = json_for_script(config)
        self.data_text = json_for_script(data) if data is not None else ""
        self.default_js = [js for p in plugins for js in PLUGINS[p][0]] + [
            ("gridmap_js", own_asset("gridmap.js")), (f"gridmap_{kind}_js", own_asset(f"{kind}.js"))]
        self.default_css = [css for p in plugins for css in PLUGINS[p][1]] + [
            ("gridmap_css", own_asset("gridmap.css"))]


def render(kind: str, title: str, config: dict[str, Any], *, data: object = None, plugins: tuple[str, ...] = (),
           base: str | None = None, center: tuple[float, float] = (30.55, 114.30)) -> str:
    """The whole HTML page of one map."""
    # quarter zoom steps let a district or a plan fill the screen
    m = folium.Map(location=list(center), zoom_start=13, tiles=None, control_scale=True, max_zoom=19,
                   zoom_snap=0.25)
    m.default_js = LEAFLET_JS
    m.default_css = LEAFLET_CSS
    chosen = basemaps.choose(base)
    bases: dict[str, folium.TileLayer] = {}
    for b in basemaps.BASEMAPS:
        layer = folium.TileLayer(b.url, attr=b.attribution, name=b.name, subdomains=b.subdomains,
                                 max_zoom=b.max_zoom, max_native_zoom=b.max_native_zoom, show=b is chosen,
                                 datum=b.datum, base_key=b.key)
        layer.add_to(m)
        bases[b.key] = layer
    control = folium.LayerControl(position="topright", collapsed=False)
    control.add_to(m)
    config = {"kind": kind, "title": title, "base": chosen.key, "datum": chosen.datum, **config}
    App(kind, control, bases, config, data, plugins).add_to(m)
    root = cast(Figure, m.get_root())  # a map's root is the Figure it creates
    root.title = title
    return root.render()


_SIMPLE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{css}"></head>
<body class="gm-simple"><main>{body}</main></body></html>
"""


def simple_page(title: str, body_html: str) -> str:
    """A plain page (index, errors) in the maps' style."""
    return _SIMPLE.format(title=html.escape(title), css=own_asset("gridmap.css"), body=body_html)


def error_page(status: int, title: str, message: str, maps_url: str) -> str:
    """An error as a page, with a link back to the maps' index."""
    body = (f"<h1>{status} · {html.escape(title)}</h1><p>{html.escape(message)}</p>"
            f'<p><a href="{html.escape(maps_url)}">← 全部地图 All maps</a></p>')
    return simple_page(f"{status} {title}", body)
