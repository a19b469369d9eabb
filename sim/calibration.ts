/**
 * The published vLLM measurements the presets are held to, each with its
 * source and a replay: the workload that produced it, run against the preset
 * on a manual clock. `test/sim-calibration.test.ts` checks every point within
 * {@link CALIBRATION_TOLERANCE}; `bench/sim-calibration.ts` prints the table.
 */
import { getPreset } from './presets.js';
import {
  createSeededRandom,
  poissonArrivals,
  runWorkload,
  summarizeWorkload,
  type WorkloadRequest,
  type WorkloadSummary,
} from './workload.js';

/** Relative error allowed between a replay and the published value. */
export const CALIBRATION_TOLERANCE = 0.1;

/** A workload whose summary one or more points read. */
export interface CalibrationScenario {
  /** Identifies the run, so points sharing it replay it once. */
  key: string;
  run(): WorkloadSummary;
}

/** One published measurement and how to reproduce it. */
export interface CalibrationPoint {
  preset: string;
  /** What is measured, e.g. `TTFT, batch 1, 10000-token prompt`. */
  metric: string;
  unit: 'ms' | 'tok/s' | 'req/s';
  published: number;
  source: string;
  scenario: CalibrationScenario;
  /** The simulated value from the scenario's summary. */
  pick(summary: WorkloadSummary): number;
}

const P8 = 'llama-3.1-8b-h100';
const P70 = 'llama-3.1-70b-4xh100';
const KV_OFFLOADING = 'blog.vllm.ai/2026/01/08/kv-offloading-connector.html';
const FP8_KV = 'blog.vllm.ai/2026/04/22/fp8-kvcache.html';
const V1_ALPHA = 'blog.vllm.ai/2025/01/27/v1-alpha-release.html';
const TURBOQUANT = 'blog.vllm.ai/2026/05/11/turboquant.html';

const single = (preset: string, promptTokens: number, outputTokens: number): CalibrationScenario => ({
  key: `${preset} single ${promptTokens}/${outputTokens}`,
  run: () =>
    summarizeWorkload(runWorkload({ preset: getPreset(preset), requests: [{ promptTokens, outputTokens }] })),
});

const ttftPoint = (promptTokens: number, publishedMs: number, source: string): CalibrationPoint => ({
  preset: P8,
  metric: `TTFT, batch 1, ${promptTokens}-token prompt`,
  unit: 'ms',
  published: publishedMs,
  source,
  scenario: single(P8, promptTokens, 1),
  pick: (s) => s.meanTtftMs,
});

// The authors' linear fit of batch-1 ITL against context (128 output tokens: mean context prompt + 64).
const itlFitPoint = (promptTokens: number): CalibrationPoint => ({
  preset: P8,
  metric: `ITL, batch 1, ${promptTokens}-token prompt`,
  unit: 'ms',
  published: 6.44 + 4.37e-5 * (promptTokens + 64),
  source: `${FP8_KV} (published fit 6.44 ms + 4.37e-5 ms × context)`,
  scenario: single(P8, promptTokens, 128),
  pick: (s) => s.medianItlMs,
});

// fp8-kvcache Table 4: concurrency 8, 150 requests of ~20K in / ~2K out.
const TABLE_4: CalibrationScenario = {
  key: 'table4',
  run: () =>
    summarizeWorkload(
      runWorkload({
        preset: getPreset(P8),
        requests: Array.from({ length: 150 }, () => ({ promptTokens: 20_000, outputTokens: 2_000 })),
        concurrency: 8,
      }),
    ),
};

const PREFILL_ONLY: CalibrationScenario = {
  key: 'prefill-only',
  run: () =>
    summarizeWorkload(
      runWorkload({
        preset: getPreset(P8),
        requests: Array.from({ length: 2_000 }, () => ({ promptTokens: 512, outputTokens: 1 })),
      }),
    ),
};

// ShareGPT-like lengths (the dataset's means, 202 in / 179 out, spread uniformly), all sent at once.
const SHAREGPT_SATURATION: CalibrationScenario = {
  key: 'sharegpt',
  run: () => {
    const random = createSeededRandom(7);
    const requests: WorkloadRequest[] = Array.from({ length: 2_000 }, () => ({
      promptTokens: 4 + Math.floor(random() * 397),
      outputTokens: 1 + Math.floor(random() * 357),
    }));
    return summarizeWorkload(runWorkload({ preset: getPreset(P8), requests, maxNumSeqs: 256 }));
  },
};

