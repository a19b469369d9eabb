/**
 * The canary's part of the router's status page (router/admin/status-page.ts
 * inserts it): each progression with its timeline, and the per-version
 * comparison side by side per window, with small inline SVG charts over the
 * history. Plain DOM and SVG drawn from `/status.json`: no external script,
 * style or font.
 */

/** Styles of the section. */
export const CANARY_SECTION_CSS = `
  .canary { border: 1px solid #e3e6ec; border-radius: 6px; padding: .6rem .9rem; margin: .4rem 0 1rem; max-width: 64rem; }
  .phase { font-weight: 600; padding: .05rem .45rem; border-radius: 4px; background: #eef2ff; }
  .phase.rolled_back { background: #fde8e7; color: #b42318; } .phase.completed { background: #e7f6ec; color: #17803d; }
  .phase.paused { background: #fff4e5; color: #b54708; }
  .steps span { display: inline-block; padding: 0 .4rem; margin-right: .2rem; border: 1px solid #cfd5e1; border-radius: 3px; }
  .steps span.done { background: #dbe5ff; } .steps span.now { background: #4f7cff; color: #fff; border-color: #4f7cff; }
  ol.timeline { margin: .3rem 0 0; padding-left: 1.2rem; font-size: 13px; }
  ol.timeline li.rollback, ol.timeline li.pause { color: #b42318; }
  table.compare td.canary-col { background: #f7f9ff; }
  .ratio.bad { color: #b42318; font-weight: 600; }
  .charts { display: flex; gap: 1rem; flex-wrap: wrap; margin: .4rem 0 1rem; }
  .chart { border: 1px solid #e3e6ec; border-radius: 4px; }
  .chart text { font: 11px system-ui, sans-serif; fill: #667; }
  .legend span { display: inline-block; width: .8rem; height: .25rem; vertical-align: middle; margin: 0 .25rem 0 .6rem; }
`;

/** Markup of the section (filled in by the script). */
export const CANARY_SECTION_HTML = `
<h2>Canary</h2>
<div id="canaries" class="muted">no model has a canary section</div>
<h2>Version comparison</h2>
<div id="comparison" class="muted">no requests yet</div>
`;

/**
 * The section's script: defines `renderCanary(status)`, which the page's
 * refresh calls with each `/status.json`.
 */
