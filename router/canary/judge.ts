/**
 * The judgement of one canary interval: canary against baseline, from the
 * statistics of the requests each served since the step began. A pure
 * function, so every bound is tested without traffic.
 */
import type { CanaryConfig } from './schema.js';
import type { StatsSummary } from './stats.js';

/** Why a judgement came out as it did (the `reason` label of `llm_canary_decisions_total`). */
export type JudgementReason = 'healthy' | 'too_few_requests' | 'error_rate' | 'ttft_p90' | 'itl_p90';

/** The outcome of one judgement. */
export interface Judgement {
  /** `pass`: advance; `hold`: judge again after another interval; `fail`: apply `on_failure`. */
  verdict: 'pass' | 'hold' | 'fail';
  reason: JudgementReason;
  /** A sentence for logs, status and the timeline, with the numbers compared. */
  detail: string;
}

const ms = (s: number | null) => (s === null ? '–' : `${(s * 1000).toFixed(1)} ms`);
const pct = (x: number | null) => (x === null ? '–' : `${(x * 100).toFixed(2)} %`);

/**
 * Judges `canary` against `baseline`. Error rate first (the clearest harm),
 * then TTFT p90, then inter-token latency p90; a latency bound is skipped
 * when either side has no sample of it (e.g. one-token answers have no
 * inter-token latency).
 */
export function judge(cfg: CanaryConfig, canary: StatsSummary, baseline: StatsSummary): Judgement {
  if (canary.requests < cfg.min_requests || baseline.requests < cfg.min_requests) {
    return {
      verdict: 'hold',
      reason: 'too_few_requests',
      detail: `too few requests to judge: canary ${canary.requests}, baseline ${baseline.requests} (min_requests ${cfg.min_requests})`,
    };
  }
  const increase = (canary.errorRate ?? 0) - (baseline.errorRate ?? 0);
  if (increase > cfg.max_error_rate_increase) {
    return {
      verdict: 'fail',
      reason: 'error_rate',
      detail: `error rate ${pct(canary.errorRate)} vs baseline ${pct(baseline.errorRate)}: +${pct(increase)} > max_error_rate_increase ${pct(cfg.max_error_rate_increase)}`,
    };
  }
  const ratio = (c: number | null, b: number | null) => (c === null || b === null || b <= 0 ? null : c / b);
  const ttft = ratio(canary.ttftP90, baseline.ttftP90);
  if (ttft !== null && ttft > cfg.max_ttft_p90_ratio) {
    return {
      verdict: 'fail',
      reason: 'ttft_p90',
      detail: `TTFT p90 ${ms(canary.ttftP90)} vs baseline ${ms(baseline.ttftP90)}: ratio ${ttft.toFixed(2)} > max_ttft_p90_ratio ${cfg.max_ttft_p90_ratio}`,
    };
  }
  const itl = ratio(canary.itlP90, baseline.itlP90);
  if (itl !== null && itl > cfg.max_itl_p90_ratio) {
    return {
      verdict: 'fail',
      reason: 'itl_p90',
      detail: `inter-token p90 ${ms(canary.itlP90)} vs baseline ${ms(baseline.itlP90)}: ratio ${itl.toFixed(2)} > max_itl_p90_ratio ${cfg.max_itl_p90_ratio}`,
    };
  }
  return {
    verdict: 'pass',
    reason: 'healthy',
    detail: `within bounds over ${canary.requests} canary and ${baseline.requests} baseline requests: error rate ${pct(canary.errorRate)} vs ${pct(baseline.errorRate)}, TTFT p90 ratio ${ttft === null ? '–' : ttft.toFixed(2)}, inter-token p90 ratio ${itl === null ? '–' : itl.toFixed(2)}`,
  };
}