// turboquant Fig. 1/12/14: 300 prompts, 1024 in / 512 out, Poisson at 2 and 8 req/s, or all at once.
const turboquant = (ratePerS: number): CalibrationScenario => ({
  key: `turboquant ${ratePerS}`,
  run: () => {
    const arrivals =
      ratePerS === Number.POSITIVE_INFINITY
        ? new Array<number>(300).fill(0)
        : poissonArrivals(300, ratePerS, createSeededRandom(3));
    return summarizeWorkload(
      runWorkload({
        preset: getPreset(P70),
        requests: arrivals.map((arrivalMs) => ({ arrivalMs, promptTokens: 1024, outputTokens: 512 })),
      }),
    );
  },
});

/** Every point the presets are calibrated against. */
export const CALIBRATION_POINTS: readonly CalibrationPoint[] = [
  ...(
    [
      [10_000, 264],
      [20_000, 634],
      [30_000, 1098],
      [40_000, 1652],
      [50_000, 2290],
      [60_000, 3012],
      [70_000, 3838],
      [80_000, 4785],
      [90_000, 5733],
      [100_000, 6844],
    ] as const
  ).map(([tokens, ms]) => ttftPoint(tokens, ms, `${KV_OFFLOADING}, Fig. 1`)),
  ...(
    [
      [49_152, 2400],
      [65_536, 3500],
      [81_920, 5100],
      [98_304, 6800],
      [114_688, 8700],
      [130_944, 10_100],
    ] as const
  ).map(([tokens, ms]) => ttftPoint(tokens, ms, `${FP8_KV}, Fig. 2`)),
  ...[1_024, 32_768, 65_536, 124_000].map(itlFitPoint),
  {
    preset: P8,
    metric: 'median ITL, concurrency 8, ~20K in / ~2K out',
    unit: 'ms',
    published: 15.18,
    source: `${FP8_KV}, Table 4`,
    scenario: TABLE_4,
    pick: (s) => s.medianItlMs,
  },
  {
    preset: P8,
    metric: 'median TTFT, concurrency 8, ~20K in / ~2K out',
    unit: 'ms',
    published: 763.6,
    source: `${FP8_KV}, Table 4`,
    scenario: TABLE_4,
    pick: (s) => s.medianTtftMs,
  },
  {
    preset: P8,
    metric: 'output throughput, concurrency 8, ~20K in / ~2K out',
    unit: 'tok/s',
    published: 450.3,
    source: `${FP8_KV}, Table 4`,
    scenario: TABLE_4,
    pick: (s) => s.outputTokensPerS,
  },
  {
    preset: P8,
    metric: 'prefill-only saturation, 512-token prompts',
    unit: 'tok/s',
    published: 44_000,
    source: `${KV_OFFLOADING}, Fig. 2 (baseline)`,
    scenario: PREFILL_ONLY,
    pick: (s) => s.promptTokensPerS,
  },
  {
    preset: P8,
    metric: 'ShareGPT-like saturation, max_num_seqs 256, rate inf',
    unit: 'req/s',
    published: 55,
    source: `${V1_ALPHA} (latency knee ≈50–60 QPS, midpoint)`,
    scenario: SHAREGPT_SATURATION,
    pick: (s) => s.requestsPerS,
  },
  ...([2, 8, Number.POSITIVE_INFINITY] as const).map(
    (rate, i): CalibrationPoint => ({
      preset: P70,
      metric: `mean TPOT, 1024 in / 512 out, ${rate === Number.POSITIVE_INFINITY ? 'rate inf' : `${rate} req/s`}`,
      unit: 'ms',
      published: [19.7, 46.6, 60.2][i]!,
      source: `${TURBOQUANT}, Fig. 12`,
      scenario: turboquant(rate),
      pick: (s) => s.meanTpotMs,
    }),
  ),
  {
    preset: P70,
    metric: 'output throughput, 1024 in / 512 out, rate inf',
    unit: 'tok/s',
    published: 3080,
    source: `${TURBOQUANT}, Fig. 1`,
    scenario: turboquant(Number.POSITIVE_INFINITY),
    pick: (s) => s.outputTokensPerS,
  },
];

/** A replayed point. */
export interface CalibrationResult {
  point: CalibrationPoint;
  simulated: number;
  /** (simulated − published) / published. */
  relativeError: number;
}

/** Replays `points` (default: all), running each scenario once. */
export function replayCalibration(
  points: readonly CalibrationPoint[] = CALIBRATION_POINTS,
): CalibrationResult[] {
  const summaries = new Map<string, WorkloadSummary>();
  return points.map((point) => {
    let summary = summaries.get(point.scenario.key);
    if (!summary) {
      summary = point.scenario.run();
      summaries.set(point.scenario.key, summary);
    }
    const simulated = point.pick(summary);
    return { point, simulated, relativeError: simulated / point.published - 1 };
  });
}
