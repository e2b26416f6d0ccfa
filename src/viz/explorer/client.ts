/**
 * The explorer's browser side: style and script, as text for the page and the notebook cell.
 * Everything is scoped under `.tda-explorer` and one root id, so several explorers can share
 * a notebook page. The script builds the DOM with textContent (never innerHTML from data),
 * renders only the visible part of the query list (virtual scrolling) and the training rows
 * a screenful at a time, and draws the agreement heatmaps with plotly when it is loaded.
 * (Plain string concatenation below: this text is not compiled, and runs as written.)
 */

export const EXPLORER_CSS = `
.tda-explorer { font: 14px/1.45 Inter, Helvetica, Arial, sans-serif; color: #222; }
.tda-explorer * { box-sizing: border-box; }
.tda-explorer .tdx-notes { color: #555; margin: 4px 0 10px; }
.tda-explorer .tdx-notes p { margin: 2px 0; }
.tda-explorer .tdx-main { display: grid; grid-template-columns: 370px minmax(0, 1fr); gap: 16px; align-items: start; }
.tda-explorer .tdx-side { border: 1px solid #dde2e8; border-radius: 6px; background: #fafbfc; }
.tda-explorer .tdx-filters { padding: 8px; display: flex; flex-wrap: wrap; gap: 6px; border-bottom: 1px solid #dde2e8; }
.tda-explorer .tdx-filters input { flex: 1 1 100%; padding: 6px 8px; font: inherit; border: 1px solid #c6ccd4; border-radius: 4px; }
.tda-explorer .tdx-filters select { flex: 1 1 45%; padding: 4px; font: inherit; min-width: 0; }
.tda-explorer .tdx-count { padding: 4px 8px; color: #666; font-size: 12px; border-bottom: 1px solid #dde2e8; }
.tda-explorer .tdx-list { position: relative; height: 640px; overflow-y: auto; }
.tda-explorer .tdx-spacer { position: relative; }
.tda-explorer .tdx-item { position: absolute; left: 0; right: 0; height: 58px; padding: 6px 10px; border-bottom: 1px solid #eceff3; cursor: pointer; overflow: hidden; }
.tda-explorer .tdx-item:hover { background: #eef3fb; }
.tda-explorer .tdx-item.tdx-selected { background: #dce8fa; }
.tda-explorer .tdx-item .tdx-p { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-weight: 600; }
.tda-explorer .tdx-item .tdx-a { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; color: #444; font-size: 13px; }
.tda-explorer .tdx-badge { display: inline-block; white-space: nowrap; font-size: 11px; padding: 0 6px; border-radius: 8px; background: #e6e9ee; color: #333; margin-left: 6px; font-weight: 500; }
.tda-explorer .tdx-badge.tdx-pos { background: #f7d774; }
.tda-explorer .tdx-badge.tdx-label { margin: 0 6px 0 0; }
.tda-explorer .tdx-detail h2 { font-size: 17px; margin: 0 0 4px; }
.tda-explorer .tdx-answer { margin: 0 0 6px; }
.tda-explorer .tdx-meta { color: #666; font-size: 13px; margin-bottom: 8px; }
.tda-explorer .tdx-views { display: flex; flex-wrap: wrap; gap: 4px; margin: 8px 0; }
.tda-explorer .tdx-views button { font: inherit; font-size: 13px; padding: 3px 10px; border: 1px solid #c6ccd4; background: #fff; border-radius: 12px; cursor: pointer; }
.tda-explorer .tdx-views button.tdx-on { background: #2e6fd0; color: #fff; border-color: #2e6fd0; }
.tda-explorer table.tdx-table { border-collapse: collapse; width: 100%; font-size: 13px; table-layout: auto; }
.tda-explorer .tdx-table td.tdx-train { min-width: 280px; }
.tda-explorer .tdx-table th, .tda-explorer .tdx-table td { border-bottom: 1px solid #e4e7eb; padding: 4px 6px; vertical-align: top; }
.tda-explorer .tdx-table th { background: #f4f6f8; text-align: right; white-space: nowrap; cursor: pointer; }
.tda-explorer .tdx-table th.tdx-sorted { background: #dce8fa; }
.tda-explorer .tdx-table th.tdx-text, .tda-explorer .tdx-table td.tdx-text { text-align: left; cursor: default; }
.tda-explorer .tdx-table td.tdx-num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.tda-explorer .tdx-table td.tdx-num .tdx-rank { display: block; color: #666; font-size: 11px; }
.tda-explorer .tdx-table td.tdx-num.tdx-intop .tdx-rank { color: #1d4f99; font-weight: 600; }
.tda-explorer .tdx-table tr.tdx-posrow td:first-child { border-left: 4px solid #e0b400; }
.tda-explorer .tdx-id { color: #888; font-size: 11px; margin-left: 6px; }
.tda-explorer .tdx-more { margin: 8px 0; font: inherit; padding: 4px 12px; cursor: pointer; }
.tda-explorer .tdx-tok { border-radius: 2px; white-space: pre-wrap; }
.tda-explorer .tdx-agree { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
.tda-explorer .tdx-plot { height: 320px; }
.tda-explorer .tdx-explain { background: #f4f6f8; border-top: 1px solid #dde2e8; padding: 8px 12px; font-size: 12.5px; }
.tda-explorer .tdx-explain p { margin: 4px 0; }
.tda-explorer .tdx-empty { color: #777; padding: 12px; }
`;

