/* gridmap: what the overview, dispatch and plan maps share.
 *
 * - the datum: OpenStreetMap is WGS84, Amap/Gaode is GCJ-02. Every overlay is built from
 *   WGS84 data through gridmap.latLng(), which shifts to GCJ-02 (the published formulas, as
 *   in geo/datums.py) while an Amap base layer is shown; on `baselayerchange` the overlays
 *   that follow the datum are rebuilt and the view moves with them.
 * - unit layers, drawn from GeoJSON embedded in the page or from vector tiles (/tiles/...);
 * - labels, panels, popups, colours of household bands.
 * window.gridmap exposes the map, its layers and counts (the browser tests read them).
 */
(function () {
  'use strict';

  var gm = window.gridmap = window.gridmap || {};
  gm.pages = gm.pages || {};
  gm.ready = false;
  gm.datum = 'wgs84';
  gm.layers = {};
  gm.counts = {};

  // ---------------------------------------------------------------- GCJ-02
  var A = 6378245.0, EE = 0.00669342162296594323;
  var CHINA = [72.004, 0.8293, 137.8347, 55.8271];

  function inChina(lon, lat) {
    return lon >= CHINA[0] && lon <= CHINA[2] && lat >= CHINA[1] && lat <= CHINA[3];
  }

  function offset(lon, lat) {
    var x = lon - 105.0, y = lat - 35.0, PI = Math.PI;
    var sqrtAbsX = Math.sqrt(Math.abs(x));
    var wave = (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0;
    var dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrtAbsX;
    dlat += wave;
    dlat += (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0;
    dlat += (160.0 * Math.sin(y / 12.0 * PI) + 320.0 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
    var dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrtAbsX;
    dlon += wave;
    dlon += (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0;
    dlon += (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
    var rad = lat / 180.0 * PI;
    var magic = 1.0 - EE * Math.pow(Math.sin(rad), 2);
    var sqrtMagic = Math.sqrt(magic);
    dlat = (dlat * 180.0) / ((A * (1.0 - EE)) / (magic * sqrtMagic) * PI);
    dlon = (dlon * 180.0) / (A / sqrtMagic * Math.cos(rad) * PI);
    return [dlon, dlat];
  }

  /** [lon, lat] in GCJ-02 of a WGS84 point (unchanged outside China). */
  gm.wgs84ToGcj02 = function (lon, lat) {
    if (!inChina(lon, lat)) { return [lon, lat]; }
    var d = offset(lon, lat);
    return [lon + d[0], lat + d[1]];
  };

  /** [lon, lat] in WGS84 of a GCJ-02 point: the forward formula iterated to < 0.01 mm. */
  gm.gcj02ToWgs84 = function (lon, lat) {
    var wlon = lon, wlat = lat;
    for (var i = 0; i < 30; i++) {
      var g = gm.wgs84ToGcj02(wlon, wlat);
      var elon = g[0] - lon, elat = g[1] - lat;
      wlon -= elon; wlat -= elat;
      if (Math.abs(elon) < 1e-10 && Math.abs(elat) < 1e-10) { break; }
    }
    return [wlon, wlat];
  };

  /** A Leaflet LatLng for a WGS84 lon/lat, in the datum of the base layer shown now. */
  gm.latLng = function (lon, lat) {
    if (gm.datum === 'gcj02') {
      var p = gm.wgs84ToGcj02(lon, lat);
      return L.latLng(p[1], p[0]);
    }
    return L.latLng(lat, lon);
  };

  /** [lon, lat] in WGS84 of a point on the map as shown now. */
  gm.toWgs84 = function (latlng, datum) {
    if ((datum || gm.datum) === 'gcj02') { return gm.gcj02ToWgs84(latlng.lng, latlng.lat); }
    return [latlng.lng, latlng.lat];
  };

  /** The map's view as a WGS84 box "minlon,minlat,maxlon,maxlat". */
  gm.viewBox = function () {
    var b = gm.map.getBounds(), sw = gm.toWgs84(b.getSouthWest()), ne = gm.toWgs84(b.getNorthEast());
    return [sw[0], sw[1], ne[0], ne[1]].map(function (v) { return v.toFixed(6); }).join(',');
  };

  /** Leaflet bounds (current datum) of a WGS84 box [minlon, minlat, maxlon, maxlat]. */
  gm.bounds = function (box) {
    return L.latLngBounds(gm.latLng(box[0], box[1]), gm.latLng(box[2], box[3]));
  };

  var followers = [];
  /** fn(datum) runs whenever the datum changes (after gm.datum is set). */
  gm.follow = function (fn) { followers.push(fn); };

  function setDatum(datum) {
    if (datum === gm.datum) { return; }
    var old = gm.datum, center = gm.map.getCenter(), zoom = gm.map.getZoom();
    var wgs = gm.toWgs84(center, old);
    gm.datum = datum;
    followers.forEach(function (fn) { fn(datum); });
    // keep the same place in the middle of the screen
    gm.map.setView(gm.latLng(wgs[0], wgs[1]), zoom, {animate: false});
  }

  // ---------------------------------------------------------------- little helpers
  gm.esc = function (text) {
    return String(text === null || text === undefined ? '' : text).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  };
  gm.num = function (n) { return n === null || n === undefined ? '–' : Number(n).toLocaleString('zh-CN'); };
  gm.time = function (iso) {
    if (!iso) { return '–'; }
    return new Date(iso).toLocaleString('zh-CN', {timeZone: 'Asia/Shanghai', hour12: false,
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit'});
  };
  gm.el = function (tag, className, html) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (html !== undefined) { node.innerHTML = html; }
    return node;
  };

  /** A panel (Leaflet control) whose clicks and scrolls stay inside it. */
  gm.panel = function (position, className, build) {
    var Panel = L.Control.extend({
      onAdd: function () {
        var div = gm.el('div', 'gm-panel ' + className);
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        build(div);
        return div;
      }
    });
    return new Panel({position: position}).addTo(gm.map);
  };

  gm.fetchJson = function (url) {
    return fetch(url, {headers: {Accept: 'application/json'}}).then(function (r) {
      if (!r.ok) { throw new Error(url + ': HTTP ' + r.status); }
      return r.json();
    });
  };

  // ---------------------------------------------------------------- levels and bands
  gm.LEVEL_ZH = {street: '街道', community: '社区', grid: '网格', compound: '小区', neighbourhood: '小邻里', building: '楼栋'};
  gm.LEVEL_STYLE = {
    street: {color: '#263238', weight: 3.2},
    community: {color: '#6a3d9a', weight: 2.0},
    grid: {color: '#455a64', weight: 0.9},
    compound: {color: '#8d6e63', weight: 1.3, dashArray: '5 4'},
    neighbourhood: {color: '#78909c', weight: 0.6},
    building: {color: '#8d6e63', weight: 0.6}
  };
  // bottom to top: a click reaches the finest visible level
  gm.LEVEL_Z = {street: 410, community: 420, compound: 430, grid: 440, neighbourhood: 450, building: 460};
  // outlines of the upper levels above every fill, streets on top
  gm.LINE_Z = {street: 480, community: 478, compound: 476, grid: 474, neighbourhood: 472, building: 471};

  gm.BANDS = [
    {key: 'far_below', color: '#3a6fb0', zh: '远低于', en: 'far below (< 50% of floor)'},
    {key: 'below', color: '#8db8e0', zh: '低于', en: 'below the band'},
    {key: 'in', color: '#9fd39a', zh: '在范围内', en: 'in the band'},
    {key: 'above', color: '#f7b267', zh: '高于', en: 'above the band'},
    {key: 'far_above', color: '#e4572e', zh: '远高于', en: 'far above (> 150% of ceiling)'}
  ];
  var bandColour = {};
  gm.BANDS.forEach(function (b) { bandColour[b.key] = b; });
  gm.NO_BAND = '#cfd8dc';

  /** Where households sit against a band [lo, hi]: far_below, below, in, above, far_above. */
  gm.bandClass = function (households, band, fallback) {
    if (households === null || households === undefined || !band) { return fallback || null; }
    if (households < band[0]) { return households < band[0] / 2 ? 'far_below' : 'below'; }
    if (households > band[1]) { return households > band[1] * 1.5 ? 'far_above' : 'above'; }
    return 'in';
  };
  gm.bandColour = function (cls) { return cls && bandColour[cls] ? bandColour[cls].color : gm.NO_BAND; };
  gm.bandChip = function (households, band, fallback) {
    var cls = gm.bandClass(households, band, fallback);
    if (!cls) { return ''; }
    var b = bandColour[cls];
    return '<span class="gm-chip gm-band-' + cls + '">' + b.zh + ' ' + b.en.split(' (')[0] + '</span>';
  };

  /** The chain of parents as a list: 街道 name code › 社区 name code › ... */
  gm.chainHtml = function (chain) {
    if (!chain || !chain.length) { return '<span class="gm-sub">–</span>'; }
    return '<ul class="gm-chain">' + chain.map(function (u) {
      return '<li><span class="gm-chip">' + (gm.LEVEL_ZH[u.level] || u.level) + '</span>' + gm.esc(u.name) +
        ' <span class="gm-code">' + gm.esc(u.code) + '</span></li>';
    }).join('') + '</ul>';
  };

  // ---------------------------------------------------------------- panes
  gm.pane = function (name, zIndex, noPointer) {
    var pane = gm.map.getPane(name) || gm.map.createPane(name);
    pane.style.zIndex = zIndex;
    if (noPointer) { pane.style.pointerEvents = 'none'; pane.classList.add('gm-labels-pane'); }
    return name;
  };

  // ---------------------------------------------------------------- GeoJSON layers
  function coordsToLatLng(c) { return gm.latLng(c[0], c[1]); }

  /**
   * WGS84 GeoJSON drawn in the current datum (build again on a datum change).
   * opts: pane, style(props), className, click(props, latlng, layer), tooltip(props),
   * hoverWeight, isHighlighted(layer), and linePane + lineStyle for a non-interactive copy
   * of the outlines in a pane above the fills.
   * Returns {group, fill, byId}: byId maps properties.id to the feature's layer.
   */
  gm.geoLayer = function (fc, opts) {
    var group = L.featureGroup(), byId = {};
    var fill = L.geoJSON(fc, {
      pane: opts.pane, coordsToLatLng: coordsToLatLng,
      style: function (f) { return L.extend({className: opts.className || ''}, opts.style(f.properties)); },
      onEachFeature: function (f, layer) {
        if (f.properties && f.properties.id !== undefined) { byId[f.properties.id] = layer; }
        if (opts.tooltip) { layer.bindTooltip(opts.tooltip(f.properties), {sticky: true, direction: 'top', opacity: 0.92}); }
        if (opts.click) { layer.on('click', function (e) { opts.click(f.properties, e.latlng, layer); }); }
        if (opts.hoverWeight) {
          var highlighted = opts.isHighlighted || function () { return false; };
          layer.on('mouseover', function () { if (!highlighted(layer)) { layer.setStyle({weight: opts.hoverWeight}); } });
          layer.on('mouseout', function () { if (!highlighted(layer)) { fill.resetStyle(layer); } });
        }
      }
    });
    group.addLayer(fill);
    if (opts.linePane) {
      group.addLayer(L.geoJSON(fc, {pane: opts.linePane, coordsToLatLng: coordsToLatLng, interactive: false,
        style: L.extend({fill: false, opacity: 0.95}, opts.lineStyle)}));
    }
    return {group: group, fill: fill, byId: byId};
  };

  // ---------------------------------------------------------------- unit layers
  /**
   * A layer of units of one level, from embedded GeoJSON (cfg.mode 'geojson') or vector
   * tiles (cfg.mode 'tiles'), following the datum. opts: style(props) -> path options,
   * click(props, latlng), tooltip(props) -> text, outline (draw a non-interactive copy of
   * the outlines in a pane above every fill).
   * Returns {group, level, mode, count(), layerOf(id), restyle(), vertex(id)}.
   */
  gm.unitLayer = function (cfg, fc, opts) {
    var level = cfg.level, group = L.featureGroup();
    var fillPane = gm.pane('gm-fill-' + level, gm.LEVEL_Z[level]);
    var linePane = opts.outline ? gm.pane('gm-line-' + level, gm.LINE_Z[level]) : null;
    var api = {group: group, level: level, mode: cfg.mode, byId: {}};
    var current = null;

    function buildGeojson() {
      if (current) { group.removeLayer(current.group); }
      current = gm.geoLayer(fc, {
        pane: fillPane, linePane: linePane, className: 'gm-unit gm-unit-' + level,
        style: opts.style, lineStyle: gm.LEVEL_STYLE[level], tooltip: opts.tooltip, click: opts.click,
        hoverWeight: (gm.LEVEL_STYLE[level].weight || 1) + 2,
        isHighlighted: function (layer) { return api.highlighted === layer; }
      });
      api.byId = current.byId;
      group.addLayer(current.group);
    }

    function tileUrl() {
      var url = cfg.tiles.replace('{level}', level);
      return url + (gm.datum === 'gcj02' ? (url.indexOf('?') < 0 ? '?' : '&') + 'datum=gcj02' : '');
    }

    if (cfg.mode === 'tiles') {
      var styles = {};
      styles[level] = function (props) { return L.extend({fill: true}, opts.style(props)); };
      current = L.vectorGrid.protobuf(tileUrl(), {
        pane: fillPane,
        rendererFactory: L.svg.tile,
        vectorTileLayerStyles: styles,
        interactive: true,
        getFeatureId: function (f) { return f.properties.id; },
        minZoom: cfg.minZoom || 0,
        maxNativeZoom: cfg.maxNativeZoom || 19,
        maxZoom: 19
      });
      current.on('click', function (e) { opts.click(e.layer.properties, e.latlng, null); });
      current.on('tileload', function () { api.tilesLoaded = (api.tilesLoaded || 0) + 1; });
      group.addLayer(current);
      gm.follow(function () { current.setUrl(tileUrl()); });
    } else {
      buildGeojson();
      gm.follow(buildGeojson);
    }

    /** Ids of the units drawn: all of them, or those in the vector tiles loaded so far. */
    api.ids = function () {
      if (cfg.mode !== 'tiles') { return Object.keys(api.byId).map(Number); }
      var seen = {};
      Object.keys(current._vectorTiles || {}).forEach(function (key) {
        Object.keys(current._vectorTiles[key]._features || {}).forEach(function (id) { seen[id] = true; });
      });
      return Object.keys(seen).map(Number);
    };
    api.count = function () { return api.ids().length; };
    api.restyle = function () {
      if (cfg.mode === 'tiles') { current.redraw(); return; }
      current.fill.resetStyle();
      if (api.highlighted) { api.highlight(api.highlighted); }
    };
    /** Outline one unit (a layer of this level) until clearHighlight. */
    api.highlight = function (layer) {
      if (api.highlighted && api.highlighted !== layer) { current.fill.resetStyle(api.highlighted); }
      api.highlighted = layer;
      layer.setStyle({weight: 4, color: '#d9480f', opacity: 1});
      layer.bringToFront();
    };
    api.clearHighlight = function () {
      if (api.highlighted) { current.fill.resetStyle(api.highlighted); api.highlighted = null; }
    };
    /** The first vertex of a unit as drawn now ([lat, lng]), for checks of the datum shift. */
    api.vertex = function (id) {
      var layer = api.byId[id];
      if (!layer) { return null; }
      var ll = layer.getLatLngs();
      while (Array.isArray(ll[0])) { ll = ll[0]; }
      return [ll[0].lat, ll[0].lng];
    };
    api.layerOf = function (id) { return api.byId[id]; };
    return api;
  };

  // ---------------------------------------------------------------- labels
  var LABEL_FONT = {street: 15, community: 13};
  /** Whether a label fits its unit at zoom z: item.room is the unit's box [width, height] in degrees. */
  function labelFits(item, level, z) {
    if (!item.room) { return true; }
    var perDegree = 256 * Math.pow(2, z) / 360;
    var wide = item.room[0] * perDegree, high = item.room[1] * perDegree / Math.cos(item.lat * Math.PI / 180);
    var font = LABEL_FONT[level] || 11.5;
    var need = Math.max(String(item.name || '').length * font, String(item.code || '').length * 6.2);
    return wide >= need * 1.05 + 4 && high >= (item.code ? 28 : 16);
  }

  /** A layer of labels (name over code) at WGS84 points, following the datum: only the
   * labels that fit inside their unit at the current zoom are shown. */
  gm.labelLayer = function (level) {
    var pane = gm.pane('gm-labels', 590, true);
    var group = L.layerGroup(), items = [], shown = 0, zoom = null;
    function build() {
      group.clearLayers();
      shown = 0;
      zoom = gm.map.getZoom();
      items.forEach(function (it) {
        if (!labelFits(it, level, zoom)) { return; }
        var html = '<div>' + gm.esc(it.name) + (it.code ? '<span class="gm-code">' + gm.esc(it.code) + '</span>' : '') + '</div>';
        group.addLayer(L.marker(gm.latLng(it.lon, it.lat), {
          pane: pane, interactive: false, keyboard: false,
          icon: L.divIcon({className: 'gm-label gm-label-' + level, html: html, iconSize: null})
        }));
        shown++;
      });
    }
    gm.follow(build);
    gm.map.on('zoomend', function () { if (items.length && gm.map.getZoom() !== zoom) { build(); } });
    return {
      group: group,
      set: function (list) { items = list; build(); },
      size: function () { return items.length; },
      shown: function () { return shown; }
    };
  };

  // ---------------------------------------------------------------- start
  gm.start = function (kind, env) {
    gm.kind = kind;
    gm.map = env.map;
    gm.layerControl = env.control;
    gm.bases = env.bases;
    var cfgNode = document.getElementById('gm-config'), dataNode = document.getElementById('gm-data');
    gm.config = JSON.parse(cfgNode.textContent);
    var data = dataNode ? JSON.parse(dataNode.textContent) : null;
    gm.datum = gm.config.datum || 'wgs84';
    // Leaflet.VectorGrid 1.3 calls L.DomEvent.fakeStop, which Leaflet 1.8 removed
    if (L.DomEvent && !L.DomEvent.fakeStop) { L.DomEvent.fakeStop = L.DomEvent.stopPropagation; }
    gm.map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
    gm.map.on('baselayerchange', function (e) {
      gm.base = e.layer.options.base_key;
      setDatum(e.layer.options.datum || 'wgs84');
    });
    gm.base = gm.config.base;
    gm.pages[kind](gm.config, data);
  };

  /** Add an overlay to the layer control, with a count after its name. */
  gm.overlay = function (layer, name, count, show) {
    var label = name + (count !== undefined && count !== null ? ' <span class="gm-count">' + gm.num(count) + '</span>' : '');
    gm.layerControl.addOverlay(layer, label);
    if (show) { layer.addTo(gm.map); }
    return layer;
  };
}());
