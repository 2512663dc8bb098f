/* /maps/overview: every level as a layer, households against the band, labels by zoom,
 * details on click, search by name or code. */
(function () {
  'use strict';
  var gm = window.gridmap;
  var OUTLINED = {street: true, community: true, grid: true, compound: true};

  gm.pages.overview = function (cfg, data) {
    var map = gm.map, units = {}, labels = {}, byLevel = {};
    var colourBy = cfg.colourBy;
    gm.units = units;

    cfg.levels.forEach(function (lv) { byLevel[lv.level] = lv; });
    // the view first: a tile layer added before it would ask for the tiles of the default view
    // (48 wasted requests, 3.9 MB, on a city of 65,000 grids)
    if (cfg.extent) { map.fitBounds(gm.bounds(cfg.extent), {padding: [20, 20], animate: false}); }

    // ------------------------------------------------------------ details
    function unitHtml(u, chain) {
      var lv = byLevel[u.level] || {};
      var band = u.band_range || lv.band;
      var rows = '<tr><th>户数 Households</th><td>' + gm.num(u.households) + ' ' + gm.bandChip(u.households, band, u.band) + '</td></tr>';
      if (band) { rows += '<tr><th>标准 Band</th><td>' + gm.num(band[0]) + '–' + gm.num(band[1]) + ' 户</td></tr>'; }
      if (u.population) { rows += '<tr><th>人口 Population</th><td>' + gm.num(u.population) + '</td></tr>'; }
      rows += '<tr><th>上级 Parents</th><td>' + (chain ? gm.chainHtml(chain) : '<span class="gm-sub">加载中 loading…</span>') + '</td></tr>';
      return '<div class="gm-pop gm-pop-unit" data-id="' + u.id + '">' +
        '<h3><span class="gm-chip">' + gm.esc(gm.LEVEL_ZH[u.level] || u.level) + '</span> ' + gm.esc(u.name) + '</h3>' +
        '<div class="gm-code">' + gm.esc(u.code) + '</div><table>' + rows + '</table>' +
        '<div class="gm-links"><a href="' + cfg.api.units + u.id + '" target="_blank">单元详情 /units/' + u.id + '</a>' +
        '<a href="' + cfg.api.history.replace('{id}', u.id) + '" target="_blank">历史 history</a></div></div>';
    }

    var highlighted = null;
    function showUnit(props, latlng, layer) {
      if (highlighted) { highlighted.clearHighlight(); highlighted = null; }
      var popup = L.popup({maxWidth: 360, minWidth: 240}).setLatLng(latlng).setContent(unitHtml(props, null)).openOn(map);
      if (layer && units[props.level]) {
        highlighted = units[props.level];
        highlighted.highlight(layer);
      }
      gm.fetchJson(cfg.api.unit + props.id).then(function (u) {
        gm.lastUnit = u;
        popup.setContent(unitHtml(u, u.chain));
      });
    }
    map.on('popupclose', function () { if (highlighted) { highlighted.clearHighlight(); highlighted = null; } });

    // ------------------------------------------------------------ layers
    function styleFor(lv) {
      var s = gm.LEVEL_STYLE[lv.level];
      return function (p) {
        var filled = colourBy === lv.level;
        return {
          color: s.color, weight: s.weight, dashArray: s.dashArray || null, opacity: 0.9,
          fill: true, fillColor: filled ? gm.bandColour(gm.bandClass(p.households, lv.band, p.band)) : '#ffffff',
          fillOpacity: filled ? 0.58 : 0
        };
      };
    }

    cfg.levels.forEach(function (lv) {
      if (lv.mode === 'none') { return; }
      var unit = gm.unitLayer(lv, data[lv.level], {
        style: styleFor(lv), click: showUnit, outline: OUTLINED[lv.level],
        tooltip: lv.mode === 'geojson' ? function (p) { return gm.esc(p.name) + ' <span class="gm-code">' + gm.esc(p.code) + '</span>'; } : null
      });
      units[lv.level] = unit;
      gm.layers[lv.level] = unit.group;
      gm.overlay(unit.group, lv.zh + ' ' + lv.en, lv.count, lv.show);
      labels[lv.level] = gm.labelLayer(lv.level);
      if (lv.mode === 'geojson') {
        labels[lv.level].set(data[lv.level].features.map(function (f) {
          return {lon: f.properties.lp[0], lat: f.properties.lp[1], name: f.properties.name, code: f.properties.code,
                  room: f.properties.room};
        }));
        gm.counts[lv.level] = unit.count();
      }
    });

    // ------------------------------------------------------------ labels: one level at a time
    var labelRequest = 0;
    function updateLabels() {
      var z = map.getZoom(), chosen = null;
      cfg.levels.forEach(function (lv) {
        if (units[lv.level] && map.hasLayer(units[lv.level].group) && lv.labelZoom <= z &&
            (!lv.minZoom || lv.minZoom <= z)) { chosen = lv; }
      });
      Object.keys(labels).forEach(function (level) {
        var on = chosen && chosen.level === level;
        if (on && !map.hasLayer(labels[level].group)) { labels[level].group.addTo(map); }
        if (!on && map.hasLayer(labels[level].group)) { map.removeLayer(labels[level].group); }
      });
      gm.labelLevel = chosen ? chosen.level : null;
      if (chosen && chosen.mode === 'tiles') {
        var ticket = ++labelRequest;
        gm.fetchJson(cfg.api.labels + '?level=' + chosen.level + '&bbox=' + gm.viewBox()).then(function (rows) {
          if (ticket !== labelRequest) { return; }
          labels[chosen.level].set(rows.map(function (r) { return {lon: r[0], lat: r[1], code: r[2], name: r[3], room: [r[4], r[5]]}; }));
        });
      }
    }
    map.on('zoomend moveend overlayadd overlayremove', updateLabels);

    // ------------------------------------------------------------ search
    gm.panel('topleft', 'gm-search', function (div) {
      var counts = cfg.levels.map(function (lv) { return gm.num(lv.count) + ' ' + lv.zh; }).join(' · ');
      div.innerHTML = '<h1>网格地图总览<small>Overview</small></h1><div class="gm-sub">' + counts + '</div>' +
        '<input type="search" placeholder="搜索名称或编码 Search name or code" aria-label="search">' +
        '<ul class="gm-results"></ul>';
      var input = div.querySelector('input'), list = div.querySelector('.gm-results');
      var results = [], resultsFor = null, active = 0, ticket = 0, timer = null;

      function render() {
        list.innerHTML = '';
        if (!input.value.trim()) { return; }
        if (!results.length) { list.appendChild(gm.el('li', 'gm-none', '没有找到 nothing found')); return; }
        results.forEach(function (r, i) {
          var li = gm.el('li', i === active ? 'gm-active' : '',
            '<span class="gm-chip">' + gm.esc(r.level_zh) + '</span><span>' + gm.esc(r.name) +
            ' <span class="gm-code">' + gm.esc(r.code) + '</span></span>');
          li.addEventListener('click', function () { choose(r); });
          list.appendChild(li);
        });
      }
      function lookup(then) {
        var q = input.value.trim(), mine = ++ticket;
        if (!q) { results = []; resultsFor = null; render(); return; }
        gm.fetchJson(cfg.api.search + '?q=' + encodeURIComponent(q)).then(function (rows) {
          if (mine !== ticket) { return; }
          results = rows; resultsFor = q; active = 0; render();
          gm.searchResults = rows;
          if (then && rows.length) { then(rows[0]); }
        });
      }
      function choose(r) {
        list.innerHTML = '';
        var unit = units[r.level];
        if (unit && !map.hasLayer(unit.group)) { unit.group.addTo(map); }
        map.fitBounds(gm.bounds(r.bbox), {maxZoom: 17, padding: [40, 40], animate: false});
        if (unit && unit.mode === 'tiles' && map.getZoom() < (byLevel[r.level].minZoom || 0)) {
          map.setZoom(byLevel[r.level].minZoom, {animate: false});
        }
        var layer = unit && unit.layerOf(r.id);
        showUnit(r, gm.latLng(r.label_point[0], r.label_point[1]), layer || null);
        gm.lastSearch = r;
      }
      input.addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(function () { lookup(); }, 150); });
      input.addEventListener('keydown', function (e) {
        if (e.key === 'ArrowDown') { active = Math.min(active + 1, results.length - 1); render(); e.preventDefault(); }
        if (e.key === 'ArrowUp') { active = Math.max(active - 1, 0); render(); e.preventDefault(); }
        if (e.key === 'Enter') {
          clearTimeout(timer);
          // the results shown may be for what was typed a moment ago: choose only from the current ones
          if (results.length && resultsFor === input.value.trim()) { choose(results[active]); } else { lookup(choose); }
        }
        if (e.key === 'Escape') { input.value = ''; results = []; render(); }
      });
    });

    // ------------------------------------------------------------ legend
    gm.panel('bottomright', 'gm-legend', function (div) {
      function build() {
        var banded = cfg.levels.filter(function (lv) { return lv.band && lv.mode !== 'none'; });
        var radios = banded.map(function (lv) {
          return '<label><input type="radio" name="gm-colour" value="' + lv.level + '"' + (colourBy === lv.level ? ' checked' : '') +
            '>' + lv.zh + '</label>';
        }).join('') + '<label><input type="radio" name="gm-colour" value="none"' + (colourBy === 'none' ? ' checked' : '') + '>无 none</label>';
        var band = byLevel[colourBy] && byLevel[colourBy].band;
        var swatches = gm.BANDS.map(function (b) {
          return '<span class="gm-swatch" style="background:' + b.color + '"></span><span>' + b.zh + ' <span class="gm-sub">' + b.en + '</span></span>';
        }).join('');
        var lines = ['street', 'community', 'grid', 'compound'].filter(function (l) { return byLevel[l]; }).map(function (l) {
          var s = gm.LEVEL_STYLE[l];
          return '<span class="gm-line-swatch" style="border-top:' + Math.max(1.5, s.weight) + 'px ' + (s.dashArray ? 'dashed ' : 'solid ') + s.color + '"></span><span>' + gm.LEVEL_ZH[l] + '边界 ' + l + '</span>';
        }).join('');
        div.innerHTML = '<h2 style="margin-top:0">户数着色 Households vs band</h2><div>' + radios + '</div>' +
          (band ? '<div class="gm-sub">' + byLevel[colourBy].zh + '标准 band: ' + gm.num(band[0]) + '–' + gm.num(band[1]) + ' 户</div>' : '') +
          '<div class="gm-swatches" style="margin-top:4px">' + swatches + '</div>' +
          '<h2>边界 Boundaries</h2><div class="gm-swatches">' + lines + '</div>';
        Array.prototype.forEach.call(div.querySelectorAll('input[name=gm-colour]'), function (input) {
          input.addEventListener('change', function () { setColourBy(input.value); build(); });
        });
      }
      build();
    });

    function setColourBy(level) {
      var old = colourBy;
      colourBy = level;
      gm.colourBy = level;
      [old, level].forEach(function (l) { if (units[l]) { units[l].restyle(); } });
      if (units[level] && !map.hasLayer(units[level].group)) { units[level].group.addTo(map); }
    }
    gm.setColourBy = setColourBy;
    gm.colourBy = colourBy;

    // ------------------------------------------------------------ view
    updateLabels();
    gm.ready = true;
  };
}());
