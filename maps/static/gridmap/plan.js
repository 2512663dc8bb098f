/* /maps/plan/{id}: the proposed split or merge beside the current boundaries, per-part
 * households and metrics, validation problems highlighted. */
(function () {
  'use strict';
  var gm = window.gridmap;
  var PROPOSED_LINE = '#0b4f8a', CURRENT_LINE = '#37474f', PROBLEM = '#d6336c';
  var PROBLEM_ZH = {out_of_band: '户数超出标准 out of band', not_contiguous: '不连通 not contiguous',
                    overlap: '重叠 overlap', gap: '缝隙 gap', outside_parent: '超出范围 outside parent'};

  gm.pages.plan = function (cfg, data) {
    var map = gm.map, plan = data.plan, band = data.band, m = data.metrics || {};
    var partBySeq = {};
    data.parts.forEach(function (p) { partBySeq[p.seq] = p; });

    var proposedPane = gm.pane('gm-plan-proposed', 440), currentPane = gm.pane('gm-plan-current', 430);
    var currentLines = gm.pane('gm-plan-current-lines', 476), outlinePane = gm.pane('gm-plan-outline', 480);
    var problemPane = gm.pane('gm-plan-problems', 490);

    // ------------------------------------------------------------ popups
    function partHtml(p) {
      var from = Object.keys(p.from || {}).map(function (code) {
        return '<li><span class="gm-code">' + gm.esc(code) + '</span> ' + gm.num(p.from[code]) + ' 户</li>';
      }).join('');
      return '<div class="gm-pop gm-pop-part" data-seq="' + p.seq + '"><h3><span class="gm-chip">方案 proposed</span> ' + gm.esc(p.name) + '</h3>' +
        '<div class="gm-code">' + gm.esc(p.code) + '</div><table>' +
        '<tr><th>户数 Households</th><td>' + gm.num(p.households) + ' ' + gm.bandChip(p.households, band) + '</td></tr>' +
        (band ? '<tr><th>标准 Band</th><td>' + gm.num(band[0]) + '–' + gm.num(band[1]) + ' 户</td></tr>' : '') +
        '<tr><th>紧凑度 Polsby-Popper</th><td>' + (p.polsby_popper === null || p.polsby_popper === undefined ? '–' : p.polsby_popper.toFixed(2)) + '</td></tr>' +
        '<tr><th>连通 Contiguous</th><td>' + (p.contiguous ? '<span class="gm-good">是 yes</span>' : '<span class="gm-bad">否 no</span>') + '</td></tr>' +
        '<tr><th>面积 Area</th><td>' + gm.num(Math.round(p.area_m2)) + ' m²</td></tr>' +
        (from ? '<tr><th>户来自 From</th><td><ul class="gm-chain">' + from + '</ul></td></tr>' : '') +
        (p.problems.length ? '<tr><th>问题 Problems</th><td class="gm-bad">' + p.problems.map(function (k) { return PROBLEM_ZH[k] || k; }).join('<br>') + '</td></tr>' : '') +
        '</table></div>';
    }
    function currentHtml(u) {
      return '<div class="gm-pop gm-pop-current"><h3><span class="gm-chip">现状 current</span> ' + gm.esc(u.name) + '</h3>' +
        '<div class="gm-code">' + gm.esc(u.code) + ' · v' + u.version + (u.current ? '' : ' <span class="gm-sub">(已不是现行版本 no longer current)</span>') + '</div><table>' +
        '<tr><th>户数 Households</th><td>' + gm.num(u.households) + ' ' + gm.bandChip(u.households, cfg.bands[u.level]) + '</td></tr>' +
        '</table><div class="gm-links"><a href="' + cfg.api.unit + u.id + '" target="_blank">单元详情 /units/' + u.id + '</a></div></div>';
    }
    function problemHtml(f) {
      var p = f.properties;
      return '<div class="gm-pop gm-pop-problem"><h3><span class="gm-chip" style="background:' + PROBLEM + ';color:#fff">' +
        (p.source === 'proposed' ? '方案问题 proposal' : '现状问题 current') + '</span> ' + gm.esc(PROBLEM_ZH[p.problem] || p.problem) + '</h3>' +
        '<div>' + gm.esc(p.message) + '</div></div>';
    }

    // ------------------------------------------------------------ layers (rebuilt when the datum changes)
    var groups = {current: L.featureGroup(), proposed: L.featureGroup(), problems: L.featureGroup(), outline: L.featureGroup()};
    var built = {};
    var labelsCurrent = gm.labelLayer('current'), labelsProposed = gm.labelLayer('proposed');
    function build() {
      Object.keys(groups).forEach(function (k) { groups[k].clearLayers(); });
      built.proposed = gm.geoLayer(data.proposed, {
        pane: proposedPane, className: 'gm-part',
        style: function (p) {
          var part = partBySeq[p.seq];
          return {color: PROPOSED_LINE, weight: 1.8, opacity: 0.95, fillOpacity: 0.55,
                  fillColor: gm.bandColour(gm.bandClass(p.households, band)),
                  dashArray: part && !part.contiguous ? '4 3' : null};
        },
        hoverWeight: 3.5,
        click: function (p, latlng) { L.popup({maxWidth: 360}).setLatLng(latlng).setContent(partHtml(partBySeq[p.seq])).openOn(map); },
        tooltip: function (p) { return gm.esc(p.name) + ' · ' + gm.num(p.households) + ' 户'; }
      });
      groups.proposed.addLayer(built.proposed.group);
      built.current = gm.geoLayer(data.current, {
        pane: currentPane, linePane: currentLines, className: 'gm-current',
        style: function () { return {color: CURRENT_LINE, weight: 1.5, fillColor: '#ffffff', fillOpacity: 0.0, dashArray: '6 4'}; },
        lineStyle: {color: CURRENT_LINE, weight: 1.6, dashArray: '6 4'},
        click: function (p, latlng) { L.popup({maxWidth: 340}).setLatLng(latlng).setContent(currentHtml(p)).openOn(map); }
      });
      groups.current.addLayer(built.current.group);
      if (data.outline) {
        groups.outline.addLayer(gm.geoLayer({type: 'FeatureCollection', features: [data.outline]}, {
          pane: outlinePane, style: function () { return {color: '#212529', weight: 3.5, fill: false, interactive: false}; }
        }).group);
      }
      built.problems = gm.geoLayer(data.problems, {
        pane: problemPane, className: 'gm-problem',
        style: function (p) {
          // a whole unit out of band or in pieces: its outline; an overlap, gap or spill: the area itself
          var whole = p.problem === 'out_of_band' || p.problem === 'not_contiguous';
          return {color: PROBLEM, weight: whole ? 2 : 2.5, dashArray: whole ? '2 5' : null, opacity: p.source === 'proposed' ? 1 : 0.7,
                  fill: !whole, fillColor: PROBLEM, fillOpacity: 0.45};
        },
        click: function (p, latlng) {
          L.popup({maxWidth: 320}).setLatLng(latlng).setContent(problemHtml({properties: p})).openOn(map);
        }
      });
      groups.problems.addLayer(built.problems.group);
      groups.proposed.addLayer(labelsProposed.group);
      data.problems.features.forEach(function (f) {
        var loc = f.properties.location;
        if (!loc) { return; }
        groups.problems.addLayer(L.circleMarker(gm.latLng(loc[0], loc[1]), {
          pane: problemPane, radius: 7, color: '#fff', weight: 2, fillColor: PROBLEM, fillOpacity: 1, className: 'gm-problem-pin'
        }).bindPopup(problemHtml(f)));
      });
    }
    build();
    gm.follow(build);
    labelsProposed.set(data.proposed.features.map(function (f) {
      return {lon: f.properties.lp[0], lat: f.properties.lp[1], name: f.properties.short, code: gm.num(f.properties.households) + ' 户',
              room: f.properties.room};
    }));
    labelsCurrent.set(data.current.features.map(function (f) {
      return {lon: f.properties.lp[0], lat: f.properties.lp[1], name: f.properties.name, code: f.properties.code,
              room: f.properties.room};
    }));

    gm.layers = {current: groups.current, proposed: groups.proposed, problems: groups.problems, outline: groups.outline};
    gm.overlay(groups.outline, '范围 ' + (data.parent ? data.parent.level_zh + ' ' + gm.esc(data.parent.name) : 'outline'), null, true);
    gm.overlay(groups.current, '现状 current', data.current.features.length, true);
    gm.overlay(groups.proposed, '方案 proposed', data.proposed.features.length, true);
    gm.overlay(groups.problems, '问题 problems', data.problems.features.length, true);
    // the current units' labels show when the proposal is hidden
    function currentLabels() {
      var show = map.hasLayer(groups.current) && !map.hasLayer(groups.proposed);
      if (show && !map.hasLayer(labelsCurrent.group)) { labelsCurrent.group.addTo(map); }
      if (!show && map.hasLayer(labelsCurrent.group)) { map.removeLayer(labelsCurrent.group); }
    }
    map.on('overlayadd overlayremove layeradd layerremove', currentLabels);

    // ------------------------------------------------------------ panel
    function pct(x) { return x === null || x === undefined ? '–' : Math.round(x * 100) + '%'; }
    function fixed(x) { return x === null || x === undefined ? '–' : Number(x).toFixed(2); }
    function focus(seq) {
      var layer = built.proposed.byId[seq];
      if (!layer) { return; }
      map.fitBounds(layer.getBounds(), {paddingTopLeft: [430, 30], paddingBottomRight: [30, 30], maxZoom: 17, animate: false});
      L.popup({maxWidth: 360}).setLatLng(layer.getBounds().getCenter()).setContent(partHtml(partBySeq[seq])).openOn(map);
      gm.focused = seq;
    }
    gm.focus = focus;

    gm.panel('topleft', 'gm-plan', function (div) {
      var n = data.parts.length, inBand = band ? data.parts.filter(function (p) { return gm.bandClass(p.households, band) === 'in'; }).length : null;
      var contiguous = data.parts.filter(function (p) { return p.contiguous; }).length;
      var missed = m.targets_missed || [];
      var cmp = data.compare || {}, codeChanges = cmp.code_changes || [];
      var workers = cmp.workers || {moved: [], unplaced: []};
      var codeList = codeChanges.slice(0, 200).map(function (c) {
        return '<li>' + gm.esc(c.level) + ' <span class="gm-code">' + gm.esc(c.from) + '</span> → <span class="gm-code">' + gm.esc(c.to) + '</span></li>';
      }).join('') + (codeChanges.length > 200 ? '<li>… ' + (codeChanges.length - 200) + ' more</li>' : '');
      var workerList = (workers.moved || []).map(function (w) {
        return '<li>' + gm.esc(w.name) + ' → ' + gm.esc(String(w.to_code || w.to_unit)) + '</li>';
      }).concat((workers.unplaced || []).map(function (w) {
        return '<li class="gm-bad">' + gm.esc(w.name) + ' 无网格 no unit: ' + gm.esc(w.reason || '') + '</li>';
      })).join('');
      var proposalProblems = data.problems.features.filter(function (f) { return f.properties.source === 'proposed'; }).length;
      var moved = data.parts.reduce(function (sum, p) {
        var from = Object.keys(p.from || {}).map(function (k) { return p.from[k]; });
        return sum + (from.length ? from.reduce(function (a, b) { return a + b; }, 0) - Math.max.apply(null, from) : 0);
      }, 0);
      var what = data.parent ? data.parent.level_zh + ' ' + gm.esc(data.parent.name) + ' <span class="gm-code">' + gm.esc(data.parent.code) + '</span> → ' : '';
      var figures = [
        ['单元 Parts', n],
        ['在范围内 In band', band ? inBand + ' / ' + n : '–'],
        ['连通 Contiguous', contiguous + ' / ' + n],
        ['迁移户数 Households moving', gm.num(cmp.households_moved !== undefined && cmp.households_moved !== null ? cmp.households_moved
          : m.households_moved !== undefined ? m.households_moved : moved)],
        ['编码变更 Codes changing', gm.num(codeChanges.length)]
      ];
      if (plan.kind !== 'merge') {
        figures.push(['沿路或墙 On road or wall', pct(m.road_or_wall_share)], ['沿路 On road', pct(m.road_share)],
                     ['紧凑度均值 Polsby-Popper mean', fixed(m.polsby_popper_mean)], ['紧凑度最小 Polsby-Popper min', fixed(m.polsby_popper_min)]);
      }
      var rows = data.parts.map(function (p) {
        return '<tr class="gm-part" data-seq="' + p.seq + '"><td>' + p.seq + '</td><td>' + gm.esc(p.name) +
          '<br><span class="gm-code">' + gm.esc(p.code) + '</span></td><td class="gm-num">' + gm.num(p.households) +
          '<br>' + gm.bandChip(p.households, band) + '</td><td class="gm-num">' + fixed(p.polsby_popper) + '</td><td>' +
          (p.problems.length ? '<span class="gm-bad">' + p.problems.map(function (k) { return (PROBLEM_ZH[k] || k).split(' ')[0]; }).join('、') + '</span>' : '<span class="gm-good">✓</span>') +
          '</td></tr>';
      }).join('');
      var problems = data.problems.features.map(function (f, i) {
        return '<li data-problem="' + i + '"><b>' + (f.properties.source === 'proposed' ? '方案' : '现状') + '</b> ' + gm.esc(f.properties.message) + '</li>';
      }).join('');
      var notes = (plan.notes || []).map(function (t) { return '<li>' + gm.esc(t) + '</li>'; }).join('');
      div.innerHTML = '<h1>方案 #' + plan.id + ' ' + plan.kind_zh + '<small>Plan · ' + plan.kind + '</small></h1>' +
        '<div class="gm-sub">' + what + plan.level_zh + ' ×' + n + (band ? '，标准 band ' + gm.num(band[0]) + '–' + gm.num(band[1]) + ' 户' : '') +
        ' · <span class="gm-chip">' + gm.esc(plan.status_zh || plan.status) + ' ' + plan.status + '</span> · 修订 rev ' + plan.revision + '</div>' +
        '<div class="gm-segment"><button type="button" data-mode="current">现状 current</button><button type="button" data-mode="proposed">方案 proposed</button>' +
        '<button type="button" data-mode="both" class="gm-on">叠加 both</button></div>' +
        '<div class="gm-legend-row">' + gm.BANDS.map(function (b) {
          return '<span title="' + b.en + '"><i class="gm-swatch" style="background:' + b.color + '"></i>' + b.zh + '</span>';
        }).join('') + '<span><i class="gm-line-swatch" style="border-top:2px dashed ' + CURRENT_LINE + '"></i>现状</span>' +
        '<span><i class="gm-swatch" style="background:' + PROBLEM + '"></i>问题</span></div>' +
        '<div class="gm-metrics">' + figures.map(function (f) { return '<div><b>' + f[1] + '</b><span>' + f[0] + '</span></div>'; }).join('') + '</div>' +
        (missed.length ? '<h2 class="gm-bad">未达标 Targets missed (' + missed.length + ')</h2><ul class="gm-targets">' +
          missed.map(function (t) { return '<li>' + gm.esc(t) + '</li>'; }).join('') + '</ul>'
          : proposalProblems ? '<h2 class="gm-bad">校验发现 ' + proposalProblems + ' 个方案问题 ' + proposalProblems + ' problem(s) in the proposal</h2>'
          : '<h2 class="gm-good gm-targets-met">✓ 全部达标 All targets met</h2>') +
        (cmp.problem ? '<h2 class="gm-bad">不能提交 Commit would fail</h2><div class="gm-sub gm-commit-problem">' + gm.esc(cmp.problem) + '</div>' : '') +
        '<h2>' + (cmp.as_committed ? '已变更编码 Codes changed' : '提交后编码变更 Codes that will change') + ' (' + codeChanges.length + ')</h2>' +
        (codeList ? '<ul class="gm-code-changes">' + codeList + '</ul>' : '<div class="gm-sub">没有 none</div>') +
        (workerList ? '<h2>' + (cmp.as_committed ? '网格员已调整 Workers moved' : '网格员将调整 Workers that will move') + '</h2><ul class="gm-workers">' + workerList + '</ul>' : '') +
        '<h2>各单元 Parts</h2><table class="gm-parts"><tr><th>#</th><th>名称 编码</th><th>户数</th><th>PP</th><th>问题</th></tr>' + rows + '</table>' +
        '<h2>校验问题 Validation problems (' + data.problems.features.length + ')</h2>' +
        (problems ? '<ul class="gm-problems">' + problems + '</ul>' : '<div class="gm-sub">没有 none</div>') +
        (notes ? '<h2>说明 Notes</h2><ul class="gm-notes">' + notes + '</ul>' : '') +
        '<div class="gm-sub" style="margin-top:6px"><a href="' + cfg.api.plan + '" target="_blank">JSON</a> · ' +
        '<a href="' + cfg.api.compare + '" target="_blank">对比 compare</a> · <a href="' + cfg.api.units + '" target="_blank">GeoJSON</a> · <a href="' + cfg.api.maps + '">全部地图 all maps</a></div>';
      Array.prototype.forEach.call(div.querySelectorAll('tr.gm-part'), function (tr) {
        tr.addEventListener('click', function () {
          Array.prototype.forEach.call(div.querySelectorAll('tr.gm-active'), function (t) { t.classList.remove('gm-active'); });
          tr.classList.add('gm-active');
          focus(Number(tr.getAttribute('data-seq')));
        });
      });
      Array.prototype.forEach.call(div.querySelectorAll('li[data-problem]'), function (li) {
        li.addEventListener('click', function () {
          var f = data.problems.features[Number(li.getAttribute('data-problem'))], loc = f.properties.location;
          map.setView(gm.latLng(loc[0], loc[1]), Math.max(map.getZoom(), 16), {animate: false});
          L.popup().setLatLng(gm.latLng(loc[0], loc[1])).setContent(problemHtml(f)).openOn(map);
        });
      });
      Array.prototype.forEach.call(div.querySelectorAll('.gm-segment button'), function (b) {
        b.addEventListener('click', function () {
          Array.prototype.forEach.call(div.querySelectorAll('.gm-segment button'), function (x) { x.classList.toggle('gm-on', x === b); });
          var mode = b.getAttribute('data-mode');
          [['current', mode !== 'proposed'], ['proposed', mode !== 'current']].forEach(function (pair) {
            var g = groups[pair[0]];
            if (pair[1] && !map.hasLayer(g)) { g.addTo(map); }
            if (!pair[1] && map.hasLayer(g)) { map.removeLayer(g); }
          });
        });
      });
    });

    gm.counts = {proposed: data.proposed.features.length, current: data.current.features.length,
                 problems: data.problems.features.length, parts: data.parts.length};
    var bounds = built.proposed.fill.getBounds().extend(built.current.fill.getBounds());
    if (data.outline) { bounds.extend(groups.outline.getBounds()); }
    if (bounds.isValid()) { map.fitBounds(bounds, {paddingTopLeft: [430, 30], paddingBottomRight: [30, 30], animate: false}); }
    currentLabels();
    gm.ready = true;
  };
}());