export const CANARY_SECTION_SCRIPT = `
const CHART_COLORS = ['#4f7cff', '#f97316', '#14b8a6', '#a855f7', '#e11d48', '#84cc16'];
const fmtMs = (s) => (s === null || s === undefined ? '–' : (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms');
const fmtNum = (x, d) => (x === null || x === undefined ? '–' : Number(x).toFixed(d));
const fmtCost = (x) => (x === null || x === undefined ? '–' : Number(x).toPrecision(3));
const COMPARE_ROWS = [
  ['requests', 'requests', (x) => fmtNum(x, 0)],
  ['errorRate', 'endpoint-fault error rate', (x) => (x === null || x === undefined ? '–' : (100 * x).toFixed(2) + ' %')],
  ['ttftP50', 'TTFT p50', fmtMs],
  ['ttftP90', 'TTFT p90', fmtMs],
  ['ttftP99', 'TTFT p99', fmtMs],
  ['itlP90', 'inter-token p90', fmtMs],
  ['outputTokensPerSecond', 'output tokens/s', (x) => fmtNum(x, 1)],
  ['costPer1kRequests', 'cost per 1K requests', fmtCost],
];
const CHARTS = [
  ['ttftP90', 'TTFT p90 (ms)', (x) => x * 1000],
  ['errorRate', 'error rate (%)', (x) => x * 100],
  ['requests', 'requests', (x) => x],
];

/** One small line chart: a polyline per version over the series' points. */
function chartSvg(model, key, title, scale, versions) {
  const W = 300, H = 110, L = 36, T = 16, B = 16, R = 8;
  let max = 0;
  let n = 0;
  for (const v of versions) {
    n = Math.max(n, v.series.length);
    for (const p of v.series) if (p[key] !== null && p[key] !== undefined) max = Math.max(max, scale(p[key]));
  }
  if (max <= 0) max = 1;
  const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - R)) / (n - 1));
  const y = (val) => T + (H - T - B) * (1 - val / max);
  let out = '<svg class="chart" data-chart="' + esc(key) + '" data-model="' + esc(model) + '" width="' + W + '" height="' + H +
    '" viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="' + esc(title) + '"><text x="' + L + '" y="11">' + esc(title) + '</text>' +
    '<text x="2" y="' + (T + 8) + '">' + esc(Number(max.toPrecision(3))) + '</text><text x="2" y="' + (H - B) + '">0</text>' +
    '<line x1="' + L + '" y1="' + (H - B) + '" x2="' + (W - R) + '" y2="' + (H - B) + '" stroke="#cfd5e1"/>' +
    '<text x="' + L + '" y="' + (H - 3) + '">' + esc(Math.round((window.historyMs || 0) / 60000)) + ' min ago</text><text x="' + (W - R - 22) + '" y="' + (H - 3) + '">now</text>';
  versions.forEach((v, vi) => {
    const pts = [];
    v.series.forEach((p, i) => {
      if (p[key] !== null && p[key] !== undefined && p.requests > 0) pts.push(x(i).toFixed(1) + ',' + y(scale(p[key])).toFixed(1));
    });
    if (pts.length === 0) return;
    const color = CHART_COLORS[vi % CHART_COLORS.length];
    out += '<polyline data-version="' + esc(v.name) + '" fill="none" stroke="' + color + '" stroke-width="1.6" points="' + pts.join(' ') + '"/>';
    if (pts.length === 1) {
      const [cx, cy] = pts[0].split(',');
      out += '<circle cx="' + cx + '" cy="' + cy + '" r="2" fill="' + color + '"/>';
    }
  });
  return out + '</svg>';
}

function renderCanary(s) {
  const canaries = (s.canary && s.canary.models) || [];
  const byModel = {};
  for (const c of canaries) byModel[c.model] = c;
  const host = document.getElementById('canaries');
  if (canaries.length === 0) {
    host.className = 'muted';
    host.textContent = 'no model has a canary section';
  } else {
    host.className = '';
    host.innerHTML = canaries.map((c) => {
      const steps = (c.steps || []).map((st, i) =>
        '<span class="' + (i < c.step || c.phase === 'completed' ? 'done' : i === c.step && c.phase !== 'rolled_back' ? 'now' : '') + '">' + esc(st) + ' %</span>').join('');
      const sharing = c.sharing === 'local' ? 'judged by this replica alone (no Redis)' :
        c.sharing === 'redis' ? 'shared through Redis; this replica ' + (c.judge ? 'judges' : 'follows') : 'paused: Redis unreachable';
      const next = c.nextJudgementInMs === null || c.nextJudgementInMs === undefined ? '' : ' · next judgement in ' + (c.nextJudgementInMs / 1000).toFixed(1) + ' s';
      const weights = Object.entries(c.weights || {}).map(([v, w]) => esc(v) + ' ' + esc(Number(w.toFixed(2)))).join(', ');
      const file = Object.entries(c.fileWeights || {}).map(([v, w]) => esc(v) + ' ' + esc(w)).join(', ');
      const timeline = (c.timeline || []).map((e) =>
        '<li class="' + esc(e.decision) + '" data-decision="' + esc(e.decision) + '">' + esc(new Date(e.at).toLocaleTimeString()) + ' · <b>' + esc(e.decision) +
        '</b> → ' + esc(e.share) + ' % · ' + esc(e.reason) + (e.count > 1 ? ' ×' + esc(e.count) : '') + '<div class="muted">' + esc(e.detail || '') + '</div></li>').join('');
      return '<div class="canary" data-canary="' + esc(c.model) + '"><div><b>' + esc(c.model) + '</b>: canary <b>' + esc(c.version) + '</b> vs baseline <b>' +
        esc(c.baseline) + '</b> · <span class="phase ' + esc(c.phase) + '">' + esc(c.phase) + '</span> · canary share <b class="share">' + esc(c.share) +
        ' %</b></div><div class="steps">steps ' + steps + '</div><div class="muted">weights in force ' + weights + ' (file: ' + file + ') · ' + esc(sharing) + esc(next) +
        '</div><div class="reason">' + esc(c.reason || '') + '</div><ol class="timeline">' + timeline + '</ol></div>';
    }).join('');
  }
  const a = s.analysis;
  const cmp = document.getElementById('comparison');
  if (!a || !a.models || a.models.every((m) => m.versions.length === 0)) return;
  window.historyMs = a.historyMs;
  cmp.className = '';
  cmp.innerHTML = a.models.filter((m) => m.versions.length > 0).map((m) => {
    const c = byModel[m.name];
    const versions = m.versions.slice().sort((x, y) => (x.name < y.name ? -1 : 1));
    const tables = a.windows.map((w) => {
      const head = '<tr><th>' + esc(w.label) + ' window</th>' + versions.map((v) =>
        '<th>' + esc(v.name) + (c && v.name === c.version ? ' (canary)' : c && v.name === c.baseline ? ' (baseline)' : '') + '</th>').join('') +
        (c ? '<th>canary / baseline</th>' : '') + '</tr>';
      const rows = COMPARE_ROWS.map(([key, label, fmt]) => {
        let ratio = '';
        if (c) {
          const cv = versions.find((v) => v.name === c.version);
          const bv = versions.find((v) => v.name === c.baseline);
          const x = cv && cv.windows[w.label] ? cv.windows[w.label][key] : null;
          const y = bv && bv.windows[w.label] ? bv.windows[w.label][key] : null;
          const limit = key === 'ttftP90' ? c.maxTtftP90Ratio : key === 'itlP90' ? c.maxItlP90Ratio : undefined;
          const r = x !== null && y !== null && x !== undefined && y !== undefined && y > 0 && key !== 'requests' && key !== 'errorRate' ? x / y : null;
          ratio = '<td class="num ratio' + (r !== null && limit !== undefined && r > limit ? ' bad' : '') + '">' + (r === null ? '' : r.toFixed(2) + '×') + '</td>';
        }
        return '<tr data-metric="' + esc(key) + '"><th>' + esc(label) + '</th>' + versions.map((v) =>
          '<td class="num' + (c && v.name === c.version ? ' canary-col' : '') + '" data-version="' + esc(v.name) + '">' +
          fmt(v.windows[w.label] ? v.windows[w.label][key] : null) + '</td>').join('') + ratio + '</tr>';
      }).join('');
      return '<table class="compare" data-model="' + esc(m.name) + '" data-window="' + esc(w.label) + '"><thead>' + head + '</thead><tbody>' + rows + '</tbody></table>';
    }).join('<div style="height:.6rem"></div>');
    const legend = '<div class="legend muted">' + versions.map((v, i) =>
      '<span style="background:' + CHART_COLORS[i % CHART_COLORS.length] + '"></span>' + esc(v.name)).join('') + ' · last ' + esc(Math.round(a.historyMs / 60000)) + ' minutes</div>';
    const charts = '<div class="charts">' + CHARTS.map(([key, title, scale]) => chartSvg(m.name, key, title, scale, versions)).join('') + '</div>';
    return '<h3>' + esc(m.name) + '</h3>' + tables + legend + charts;
  }).join('');
}
`;
