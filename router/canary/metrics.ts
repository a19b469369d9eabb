/**
 * The canary's Prometheus metrics: decisions and cost counted as they happen,
 * the progression and the per-version comparison computed at scrape time.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CanaryPhase } from './progression.js';
import type { StatsSummary } from './stats.js';
import type { ModelRun } from './types.js';

/** Labels of a per-version comparison gauge. */
export type ComparisonLabels = { model: string; model_version: string; window: string };

/** What the scrape-time gauges read. */
export interface CanaryMetricsView {
  runs: ReadonlyMap<string, ModelRun>;
  shownPhase(r: ModelRun): CanaryPhase;
  /** `none` without a shared Redis. */
  redis(): 'none' | 'up' | 'down';
  /** Every version's summary per configured window. */
  summaries(): Array<{ labels: ComparisonLabels; summary: StatsSummary }>;
}

/** Registers the canary's metrics in `registers`; returns the counters the controller increments. */
export function createCanaryMetrics(registers: Registry[], view: CanaryMetricsView) {
  const decisions = new Counter({
    name: 'llm_canary_decisions_total',
    help: 'Canary decisions by model, canary version, decision (start, advance, hold, complete, rollback, pause, resume, promote) and reason.',
    labelNames: ['model', 'version', 'decision', 'reason'],
    registers,
  });
  const cost = new Counter({
    name: 'llm_cost_total',
    help: 'Cost of served requests from the configured per-version prices (currency units of the price).',
    labelNames: ['model', 'model_version', 'tenant'],
    registers,
  });
  const shareGauge = new Gauge({
    name: 'llm_canary_share',
    help: 'Canary share (0..1) of the canary and baseline traffic, as the progression sets it.',
    labelNames: ['model', 'version'],
    registers,
    collect() {
      this.reset();
      for (const [model, r] of view.runs) this.set({ model, version: r.cfg.version }, r.state.share / 100);
    },
  });
  const stepGauge = new Gauge({
    name: 'llm_canary_step',
    help: 'Index of the canary step in force (0-based); see llm_canary_phase.',
    labelNames: ['model', 'version'],
    registers,
    collect() {
      this.reset();
      for (const [model, r] of view.runs) this.set({ model, version: r.cfg.version }, r.state.step);
    },
  });
  const phaseGauge = new Gauge({
    name: 'llm_canary_phase',
    help: 'Canary phase: 1 for the phase in force (progressing, paused, rolled_back, completed).',
    labelNames: ['model', 'version', 'phase'],
    registers,
    collect() {
      this.reset();
      for (const [model, r] of view.runs) {
        for (const phase of ['progressing', 'paused', 'rolled_back', 'completed'] as const) {
          this.set({ model, version: r.cfg.version, phase }, view.shownPhase(r) === phase ? 1 : 0);
        }
      }
    },
  });
  const sharedGauge = new Gauge({
    name: 'llm_canary_shared_state_up',
    help: '1 while the Redis that replicas share canary progressions through is reachable (absent without one).',
    registers,
    collect() {
      this.reset();
      const redis = view.redis();
      if (redis !== 'none') this.set(redis === 'up' ? 1 : 0);
    },
  });
  const fill = (g: Gauge<keyof ComparisonLabels>, pick: (s: StatsSummary) => number | null) => {
    g.reset();
    for (const { labels, summary } of view.summaries()) {
      const v = pick(summary);
      if (v !== null) g.set(labels, v);
    }
  };
  const comparisonGauges = [
    new Gauge({
      name: 'llm_version_ttft_seconds',
      help: 'Time to first token per version over a sliding window, by quantile (0.5, 0.9, 0.99).',
      labelNames: ['model', 'model_version', 'window', 'quantile'],
      registers,
      collect() {
        this.reset();
        for (const { labels, summary } of view.summaries()) {
          for (const [quantile, v] of [
            ['0.5', summary.ttftP50],
            ['0.9', summary.ttftP90],
            ['0.99', summary.ttftP99],
          ] as const) {
            if (v !== null) this.set({ ...labels, quantile }, v);
          }
        }
      },
    }),
    new Gauge({
      name: 'llm_version_itl_p90_seconds',
      help: 'Inter-token latency p90 per version over a sliding window.',
      labelNames: ['model', 'model_version', 'window'],
      registers,
      collect() {
        fill(this, (s) => s.itlP90);
      },
    }),
    new Gauge({
      name: 'llm_version_error_rate',
      help: 'Share of requests that met an endpoint fault (hidden by a retry or not) per version over a sliding window; client faults excluded.',
      labelNames: ['model', 'model_version', 'window'],
      registers,
      collect() {
        fill(this, (s) => s.errorRate);
      },
    }),
    new Gauge({
      name: 'llm_version_output_tokens_per_second',
      help: 'Output tokens per second of streaming per version over a sliding window.',
      labelNames: ['model', 'model_version', 'window'],
      registers,
      collect() {
        fill(this, (s) => s.outputTokensPerSecond);
      },
    }),
    new Gauge({
      name: 'llm_version_requests',
      help: 'Requests per version finished within a sliding window.',
      labelNames: ['model', 'model_version', 'window'],
      registers,
      collect() {
        fill(this, (s) => s.requests);
      },
    }),
    new Gauge({
      name: 'llm_version_cost_per_1k_requests',
      help: 'Cost of 1,000 requests per version over a sliding window (from the configured prices).',
      labelNames: ['model', 'model_version', 'window'],
      registers,
      collect() {
        fill(this, (s) => s.costPer1kRequests);
      },
    }),
  ];
  void comparisonGauges;
  void shareGauge;
  void stepGauge;
  void phaseGauge;
  void sharedGauge;
  return { decisions, cost };
}
