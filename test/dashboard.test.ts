/**
 * The Grafana dashboard loads (valid JSON with the fields Grafana needs) and
 * queries only metrics and labels the code exports.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Labels Prometheus adds when scraping, not the exporters. */
const SCRAPE_LABELS = new Set(['le', 'pod', 'instance', 'job', 'namespace', 'container']);

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.spec.ts')) out.push(p);
  }
  return out;
}

/** Metric name → label names, from every prom-client metric the code defines. */
function exportedMetrics(): Map<string, Set<string>> {
  const metrics = new Map<string, Set<string>>();
  for (const file of [...sources(join(ROOT, 'router')), ...sources(join(ROOT, 'sidecar'))]) {
    const text = readFileSync(file, 'utf8');
    const re = /name: '(llm_[a-z0-9_]+)',[\s\S]*?(?:labelNames: \[([^\]]*)\]|registers)/g;
    for (const m of text.matchAll(re)) {
      const labels = (m[2] ?? '').match(/'([a-z_]+)'/g)?.map((s) => s.slice(1, -1)) ?? [];
      metrics.set(m[1] ?? '', new Set(labels));
    }
  }
  return metrics;
}

interface Panel {
  title: string;
  type: string;
  gridPos: { x: number; y: number; w: number; h: number };
  /** Absent on `row` panels, which only group the panels below them. */
  targets: Array<{ expr: string; refId: string }>;
}

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/llmmesh-overview.json'), 'utf8')) as {
    uid: string;
    title: string;
    schemaVersion: number;
    panels: Panel[];
  };

  it('has what Grafana needs to load it', () => {
    assert.ok(dashboard.uid && dashboard.title && dashboard.schemaVersion >= 30);
    assert.ok(dashboard.panels.length >= 10);
    const ids = new Set<string>();
    for (const p of dashboard.panels) {
      assert.ok(p.title && p.type && p.gridPos, `panel ${JSON.stringify(p.title)}`);
      if (p.type === 'row') continue;
      assert.ok(p.targets.length > 0, `${p.title} has queries`);
      for (const t of p.targets) assert.ok(!ids.has(`${p.title}/${t.refId}`));
    }
  });

  it('shows the canary comparison: TTFT p50 and p99 split by version', () => {
    const ttft = dashboard.panels.find((p) => /time to first token/i.test(p.title));
    const exprs = ttft?.targets.map((t) => t.expr).join('\n') ?? '';
    assert.match(exprs, /histogram_quantile\(0\.5,.*by \(le, model_version\)/);
    assert.match(exprs, /histogram_quantile\(0\.99,.*by \(le, model_version\)/);
  });

  it('has a canary row comparing versions as the judge does, with the decisions and the cost', () => {
    const row = dashboard.panels.find((p) => p.type === 'row' && /canary/i.test(p.title));
    assert.ok(row, 'a canary row');
    const below = dashboard.panels.filter((p) => p.type !== 'row' && p.gridPos.y > row.gridPos.y);
    const exprs = below.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const metric of [
      'llm_canary_share',
      'llm_canary_decisions_total',
      'llm_version_ttft_seconds',
      'llm_version_itl_p90_seconds',
      'llm_version_error_rate',
      'llm_cost_total',
    ]) {
      assert.match(exprs, new RegExp(`${metric}\\b`), metric);
    }
    assert.match(exprs, /by \(model_version\) \(llm_version_ttft_seconds\{[^}]*quantile="0\.9"/);
  });

  it('queries only metrics and labels the code exports', () => {
    const metrics = exportedMetrics();
    assert.ok(metrics.size > 10, `found ${metrics.size} metrics in the code`);
    const problems: string[] = [];
    for (const p of dashboard.panels) {
      for (const { expr } of p.targets ?? []) {
        const names = [...expr.matchAll(/\b(llm_[a-z0-9_]+)/g)].map((m) =>
          (m[1] ?? '').replace(/_(bucket|sum|count)$/, ''),
        );
        const labels = [
          ...[...expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) =>
            (m[1] ?? '').split(',').map((s) => s.trim()),
          ),
          ...[...expr.matchAll(/[{,]\s*([a-z_]+)\s*(?:=~|!=|=)/g)].map((m) => m[1] ?? ''),
        ];
        for (const name of names) {
          const known = metrics.get(name);
          if (!known) {
            problems.push(`${p.title}: ${name} is not exported`);
            continue;
          }
          for (const l of labels) {
            if (l && !SCRAPE_LABELS.has(l) && !known.has(l) && names.every((n) => !metrics.get(n)?.has(l))) {
              problems.push(`${p.title}: ${name} has no label ${l}`);
            }
          }
        }
      }
    }
    assert.deepEqual(problems, []);
  });
});