export const EXPLORER_SCRIPT = `(function (rootId) {
  var root = document.getElementById(rootId);
  var data = JSON.parse(document.getElementById(rootId + '-data').textContent);
  var ROW_H = 58, ROWS_STEP = 25;
  var state = { filtered: [], selected: -1, view: data.views[0], sortCol: 0, shown: ROWS_STEP };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return '\\u2014';
    var a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : v.toPrecision(3);
  }
  // Blue for positive (helps the test output), red for negative; alpha by magnitude.
  function tint(w, max) {
    if (w === null || !max) return '';
    var t = Math.min(1, Math.abs(w) / max) * 0.55;
    return w >= 0 ? 'rgba(46,111,208,' + t.toFixed(3) + ')' : 'rgba(192,57,43,' + t.toFixed(3) + ')';
  }
  // A text with one span per token, shaded by its weight; plain text when there are none.
  function tokensNode(text, ta, cls) {
    var box = el('span', cls);
    if (!ta) { box.textContent = text; return box; }
    var max = 0;
    ta.weights.forEach(function (w) { max = Math.max(max, Math.abs(w)); });
    box.className = (cls ? cls + ' ' : '') + 'tdx-heat';
    ta.tokens.forEach(function (tok, i) {
      var s = el('span', 'tdx-tok', tok);
      s.style.background = tint(ta.weights[i], max);
      s.title = 'token weight ' + fmt(ta.weights[i]);
      box.appendChild(s);
    });
    return box;
  }

  function explanation() {
    var box = el('div', 'tdx-explain');
    box.appendChild(el('strong', null, 'What a score means'));
    box.appendChild(el('p', null, 'Sign: a positive score means the training example helps this test output \\u2014 training on it lowers the loss of the answer shown; a negative score means it works against it. For similarity baselines (BM25, RepSim, a density kernel) the score says how alike the texts are, not how the example changes the loss.'));
    box.appendChild(el('p', null, 'Scale: scores are comparable within one method and one query (a cell\\u2019s shade is relative to the largest score in its column), not across methods: compare methods by rank. debias, denoise and DDA are per-query z-scores, in standard deviations over the training set.'));
    box.appendChild(el('p', null, 'Rank: the position among all training examples (1 = most helpful); ranks within the top ' + data.k + ' are in bold blue. A yellow bar marks a known positive (e.g. a training example that planted the answer).'));
    var hasTokens = data.queries.some(function (q) { return q.tokens || q.answerTokens || q.views.some(function (v) { return v.rowTokens; }); }) || data.train.some(function (t) { return t.tokens; });
    if (hasTokens) box.appendChild(el('p', null, 'Token shading: per-token attribution, blue where a token helps the test output and red where it works against it, relative to the largest weight in that text.'));
    return box;
  }

  // ---- skeleton
  root.textContent = '';
  var head = el('div', 'tdx-head');
  head.appendChild(el('h1', 'tdx-title', data.title));
  if (data.subtitle) head.appendChild(el('div', 'tdx-meta', data.subtitle));
  var notes = el('div', 'tdx-notes');
  data.notes.forEach(function (n) { notes.appendChild(el('p', null, n)); });
  head.appendChild(notes);
  root.appendChild(head);
  var main = el('div', 'tdx-main');
  var side = el('div', 'tdx-side');
  var filters = el('div', 'tdx-filters');
  var search = el('input', 'tdx-search');
  search.type = 'search';
  search.placeholder = 'Search prompts, answers, labels...';
  filters.appendChild(search);
  function selectOf(cls, all, values) {
    var s = el('select', cls);
    s.appendChild(new Option(all, ''));
    values.forEach(function (v) { s.appendChild(new Option(v, v)); });
    return s;
  }
  var labelSel = selectOf('tdx-label-filter', 'all labels', data.labels);
  var groupSel = selectOf('tdx-group-filter', 'all groups', data.groups);
  if (data.labels.length > 0) filters.appendChild(labelSel);
  if (data.groups.length > 1) filters.appendChild(groupSel);
  side.appendChild(filters);
  var count = el('div', 'tdx-count');
  side.appendChild(count);
  var list = el('div', 'tdx-list');
  var spacer = el('div', 'tdx-spacer');
  list.appendChild(spacer);
  side.appendChild(list);
  side.appendChild(explanation());
  main.appendChild(side);
  var detail = el('div', 'tdx-detail');
  main.appendChild(detail);
  root.appendChild(main);

  var haystack = data.queries.map(function (q) { return (q.prompt + '\\n' + q.answer + '\\n' + q.label + '\\n' + q.group).toLowerCase(); });

  // ---- query list: only the rows in view (plus a margin) exist in the DOM
  function renderList() {
    spacer.style.height = state.filtered.length * ROW_H + 'px';
    var h = list.clientHeight || 640;
    var first = Math.max(0, Math.floor(list.scrollTop / ROW_H) - 5);
    var last = Math.min(state.filtered.length, Math.ceil((list.scrollTop + h) / ROW_H) + 5);
    spacer.textContent = '';
    for (var i = first; i < last; i++) {
      var qi = state.filtered[i], q = data.queries[qi];
      var item = el('div', 'tdx-item' + (qi === state.selected ? ' tdx-selected' : ''));
      item.style.top = i * ROW_H + 'px';
      item.setAttribute('data-query', String(qi));
      item.appendChild(el('div', 'tdx-p', q.prompt));
      // The label goes with the answer: long prompts are cut off at the end.
      var a = el('div', 'tdx-a');
      if (q.label) a.appendChild(el('span', 'tdx-badge tdx-label', q.label));
      a.appendChild(document.createTextNode(q.answer));
      item.appendChild(a);
      item.title = q.prompt + ' \\u2192 ' + q.answer;
      spacer.appendChild(item);
    }
  }
  var pending = false;
  list.addEventListener('scroll', function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; renderList(); });
  });
  spacer.addEventListener('click', function (ev) {
    var t = ev.target;
    while (t && t !== spacer && !t.hasAttribute('data-query')) t = t.parentNode;
    if (t && t !== spacer) select(Number(t.getAttribute('data-query')));
  });

  function applyFilter() {
    var term = search.value.trim().toLowerCase(), lab = labelSel.value, grp = groupSel.value;
    state.filtered = [];
    for (var i = 0; i < data.queries.length; i++) {
      var q = data.queries[i];
      if (lab && q.label !== lab) continue;
      if (grp && q.group !== grp) continue;
      if (term && haystack[i].indexOf(term) < 0) continue;
      state.filtered.push(i);
    }
    count.textContent = state.filtered.length + ' of ' + data.queries.length + ' queries';
    list.scrollTop = 0;
    renderList();
    if (state.filtered.length > 0 && state.filtered.indexOf(state.selected) < 0) select(state.filtered[0]);
  }
  search.addEventListener('input', applyFilter);
  labelSel.addEventListener('change', applyFilter);
  groupSel.addEventListener('change', applyFilter);

  // ---- the selected query
  function viewOf(q) {
    for (var i = 0; i < q.views.length; i++) if (q.views[i].view === state.view) return q.views[i];
    return q.views[0];
  }
  function select(qi) {
    state.selected = qi;
    state.shown = ROWS_STEP;
    renderList();
    renderDetail();
  }
  function renderDetail() {
    detail.textContent = '';
    var q = data.queries[state.selected];
    if (!q) { detail.appendChild(el('div', 'tdx-empty', 'No query selected.')); return; }
    var h = el('h2', 'tdx-prompt');
    h.appendChild(tokensNode(q.prompt, q.tokens, 'tdx-prompt-text'));
    detail.appendChild(h);
    var ans = el('div', 'tdx-answer');
    ans.appendChild(el('strong', null, 'Answer: '));
    ans.appendChild(tokensNode(q.answer, q.answerTokens, 'tdx-answer-text'));
    if (q.label) ans.appendChild(el('span', 'tdx-badge', q.label));
    detail.appendChild(ans);
    detail.appendChild(el('div', 'tdx-meta', q.group + ' \\u00b7 ' + q.nPositives + ' known positive' + (q.nPositives === 1 ? '' : 's') + ' \\u00b7 query ' + state.selected));
    var v = viewOf(q);
    if (!v) { detail.appendChild(el('div', 'tdx-empty', 'No scores for this query.')); return; }
    if (q.views.length > 1) {
      var vb = el('div', 'tdx-views');
      vb.appendChild(el('span', 'tdx-meta', 'Setting: '));
      q.views.forEach(function (qv) {
        var b = el('button', qv.view === v.view ? 'tdx-on' : '', qv.view);
        b.setAttribute('data-view', qv.view);
        b.addEventListener('click', function () { state.view = qv.view; state.shown = ROWS_STEP; renderDetail(); });
        vb.appendChild(b);
      });
      detail.appendChild(vb);
    }
    renderTable(v);
    renderPositiveRanks(q, v);
    renderAgreement(v);
  }

  function renderTable(v) {
    var sc = Math.min(state.sortCol, v.cols.length - 1);
    var order = v.rows.map(function (_, i) { return i; });
    var rk = v.cols[sc] ? v.cols[sc].rank : null;
    order.sort(function (a, b) {
      var ra = rk && rk[a] !== null ? rk[a] : Infinity, rb = rk && rk[b] !== null ? rk[b] : Infinity;
      return ra - rb || v.local[a] - v.local[b];
    });
    var maxAbs = v.cols.map(function (c) { var m = 0; c.score.forEach(function (s) { if (s !== null) m = Math.max(m, Math.abs(s)); }); return m; });
    var t = el('table', 'tdx-table');
    var hr = el('tr');
    hr.appendChild(el('th', 'tdx-text', '#'));
    hr.appendChild(el('th', 'tdx-text', 'training example'));
    v.cols.forEach(function (c, ci) {
      var th = el('th', ci === sc ? 'tdx-sorted' : '', c.method);
      th.title = 'sort by ' + c.method + ' (score, then rank among all training examples)';
      th.addEventListener('click', function () { state.sortCol = ci; renderDetail(); });
      hr.appendChild(th);
    });
    var thead = el('thead');
    thead.appendChild(hr);
    t.appendChild(thead);
    var tb = el('tbody');
    order.slice(0, state.shown).forEach(function (r, pos) {
      var tr = el('tr', v.positive[r] ? 'tdx-posrow' : '');
      tr.setAttribute('data-train', String(v.local[r]));
      tr.appendChild(el('td', 'tdx-text', String(pos + 1)));
      var td = el('td', 'tdx-text tdx-train');
      var ex = data.train[v.rows[r]];
      var ta = v.rowTokens && v.rowTokens[r] ? v.rowTokens[r] : ex.tokens;
      td.appendChild(tokensNode(ex.text, ta, 'tdx-train-text'));
      td.appendChild(el('span', 'tdx-id', '#' + v.local[r]));
      if (v.positive[r]) td.appendChild(el('span', 'tdx-badge tdx-pos', 'known positive'));
      tr.appendChild(td);
      v.cols.forEach(function (c, ci) {
        var s = c.score[r], rank = c.rank[r];
        var cell = el('td', 'tdx-num' + (rank !== null && rank <= data.k ? ' tdx-intop' : ''), fmt(s));
        cell.style.background = tint(s, maxAbs[ci]);
        cell.appendChild(el('span', 'tdx-rank', rank === null ? 'beyond stored top ' + data.k : 'rank ' + rank));
        tr.appendChild(cell);
      });
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    detail.appendChild(t);
    if (order.length > state.shown) {
      var more = el('button', 'tdx-more', 'show ' + Math.min(ROWS_STEP, order.length - state.shown) + ' more (' + (order.length - state.shown) + ' not shown)');
      more.addEventListener('click', function () { state.shown += ROWS_STEP; renderDetail(); });
      detail.appendChild(more);
    }
  }

  // One dot per known positive and method at its rank: good methods put the dots on the left.
  function renderPositiveRanks(q, v) {
    var xs = [], ys = [], ids = [];
    v.cols.forEach(function (c) {
      v.positive.forEach(function (p, r) {
        if (p && c.rank[r] !== null) { xs.push(c.rank[r]); ys.push(c.method); ids.push('#' + v.local[r]); }
      });
    });
    if (xs.length === 0 || typeof Plotly === 'undefined') return;
    var shown = v.positive.filter(function (p) { return p; }).length;
    detail.appendChild(el('h3', null, 'Where the known positives rank' + (shown < q.nPositives ? ' (the ' + shown + ' best-ranked of ' + q.nPositives + ')' : '')));
    var div = el('div', 'tdx-plot tdx-posplot');
    div.style.height = Math.max(180, 60 + 28 * v.cols.length) + 'px';
    detail.appendChild(div);
    Plotly.newPlot(div, [{ type: 'scatter', mode: 'markers', x: xs, y: ys, text: ids,
      marker: { color: '#e0b400', size: 9, opacity: 0.8, line: { color: '#7a6000', width: 1 } },
      hovertemplate: '%{y}: training example %{text} at rank %{x}<extra></extra>' }],
      { margin: { l: 80, r: 10, t: 10, b: 44 }, xaxis: { type: 'log', title: { text: 'rank among all training examples (1 = most helpful; log scale)' } },
        yaxis: { autorange: 'reversed' }, shapes: [{ type: 'line', x0: data.k + 0.5, x1: data.k + 0.5, yref: 'paper', y0: 0, y1: 1, line: { color: '#2e6fd0', dash: 'dot' } }] },
      { displaylogo: false, responsive: true });
  }

  function meanOffDiagonal(m) {
    var s = 0, n = 0;
    m.forEach(function (row, i) { row.forEach(function (x, j) { if (i < j && x !== null) { s += x; n++; } }); });
    return n ? s / n : null;
  }
  function renderAgreement(v) {
    if (v.cols.length < 2) return;
    detail.appendChild(el('h3', null, 'How much the methods agree on this query'));
    var rho = meanOffDiagonal(v.spearman), ov = meanOffDiagonal(v.overlap);
    detail.appendChild(el('p', 'tdx-agree-summary',
      'Mean Spearman rank correlation over the ' + v.rows.length + ' rows shown: ' + fmt(rho) +
      '; mean share of one method\\u2019s top ' + data.k + ' also in another\\u2019s: ' + (ov === null ? '\\u2014' : Math.round(100 * ov) + '%') + '.'));
    var names = v.cols.map(function (c) { return c.method; });
    var box = el('div', 'tdx-agree');
    var a = el('div', 'tdx-plot'), b = el('div', 'tdx-plot');
    box.appendChild(a);
    box.appendChild(b);
    detail.appendChild(box);
    if (typeof Plotly === 'undefined') {
      a.style.height = 'auto';
      a.textContent = 'plotly.js is not loaded on this page, so the agreement heatmaps are not drawn.';
      return;
    }
    var scale = [[0, '#c0392b'], [0.5, '#ffffff'], [1, '#2e6fd0']];
    function heat(div, z, title, zmin) {
      Plotly.newPlot(div, [{ type: 'heatmap', z: z, x: names, y: names, zmin: zmin, zmax: 1, colorscale: zmin < 0 ? scale : [[0, '#ffffff'], [1, '#2e6fd0']], texttemplate: '%{z:.2f}', hoverongaps: false }],
        { title: { text: title, font: { size: 13 } }, margin: { l: 80, r: 10, t: 36, b: 70 }, yaxis: { autorange: 'reversed' } },
        { displaylogo: false, responsive: true });
    }
    heat(a, v.spearman, 'Spearman rank correlation (rows shown)', -1);
    heat(b, v.overlap, 'Top-' + data.k + ' overlap (row method in column method)', 0);
  }

  applyFilter();
  if (state.filtered.length === 0) renderDetail();
  root.setAttribute('data-ready', '1');
})`;
