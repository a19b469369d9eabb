/** Benchmark statistics and reports, from known traffic. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lineChart, toHtml } from '../bench/html-report.js';
import { createProgressBar, progressLine } from '../bench/progress.js';
import { type BenchReport, createReport, markdownTable, runsTable, toMarkdown } from '../bench/report.js';
import { createStatsCollector, type RequestRecord } from '../bench/stats.js';

const close = (actual: number, expected: number, what: string) =>
  assert.ok(
    Math.abs(actual - expected) <= Math.max(0.002 * Math.abs(expected), 0.002),
    `${what}: ${actual} ≠ ${expected}`,
  );

function record(i: number, over: Partial<RequestRecord> = {}): RequestRecord {
  // Request i: starts at i*100 ms, first chunk after 10+i ms, then 9 gaps of 5 ms (10 chunks).
  const ttft = 10 + i;
  return {
    target: 'router',
    status: 'OK',
    version: i % 4 === 0 ? 'v2' : 'v1',
    endpoint: `127.0.0.1:${7000 + (i % 2)}`,
    startMs: i * 100,
    ttftMs: ttft,
    e2eMs: ttft + 45,
    chunks: 10,
    outputTokens: 10,
    promptTokens: 100,
    cachedTokens: i % 2 === 0 ? 50 : 0,
    gapsMs: Array.from({ length: 9 }, () => 5),
    ...over,
  };
}

function knownStats() {
  const c = createStatsCollector();
  for (let i = 0; i < 100; i++) c.add(record(i));
  c.add(record(100, { status: 'UNAVAILABLE', ttftMs: undefined, chunks: 0, outputTokens: 0, gapsMs: [] }));
  c.add(record(101, { status: 'UNAVAILABLE', ttftMs: undefined, chunks: 0, outputTokens: 0, gapsMs: [] }));
  c.add(
    record(102, { status: 'RESOURCE_EXHAUSTED', ttftMs: undefined, chunks: 0, outputTokens: 0, gapsMs: [] }),
  );
  return c.summarize();
}

describe('bench stats and reports', () => {
  it('computes latency percentiles, throughput, errors, versions and cache hits from known traffic', () => {
    const s = knownStats();
    assert.equal(s.requests, 103);
    assert.equal(s.ok, 100);
    assert.deepEqual(s.errors, { UNAVAILABLE: 2, RESOURCE_EXHAUSTED: 1 });
    // TTFTs are 10..109 ms: p50 = 59, p90 = 99, p99 = 108 (nearest rank).
    close(s.ttft.p50, 59, 'ttft p50');
    close(s.ttft.p90, 99, 'ttft p90');
    close(s.ttft.p99, 108, 'ttft p99');
    close(s.ttft.mean, 59.5, 'ttft mean');
    close(s.itl.p50, 5, 'itl p50');
    close(s.itl.p99, 5, 'itl p99');
    assert.equal(s.itl.count, 900);
    close(s.tpot.p50, 5, 'tpot');
    close(s.e2e.p50, 104, 'e2e p50');
    // Window: first start 0 to last end (10,200 + 10 + 100 + 45 for the failures' record 102 = its e2e).
    const lastEnd = Math.max(99 * 100 + 109 + 45, 102 * 100 + 10 + 102 + 45);
    close(s.durationS, lastEnd / 1000, 'window');
    close(s.requestsPerS, 100 / (lastEnd / 1000), 'req/s');
    close(s.outputTokensPerS, 1000 / (lastEnd / 1000), 'tok/s');
    assert.equal(s.outputTokens, 1000);
    assert.equal(s.chunks, 1000);
    close(s.cacheHitRate, 0.25, 'cache hit rate');
    assert.equal(s.versions.v2?.requests, 26);
    assert.equal(s.versions.v2?.ok, 25);
    assert.equal(s.versions.v1?.requests, 77);
    close(s.versions.v1?.share ?? 0, 77 / 103, 'v1 share');
    assert.equal(s.ttftCdf.at(-1)?.[1], 1);
    close(s.ttftCdf.at(-1)?.[0] ?? 0, 109, 'cdf max');
    for (let i = 1; i < s.ttftCdf.length; i++) {
      assert.ok((s.ttftCdf[i]?.[0] ?? 0) >= (s.ttftCdf[i - 1]?.[0] ?? 0), 'the CDF is monotonic');
    }
  });

  function sampleReport(): BenchReport {
    const report = createReport('test <report>', 'llmmesh bench --x', new Date(0));
    const stats = knownStats();
    for (const [rate, series] of [
      [1, 'round-robin'],
      [2, 'round-robin'],
      [1, 'default'],
      [2, 'default'],
    ] as const) {
      report.runs.push({
        scenario: 'routing',
        series,
        target: { name: series, kind: 'inference', address: '127.0.0.1:1' },
        mode: { kind: 'open', ratePerS: rate },
        workload: 'shared-prefix',
        stats,
        extra: { 'engine prefix hit %': 12.5 },
      });
    }
    report.notes.push('A note with <b>markup</b> & "quotes".');
    report.tables.push({ title: 'Extra', columns: ['a', 'b'], rows: [['x|y', 1]] });
    return report;
  }

  it('renders a self-contained HTML report: inline SVG plots, no external URL, no script', () => {
    const html = toHtml(sampleReport());
    assert.match(html, /^<!doctype html>/);
    assert.doesNotMatch(html, /https?:\/\//i, 'no absolute URL');
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|url\(/i, 'nothing loaded from elsewhere');
    assert.doesNotMatch(html, /\s(src|href)=/i);
    assert.equal((html.match(/<svg /g) ?? []).length, 3, 'TTFT CDF, throughput and TTFT p90 vs rate');
    assert.match(html, /TTFT CDF — routing/);
    assert.match(html, /Output throughput — routing/);
    assert.match(html, /TTFT p90 — routing/);
    assert.match(html, /&lt;b&gt;markup&lt;\/b&gt; &amp; &quot;quotes&quot;/, 'text is escaped');
    assert.doesNotMatch(html, /<b>markup/);
  });

  it('renders Markdown tables with every run and escaped cells', () => {
    const report = sampleReport();
    const md = toMarkdown(report);
    assert.match(md, /^## test <report>/);
    assert.match(md, /\| x\\\|y \| 1 \|/);
    const table = runsTable(report.runs);
    assert.equal(table.rows.length, 4);
    assert.ok(table.columns.includes('engine prefix hit %'));
    const lines = markdownTable(table).split('\n');
    assert.equal(lines.length, 6);
    assert.match(
      lines[2] ?? '',
      /\| routing \| round-robin \| rate 1\/s \| 100 \| 2 UNAVAILABLE, 1 RESOURCE_EXHAUSTED \|/,
    );
  });

  it('draws charts with log axes and copes with no data', () => {
    const svg = lineChart({
      title: 'cdf',
      xLabel: 'ms',
      yLabel: '%',
      logX: true,
      series: [
        {
          name: 'a',
          points: [
            [1, 0],
            [10, 50],
            [1000, 100],
          ],
        },
      ],
    });
    assert.match(svg, /\(log\)/);
    assert.match(svg, /<path d="M/);
    assert.match(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [] }), /no data/);
  });

  it('formats a progress line', () => {
    const line = progressLine('router c=4', {
      sent: 10,
      done: 5,
      inFlight: 5,
      errors: 1,
      elapsedMs: 1500,
      fraction: 0.5,
      warmingUp: false,
    });
    assert.match(line, /^router c=4 \[#{12}\.{12}\] 50% 5\/10 done, 5 in flight, 1 errors, 1\.5 s$/);
  });

  it('draws and clears the progress line on a terminal that reports 0 columns', () => {
    let written = '';
    const tty = {
      isTTY: true,
      columns: 0,
      write(s: string) {
        written += s;
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    const bar = createProgressBar(tty);
    const p = { sent: 2, done: 1, inFlight: 1, errors: 0, elapsedMs: 100, fraction: 0.5, warmingUp: false };
    bar.update('router c=1', p);
    bar.done(); // used to throw "Invalid count value: -1" and lose the report
    assert.match(written, /^\rrouter c=1 \[#+\.+\] 50% 1\/2 done/);
    // Cleared to the start of the line, so what is printed next starts on a clean line.
    assert.ok(written.endsWith(`\r${' '.repeat(99)}\r`), JSON.stringify(written.slice(-8)));
  });
});
