/**
 * The router's status page: one self-contained HTML document (no external
 * assets) that polls `/status.json` and shows models, versions with
 * configured vs observed split, and every endpoint with its load, readiness,
 * draining and breaker state; and the canary section (router/canary/status-section.ts):
 * progressions with their timeline, the per-version comparison and its charts.
 */
import { CANARY_SECTION_CSS, CANARY_SECTION_HTML, CANARY_SECTION_SCRIPT } from '../canary/status-section.js';

/** The HTML of the status page. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>llmmesh router</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
  .muted { color: #667; }
  table { border-collapse: collapse; min-width: 40rem; }
  th, td { text-align: left; padding: .25rem .7rem; border-bottom: 1px solid #e3e6ec; }
  th { background: #f4f6f9; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .ok { color: #17803d; } .bad { color: #b42318; } .warn { color: #b54708; }
  .bar { display: inline-block; height: .6rem; background: #4f7cff; vertical-align: middle; }
  .bar.obs { background: #14b8a6; }
  #error { color: #b42318; }
${CANARY_SECTION_CSS}</style>
</head>
<body>
<h1>llmmesh router</h1>
<div class="muted">listening on <span id="listen">…</span> · refreshed <span id="updated">never</span> · <a href="/status.json">status.json</a> · <a href="/metrics">metrics</a></div>
<div id="error"></div>
<h2>Models and versions</h2>
<table id="versions"><thead><tr><th>model</th><th>version</th><th>weight</th><th>configured</th><th>observed</th><th>ready endpoints</th><th>streams migrated</th></tr></thead><tbody></tbody></table>
${CANARY_SECTION_HTML}
<h2>Endpoints</h2>
<table id="endpoints"><thead><tr><th>endpoint</th><th>model / version</th><th>state</th><th>breaker</th><th>in flight</th><th>queued</th><th>engine running</th><th>engine waiting</th><th>KV cache</th></tr></thead><tbody></tbody></table>
<h2>Config</h2>
<div id="config" class="muted"></div>
<script>
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const pct = (x) => (x === undefined || x === null || Number.isNaN(x) ? '–' : (100 * x).toFixed(1) + ' %');
${CANARY_SECTION_SCRIPT}
const bar = (x, cls) => '<span class="bar ' + cls + '" style="width:' + Math.round(80 * (x || 0)) + 'px"></span> ' + pct(x);
async function refresh() {
  try {
    const res = await fetch('/status.json', { cache: 'no-store' });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    const s = await res.json();
    document.getElementById('listen').textContent = s.listen;
    const rows = [];
    for (const m of s.models) {
      for (const v of m.versions) {
        rows.push('<tr data-version="' + esc(m.name + '/' + v.name) + '"><td>' + esc(m.name) + '</td><td>' + esc(v.name) +
          '</td><td class="num">' + esc(Number(Number(v.weight).toFixed(2))) +
          (v.fileWeight !== undefined && v.fileWeight !== v.weight ? ' <span class="muted">(file ' + esc(v.fileWeight) + ')</span>' : '') + '</td><td>' + bar(v.configuredShare, '') + '</td><td>' +
          bar(v.observedShare, 'obs') + '</td><td class="num">' + esc(v.readyEndpoints) + ' / ' + esc(v.endpoints) + '</td><td class="num migrations">' +
          esc(v.migrations ?? 0) + '</td></tr>');
      }
    }
    document.querySelector('#versions tbody').innerHTML = rows.join('');
    document.querySelector('#endpoints tbody').innerHTML = s.endpoints.map((e) => {
      const state = e.ready ? '<span class="ok">ready</span>' : e.draining ? '<span class="warn">draining</span>' :
        '<span class="bad">not ready</span> <span class="muted">' + esc(e.reason || '') + '</span>';
      const breaker = e.breaker || 'closed';
      const cls = breaker === 'open' ? 'bad' : breaker === 'half-open' ? 'warn' : 'ok';
      return '<tr data-endpoint="' + esc(e.address) + '"><td>' + esc(e.address) + '</td><td>' + esc(e.model + ' / ' + e.version) +
        '</td><td>' + state + '</td><td class="breaker ' + cls + '">' + esc(breaker) + '</td><td class="num">' + esc(e.inFlight) +
        '</td><td class="num">' + esc(e.queued) + '</td><td class="num">' + esc(e.engineRunning) + '</td><td class="num">' +
        esc(e.engineWaiting) + '</td><td class="num">' + pct(e.kvCacheUsage) + '</td></tr>';
    }).join('');
    const c = s.config || {};
    document.getElementById('config').textContent = 'reloads ' + (c.reloads ?? 0) + ', rejected ' + (c.rejected ?? 0) +
      (c.lastReloadAt ? ' · last reload ' + new Date(c.lastReloadAt).toLocaleTimeString() : '') +
      (c.lastRejection ? ' · last rejection (' + new Date(c.lastRejection.at).toLocaleTimeString() + '): ' + c.lastRejection.error : '');
    renderCanary(s);
    document.getElementById('updated').textContent = new Date().toLocaleTimeString();
    document.getElementById('error').textContent = '';
  } catch (err) {
    document.getElementById('error').textContent = 'cannot read /status.json: ' + err.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
