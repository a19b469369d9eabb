/**
 * The offline HTML report: one self-contained page (inline CSS and SVG, no
 * script, no external URL) with the report's tables and plots: the TTFT CDF
 * of every scenario, and throughput and TTFT p90 against the request rate
 * (or the concurrency, for closed-loop runs).
 */
import {
  type BenchReport,
  errorMessagesTable,
  fmt,
  modeLabel,
  type ReportTable,
  type RunReport,
  runsTable,
} from './report.js';

/** One line of a chart. */
export interface ChartSeries {
  name: string;
  points: Array<[number, number]>;
}

/** Options of {@link lineChart}. */
export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  logX?: boolean;
  width?: number;
  height?: number;
}

const COLORS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
];

/** Escapes text for HTML and SVG. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const step0 = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? step0;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step)
    ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** e;
      if (t >= min * 0.999 && t <= max * 1.001) ticks.push(t);
    }
  }
  return ticks;
}

/** An inline SVG line chart (no external references). */
export function lineChart(options: ChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 360;
  const pad = { left: 64, right: 16, top: 32, bottom: 48 };
  const legendH = 18 * Math.ceil(options.series.length / 3);
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom - legendH;
  const all = options.series
    .flatMap((s) => s.points)
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const parts: string[] = [
    `<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(options.title)}">`,
    `<text x="${width / 2}" y="18" text-anchor="middle" class="title">${escapeHtml(options.title)}</text>`,
  ];
  if (all.length === 0) {
    parts.push(`<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text></svg>`);
    return parts.join('');
  }
  const logX = options.logX === true && all.every(([x]) => x > 0);
  let xMin = Math.min(...all.map(([x]) => x));
  let xMax = Math.max(...all.map(([x]) => x));
  if (xMax === xMin) {
    xMin = logX ? xMin / 2 : xMin - 1;
    xMax = logX ? xMax * 2 : xMax + 1;
  }
  const yMax = Math.max(...all.map(([, y]) => y)) * 1.05 || 1;
  const yMin = Math.min(0, ...all.map(([, y]) => y));
  const sx = (x: number) =>
    pad.left +
    (logX
      ? ((Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))) * plotW
      : ((x - xMin) / (xMax - xMin)) * plotW);
  const sy = (y: number) => pad.top + plotH - ((y - yMin) / (yMax - yMin)) * plotH;
  parts.push(`<rect x="${pad.left}" y="${pad.top}" width="${plotW}" height="${plotH}" class="frame"/>`);
  for (const t of logX ? logTicks(xMin, xMax) : niceTicks(xMin, xMax)) {
    const x = sx(t).toFixed(1);
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${pad.top}" y2="${pad.top + plotH}" class="grid"/>`,
      `<text x="${x}" y="${pad.top + plotH + 16}" text-anchor="middle">${fmt(t)}</text>`,
    );
  }
  for (const t of niceTicks(yMin, yMax)) {
    const y = sy(t).toFixed(1);
    parts.push(
      `<line x1="${pad.left}" x2="${pad.left + plotW}" y1="${y}" y2="${y}" class="grid"/>`,
      `<text x="${pad.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`,
    );
  }
  parts.push(
    `<text x="${pad.left + plotW / 2}" y="${pad.top + plotH + 36}" text-anchor="middle" class="axis">${escapeHtml(options.xLabel)}${logX ? ' (log)' : ''}</text>`,
    `<text transform="translate(14 ${pad.top + plotH / 2}) rotate(-90)" text-anchor="middle" class="axis">${escapeHtml(options.yLabel)}</text>`,
  );
  options.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logX || x > 0));
    if (pts.length > 0) {
      const d = pts
        .map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
        .join('');
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
      for (const [x, y] of pts.length <= 24 ? pts : []) {
        parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${color}"/>`);
      }
    }
    const lx = pad.left + (i % 3) * (plotW / 3);
    const ly = height - legendH + 4 + Math.floor(i / 3) * 18;
    parts.push(
      `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${color}"/>`,
      `<text x="${lx + 16}" y="${ly + 10}">${escapeHtml(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

function htmlTable(t: ReportTable): string {
  const head = t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const rows = t.rows
    .map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(String(c))}</td>`).join('')}</tr>`)
    .join('\n');
  const note = t.note ? `<p class="note">${escapeHtml(t.note)}</p>` : '';
  return `<h3>${escapeHtml(t.title)}</h3>\n<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>\n${rows}\n</tbody></table></div>${note}`;
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    out.set(k, [...(out.get(k) ?? []), it]);
  }
  return out;
}

/** Scenario family: the part before a trailing load label, so `routing` groups every rate of it. */
function family(run: RunReport): string {
  return run.scenario.replace(/\s+(c|rate)=\S+$/, '');
}

/** The charts of a report. */
export function reportCharts(report: BenchReport): string[] {
  const charts: string[] = [];
  for (const [scenario, runs] of groupBy(report.runs, (r) => r.scenario)) {
    const series = runs
      .filter((r) => r.stats.ttftCdf.length > 0)
      .map((r) => ({
        name:
          runs.length > 1 && new Set(runs.map((x) => x.series)).size < runs.length
            ? `${r.series} ${modeLabel(r.mode)}`
            : r.series,
        points: r.stats.ttftCdf.map(([ms, f]) => [ms, f * 100] as [number, number]),
      }));
    if (series.length === 0) continue;
    charts.push(
      lineChart({
        title: `TTFT CDF — ${scenario}`,
        xLabel: 'time to first token (ms)',
        yLabel: '% of requests',
        series,
        logX: true,
      }),
    );
  }
  for (const [fam, runs] of groupBy(report.runs, family)) {
    const open = runs.filter((r) => r.mode.kind === 'open');
    const sweep = open.length >= 2 ? open : runs.filter((r) => r.mode.kind === 'closed');
    const xs = new Set(sweep.map((r) => (r.mode.kind === 'open' ? r.mode.ratePerS : r.mode.concurrency)));
    if (xs.size < 2) continue;
    const isOpen = sweep[0]?.mode.kind === 'open';
    const x = (r: RunReport) => (r.mode.kind === 'open' ? r.mode.ratePerS : r.mode.concurrency);
    const bySeries = [...groupBy(sweep, (r) => r.series)].map(([name, rs]) => ({
      name,
      rs: [...rs].sort((a, b) => x(a) - x(b)),
    }));
    const xLabel = isOpen ? 'request rate (req/s)' : 'concurrency';
    charts.push(
      lineChart({
        title: `Output throughput — ${fam}`,
        xLabel,
        yLabel: 'output tokens/s',
        series: bySeries.map(({ name, rs }) => ({
          name,
          points: rs.map((r) => [x(r), r.stats.outputTokensPerS]),
        })),
        logX: !isOpen,
      }),
      lineChart({
        title: `TTFT p90 — ${fam}`,
        xLabel,
        yLabel: 'TTFT p90 (ms)',
        series: bySeries.map(({ name, rs }) => ({ name, points: rs.map((r) => [x(r), r.stats.ttft.p90]) })),
        logX: !isOpen,
      }),
    );
  }
  return charts;
}

/** The report as one self-contained HTML page. */
export function toHtml(report: BenchReport): string {
  const m = report.machine;
  const tables = [...report.tables, runsTable(report.runs), errorMessagesTable(report.runs)].filter(
    (t) => t.rows.length > 0,
  );
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(report.title)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; } h3 { font-size: 15px; }
table { border-collapse: collapse; font-size: 12px; } td, th { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
td:first-child, th:first-child, td:nth-child(2) { text-align: left; }
.scroll { overflow-x: auto; } .note { color: #555; font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { background: #fff; border: 1px solid #ddd; font-size: 11px; }
svg .title { font-size: 13px; font-weight: 600; } svg .axis { font-size: 12px; }
svg .frame { fill: none; stroke: #999; } svg .grid { stroke: #eee; }
code { background: #f4f4f4; padding: 1px 4px; }
</style>
</head>
<body>
<h1>${escapeHtml(report.title)}</h1>
<p>Measured ${escapeHtml(report.createdAt)} on ${m.cpus} × ${escapeHtml(m.cpuModel)}, ${m.memoryGiB} GiB, Node ${escapeHtml(m.node)}, ${escapeHtml(m.os)} (load average ${m.loadAverage} at start).</p>
<p>Command: <code>${escapeHtml(report.command)}</code></p>
${report.notes.map((n) => `<p>${escapeHtml(n)}</p>`).join('\n')}
<h2>Plots</h2>
<div class="charts">
${reportCharts(report).join('\n')}
</div>
<h2>Tables</h2>
${tables.map(htmlTable).join('\n')}
</body>
</html>
`;
}
