/* /maps/dispatch: incidents clustered and coloured by state, a heat map, grids coloured by
 * open and overdue incidents; filters by state, category and time; refreshed in place. */
(function () {
  'use strict';
  var gm = window.gridmap;

  // open incidents per grid: classes of the grid fill
  var OPEN_CLASSES = [
    {min: 1, max: 2, color: '#fee3a8'}, {min: 3, max: 5, color: '#fdb863'},
    {min: 6, max: 10, color: '#f4803c'}, {min: 11, max: Infinity, color: '#d7301f'}
  ];
  var OVERDUE_STROKE = '#c92a2a';

  gm.pages.dispatch = function (cfg, data) {
    var map = gm.map, stateOf = {}, catOf = {}, byLevel = {};
    cfg.states.forEach(function (s) { stateOf[s.key] = s; });
    cfg.categories.forEach(function (c) { catOf[c.code] = c; });
    cfg.levels.forEach(function (lv) { byLevel[lv.level] = lv; });
    var filters = {states: cfg.states.filter(function (s) { return s.open; }).map(function (s) { return s.key; }),
                   category: '', hours: null};
    var gridCounts = {}, unitNames = {}, markers = {}, heatPoints = [], last = null;
    gm.filters = filters;
    gm.markers = markers;

    // ------------------------------------------------------------ boundaries and grid counts
    function openClass(n) {
      for (var i = 0; i < OPEN_CLASSES.length; i++) { if (n >= OPEN_CLASSES[i].min && n <= OPEN_CLASSES[i].max) { return OPEN_CLASSES[i]; } }
      return null;
    }
    function gridStyle(p) {
      var c = gridCounts[p.id] || [0, 0, 0], cls = openClass(c[0]);
      return {color: c[1] ? OVERDUE_STROKE : '#5f6f7d', weight: c[1] ? 2.2 : 0.8, opacity: 0.9, fill: true,
              fillColor: cls ? cls.color : '#ffffff', fillOpacity: cls ? 0.5 : 0.03};
    }
    function outlineStyle(level) {
      return function () { return L.extend({fill: true, fillOpacity: 0, opacity: 0.9}, gm.LEVEL_STYLE[level]); };
    }
    function unitChain(ids) {
      return ids.filter(function (id) { return id && unitNames[id]; }).map(function (id) {
        var u = unitNames[id];
        return {level: u[0], code: u[1], name: u[2], id: id};
      });
    }
    function gridHtml(p, chain) {
      var c = gridCounts[p.id] || [0, 0, 0];
      return '<div class="gm-pop gm-pop-grid" data-id="' + p.id + '"><h3><span class="gm-chip">网格</span> ' + gm.esc(p.name) + '</h3>' +
        '<div class="gm-code">' + gm.esc(p.code) + '</div><table>' +
        '<tr><th>未办结 Open</th><td><b>' + gm.num(c[0]) + '</b></td></tr>' +
        '<tr><th>超期 Overdue</th><td>' + (c[1] ? '<b class="gm-bad">' + gm.num(c[1]) + '</b>' : '0') + '</td></tr>' +
        '<tr><th>合计 Total</th><td>' + gm.num(c[2]) + ' <span class="gm-sub">(所选类别与时间 in the chosen window)</span></td></tr>' +
        '<tr><th>上级 Parents</th><td>' + (chain ? gm.chainHtml(chain) : '<span class="gm-sub">加载中 loading…</span>') + '</td></tr>' +
        '</table></div>';
    }
    function gridClick(p, latlng) {
      var popup = L.popup({maxWidth: 360}).setLatLng(latlng).setContent(gridHtml(p, null)).openOn(map);
      gm.fetchJson(cfg.api.unit + p.id).then(function (u) { popup.setContent(gridHtml(p, u.chain)); });
    }

    var units = {};
    gm.units = units;
    ['street', 'community', 'grid'].forEach(function (level) {
      var lv = byLevel[level];
      if (!lv || lv.mode === 'none') { return; }
      var isGrid = level === 'grid';
      units[level] = gm.unitLayer(lv, data[level], {
        style: isGrid ? gridStyle : outlineStyle(level), outline: !isGrid,
        click: isGrid ? gridClick : function () {},
        tooltip: isGrid && lv.mode === 'geojson' ? function (p) {
          var c = gridCounts[p.id] || [0, 0, 0];
          return gm.esc(p.name) + ' <span class="gm-code">' + gm.esc(p.code) + '</span><br>未办结 ' + c[0] + ' · 超期 ' + c[1];
        } : null
      });
      gm.layers[level] = units[level].group;
      var name = isGrid ? '网格 未办结/超期 open &amp; overdue per grid' : lv.zh + '边界 ' + lv.en;
      gm.overlay(units[level].group, name, lv.count, true);
    });

    // grid fills below the overlay pane, so the heat map (which Leaflet.heat draws there) is not dimmed
    if (units.grid) { map.getPane('gm-fill-grid').style.zIndex = 380; }

    // badges with the open count on each grid, from zoom 14, while the incidents are not shown
    // one by one (too many of them, or their layer turned off)
    var badges = L.layerGroup(), badgePane = gm.pane('gm-badges', 595, true);
    var gridFeatures = byLevel.grid && byLevel.grid.mode === 'geojson' ? data.grid.features : [];
    function drawBadges() {
      badges.clearLayers();
      var pointsShown = cluster && map.hasLayer(cluster) && !(last && last.too_many);
      if (!units.grid || !map.hasLayer(units.grid.group) || map.getZoom() < 14 || pointsShown) { return; }
      gridFeatures.forEach(function (f) {
        var c = gridCounts[f.properties.id];
        if (!c || !c[0]) { return; }
        badges.addLayer(L.marker(gm.latLng(f.properties.lp[0], f.properties.lp[1]), {
          pane: badgePane, interactive: false, keyboard: false,
          icon: L.divIcon({className: 'gm-badge' + (c[1] ? ' gm-overdue' : ''), iconSize: null,
                           html: '<span title="open">' + c[0] + '</span>'})
        }));
      });
    }
    badges.addTo(map);
    map.on('zoomend overlayadd overlayremove', drawBadges);
    gm.follow(drawBadges);

    // ------------------------------------------------------------ incidents
    function incidentIcon(r) {
      var c = catOf[r.category];
      return L.divIcon({className: 'gm-inc gm-state-' + r.state + (r.overdue ? ' gm-overdue' : ''),
                        html: gm.esc(c ? c.glyph : '?'), iconSize: [18, 18]});
    }
    function clusterIcon(cluster) {
      var children = cluster.getAllChildMarkers(), overdue = 0, open = 0;
      children.forEach(function (m) {
        var r = m.options.gm;
        if (r.overdue) { overdue++; }
        if (stateOf[r.state] && stateOf[r.state].open) { open++; }
      });
      var n = cluster.getChildCount(), size = n < 10 ? 30 : n < 100 ? 36 : n < 1000 ? 42 : 48;
      var cls = overdue ? 'gm-cluster-overdue' : open ? 'gm-cluster-open' : 'gm-cluster-done';
      return L.divIcon({className: 'gm-cluster-icon', iconSize: L.point(size, size),
        html: '<div class="gm-cluster ' + cls + '" style="width:' + size + 'px;height:' + size + 'px" title="' +
              open + ' open, ' + overdue + ' overdue"><span>' + n + '</span></div>'});
    }
    var cluster = L.markerClusterGroup({chunkedLoading: true, showCoverageOnHover: false, maxClusterRadius: 42,
                                        spiderfyOnMaxZoom: true, iconCreateFunction: clusterIcon});
    gm.cluster = cluster;
    gm.layers.incidents = cluster;

    function incidentHtml(r) {
      var s = stateOf[r.state] || {zh: r.state}, c = catOf[r.category] || {zh: r.category};
      var chain = unitChain([r.street_id, r.community_id, r.grid_id]);
      return '<div class="gm-pop gm-pop-incident" data-id="' + r.id + '">' +
        '<h3><span class="gm-dot gm-state-' + r.state + '"></span>#' + r.id + ' ' + gm.esc(c.zh) +
        ' <span class="gm-sub">' + gm.esc(r.category) + '</span></h3><table>' +
        '<tr><th>状态 State</th><td>' + gm.esc(s.zh) + ' <span class="gm-sub">' + r.state + '</span>' +
          (r.overdue ? ' <span class="gm-chip gm-band-far_above">超期 overdue</span>' : '') + '</td></tr>' +
        '<tr><th>上报 Reported</th><td>' + gm.time(r.reported_at) + ' · ' + gm.esc(cfg.channels[r.channel] || r.channel) + '</td></tr>' +
        '<tr><th>时限 Deadline</th><td>' + gm.time(r.deadline) + '</td></tr>' +
        '<tr><th>网格 Grid</th><td>' + (r.unassigned ? '<span class="gm-bad">不在任何网格 outside every grid</span>' : gm.chainHtml(chain)) + '</td></tr>' +
        '<tr><th>处置人 Worker</th><td>' + (r.worker ? gm.esc(r.worker) : '<span class="gm-sub">未派单 nobody yet</span>') + '</td></tr>' +
        (r.description ? '<tr><th>描述 Note</th><td>' + gm.esc(r.description) + '</td></tr>' : '') +
        '</table><div class="gm-links"><a href="' + cfg.api.incident + r.id + '" target="_blank">事件详情 /incidents/' + r.id + '</a></div></div>';
    }

    function toRecord(fields, row) {
      var r = {};
      fields.forEach(function (f, i) { r[f] = row[i]; });
      return r;
    }

    function updateMarkers(res) {
      var seen = {}, add = [], remove = [], changed = [];
      res.incidents.forEach(function (row) {
        var r = toRecord(res.fields, row), sig = r.state + '|' + r.overdue + '|' + (r.worker || '');
        var m = markers[r.id];
        seen[r.id] = true;
        if (!m) {
          m = L.marker(gm.latLng(r.lon, r.lat), {icon: incidentIcon(r), gm: r, gmSig: sig});
          m.bindPopup(function (layer) { return incidentHtml(layer.options.gm); }, {maxWidth: 380, minWidth: 260});
          markers[r.id] = m;
          add.push(m);
          return;
        }
        m.options.gm = r;
        if (m.options.gmSig !== sig) {
          m.options.gmSig = sig;
          m.setIcon(incidentIcon(r));
          changed.push(m);
          if (m.isPopupOpen()) { m.getPopup().setContent(incidentHtml(r)); }
        }
      });
      Object.keys(markers).forEach(function (id) {
        if (!seen[id]) { remove.push(markers[id]); delete markers[id]; }
      });
      if (remove.length) { cluster.removeLayers(remove); }
      if (add.length) { cluster.addLayers(add); }
      if (changed.length) { cluster.refreshClusters(changed); }
    }
    gm.follow(function () {
      var all = Object.keys(markers).map(function (id) { return markers[id]; });
      cluster.clearLayers();
      all.forEach(function (m) { m.setLatLng(gm.latLng(m.options.gm.lon, m.options.gm.lat)); });
      cluster.addLayers(all);
    });

    // ------------------------------------------------------------ heat
    // Leaflet.heat's maxZoom is the zoom of full intensity; the layer control would read it as the
    // layer's own maxZoom and grey it out above, so the control gets a group around the heat layer
    var heat = L.heatLayer([], {radius: 26, blur: 20, minOpacity: 0.35, maxZoom: 13,
      gradient: {0.2: '#3288bd', 0.4: '#66c2a5', 0.6: '#fee08b', 0.8: '#f46d43', 1.0: '#9e0142'}});
    var heatGroup = L.layerGroup([heat]);
    gm.layers.heat = heatGroup;
    function drawHeat() {
      var weights = heatPoints.map(function (p) { return p[2]; }).sort(function (a, b) { return a - b; });
      // a lone report is cool, a bin or overlap of several is hot
      var max = weights.length ? Math.max(1.5, 1.2 * (weights[Math.floor(weights.length * 0.95)] || 1)) : 1.5;
      heat.setOptions({max: max});
      heat.setLatLngs(heatPoints.map(function (p) { var ll = gm.latLng(p[0], p[1]); return [ll.lat, ll.lng, p[2]]; }));
    }
    gm.follow(drawHeat);

    gm.overlay(cluster, '事件点 Incidents', null, true);
    gm.overlay(heatGroup, '热力图 Heat map', null, false);

    // ------------------------------------------------------------ panel: figures and filters
    var panel;
    gm.panel('topleft', 'gm-filters', function (div) {
      panel = div;
      var states = cfg.states.map(function (s) {
        return '<label><input type="checkbox" name="state" value="' + s.key + '"' + (filters.states.indexOf(s.key) >= 0 ? ' checked' : '') +
          '><span class="gm-dot gm-state-' + s.key + '"></span>' + s.zh + '</label>';
      }).join('');
      var cats = '<option value="">全部类别 all categories</option>' + cfg.categories.map(function (c) {
        return '<option value="' + c.code + '">' + c.glyph + ' ' + gm.esc(c.zh) + ' · ' + c.code + '</option>';
      }).join('');
      var windows = cfg.windows.map(function (w) {
        return '<option value="' + (w.hours || '') + '">' + gm.esc(w.label) + '</option>';
      }).join('');
      div.innerHTML = '<h1>事件调度<small>Dispatch</small></h1>' +
        '<div class="gm-figures"><div><b class="gm-total">–</b>显示 shown</div><div><b class="gm-open">–</b>未办结 open</div>' +
        '<div class="gm-bad"><b class="gm-overdue-n">–</b>超期 overdue</div></div>' +
        '<div class="gm-note gm-too-many" hidden></div>' +
        '<fieldset><legend>状态 State</legend><div class="gm-states">' + states + '</div>' +
        '<div style="margin-top:3px"><button type="button" data-preset="open">只看未办结 open</button> ' +
        '<button type="button" data-preset="all">全部状态 all</button></div></fieldset>' +
        '<div class="gm-row"><span>类别</span><select name="category">' + cats + '</select></div>' +
        '<div class="gm-row"><span>时间</span><select name="hours">' + windows + '</select></div>' +
        '<div class="gm-sub">每 ' + cfg.refresh + ' 秒自动刷新 · 更新于 <span class="gm-when">–</span> ' +
        '<button type="button" class="gm-refresh">刷新 refresh</button></div>';
      function readStates() {
        filters.states = Array.prototype.filter.call(div.querySelectorAll('input[name=state]'), function (i) { return i.checked; })
          .map(function (i) { return i.value; });
      }
      Array.prototype.forEach.call(div.querySelectorAll('input[name=state]'), function (input) {
        input.addEventListener('change', function () { readStates(); refresh(); });
      });
      Array.prototype.forEach.call(div.querySelectorAll('button[data-preset]'), function (button) {
        button.addEventListener('click', function () {
          var all = button.getAttribute('data-preset') === 'all';
          Array.prototype.forEach.call(div.querySelectorAll('input[name=state]'), function (i) {
            i.checked = all || stateOf[i.value].open;
          });
          readStates(); refresh();
        });
      });
      div.querySelector('select[name=category]').addEventListener('change', function (e) { filters.category = e.target.value; refresh(); });
      div.querySelector('select[name=hours]').addEventListener('change', function (e) {
        filters.hours = e.target.value ? Number(e.target.value) : null; refresh();
      });
      div.querySelector('.gm-refresh').addEventListener('click', function () { refresh(); });
    });

    gm.panel('bottomright', 'gm-legend', function (div) {
      var states = cfg.states.map(function (s) {
        return '<span class="gm-swatch gm-state-' + s.key + '" style="border-radius:50%"></span><span>' + s.zh + ' <span class="gm-sub">' + s.key + '</span></span>';
      }).join('');
      var classes = OPEN_CLASSES.map(function (c) {
        return '<span class="gm-swatch" style="background:' + c.color + '"></span><span>' + c.min + (c.max === Infinity ? '+' : c.max > c.min ? '–' + c.max : '') + ' 件未办结 open</span>';
      }).join('');
      div.innerHTML = '<h2 style="margin-top:0">事件状态 Incident state</h2><div class="gm-swatches">' + states +
        '<span class="gm-swatch" style="background:#fff;box-shadow:0 0 0 2.5px ' + OVERDUE_STROKE + ';border-radius:50%"></span><span>红圈：超期 red ring: overdue</span></div>' +
        '<h2>网格 Grids</h2><div class="gm-swatches">' + classes +
        '<span class="gm-line-swatch" style="border-top:2.5px solid ' + OVERDUE_STROKE + '"></span><span>有超期事件 has overdue</span></div>';
    });

    function setFigures(res) {
      panel.querySelector('.gm-total').textContent = gm.num(res.total);
      panel.querySelector('.gm-open').textContent = gm.num(res.open);
      panel.querySelector('.gm-overdue-n').textContent = gm.num(res.overdue);
      panel.querySelector('.gm-when').textContent = new Date().toLocaleTimeString('zh-CN', {hour12: false});
      var note = panel.querySelector('.gm-too-many');
      note.hidden = !res.too_many;
      if (res.too_many) {
        note.innerHTML = '共 ' + gm.num(res.total) + ' 条，超过 ' + gm.num(res.limit) + ' 条：只显示热力图与网格统计。' +
          '<br>Over ' + gm.num(res.limit) + ' incidents: heat map and grid counts only — narrow the filters to see each one.';
      }
    }

    // ------------------------------------------------------------ refresh
    var version = 0, wasTooMany = false;
    gm.refreshes = 0;
    function query() {
      var q = ['limit=' + cfg.maxMarkers];
      q.push('state=' + encodeURIComponent(filters.states.join(',')));
      if (filters.category) { q.push('category=' + encodeURIComponent(filters.category)); }
      if (filters.hours) { q.push('hours=' + filters.hours); }
      return cfg.api.incidents + '?' + q.join('&');
    }
    function apply(res) {
      last = res;
      L.extend(unitNames, res.units);
      gridCounts = res.grids;
      if (units.grid) { units.grid.restyle(); }
      drawBadges();
      heatPoints = res.heat;
      drawHeat();
      updateMarkers(res);
      if (res.too_many && !wasTooMany && !map.hasLayer(heatGroup)) { heatGroup.addTo(map); }
      wasTooMany = res.too_many;
      setFigures(res);
      var openGrids = Object.keys(gridCounts).filter(function (k) { return gridCounts[k][0] > 0; }).length;
      gm.counts = {total: res.total, open: res.open, overdue: res.overdue, markers: Object.keys(markers).length,
                   heat: res.heat.length, openGrids: openGrids, tooMany: res.too_many,
                   grids: units.grid ? units.grid.count() : 0};
      gm.refreshes++;
      gm.last = res;
      gm.ready = true;
    }
    // gm.requested: the latest refresh asked for; gm.applied: the one shown (older answers are dropped)
    function refresh() {
      var mine = ++version;
      gm.requested = mine;
      if (!filters.states.length) {
        // nothing chosen: nothing to show (the server would read an empty list as "all")
        apply({total: 0, open: 0, overdue: 0, limit: cfg.maxMarkers, too_many: false, fields: [], incidents: [],
               heat: [], grids: {}, units: {}});
        gm.applied = mine;
        return Promise.resolve();
      }
      return gm.fetchJson(query()).then(function (res) {
        if (mine === version) { apply(res); gm.applied = mine; }
      }).catch(function (err) {
        panel.querySelector('.gm-when').textContent = '刷新失败 refresh failed';
        console.warn(err);
      });
    }
    gm.refresh = refresh;

    if (cfg.extent) { map.fitBounds(gm.bounds(cfg.extent), {padding: [20, 20], animate: false}); }
    refresh();
    setInterval(function () { if (!document.hidden) { refresh(); } }, cfg.refresh * 1000);
  };
}());
