/**
 * The published vLLM measurements the simulator is held to, each with its
 * source and a replay: the workload that produced it, run against the preset
 * on a manual clock. Two sets, kept apart:
 *
 * - {@link CALIBRATION_POINTS}, the fitted (in-sample) points: the presets'
 *   constants were chosen to reproduce them, and
 *   `test/sim-calibration.test.ts` holds each within {@link CALIBRATION_TOLERANCE}.
 * - {@link HELD_OUT_POINTS}, published points no constant was fitted to: their
 *   error is the honest measure of how far the simulator can be trusted.
 *
 * `bench/sim-fidelity.ts` prints both tables and their error statistics.
 * Figures and sources are copied in `calibration-data.md`.
 */

import { createRandom, deriveSeed } from '../common/random.js';
import type { FrontEndCosts } from './front-end.js';
import { getPreset, type SimPreset } from './presets.js';
import {
  createShareGptSampler,
  SHAREGPT_IGNORE_EOS_SIGMA,
  type ShareGptMeans,
  type ShareGptSigma,
} from './sharegpt.js';
import {
  mean,
  median,
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
  /**
   * Replays the run. `draw` 0 (the default) is the replay every figure
   * quotes; other draws take other seeded lengths and arrival times from the
   * same distributions, to show how much of a point's error is the luck of
   * one sample (a burst's throughput hangs on its longest answer).
   */
  run(draw?: number): WorkloadSummary;
}

/** The seed of a replay's random stream: `base` for draw 0, derived from it for the others. */
const drawSeed = (base: number, draw: number) => (draw === 0 ? base : deriveSeed(base, draw));

/** One published measurement and how to reproduce it. */
export interface CalibrationPoint {
  preset: string;
  /** The vLLM release measured, as published (or `not stated`). */
  release: string;
  /** What is measured, e.g. `TTFT, batch 1, 10000-token prompt`. */
  metric: string;
  unit: 'ms' | 'tok/s' | 'req/s';
  published: number;
  source: string;
  scenario: CalibrationScenario;
  /** The simulated value from the scenario's summary. */
  pick(summary: WorkloadSummary): number;
  /** A fitted point the model no longer reproduces within tolerance, and why. */
  knownMiss?: string;
}

const P8 = 'llama-3.1-8b-h100';
const P70 = 'llama-3.1-70b-4xh100';
const KV_OFFLOADING = 'blog.vllm.ai/2026/01/08/kv-offloading-connector.html';
const FP8_KV = 'blog.vllm.ai/2026/04/22/fp8-kvcache.html';
const V1_ALPHA = 'blog.vllm.ai/2025/01/27/v1-alpha-release.html';
const TURBOQUANT = 'blog.vllm.ai/2026/05/11/turboquant.html';
const PERF_UPDATE = 'blog.vllm.ai/2024/09/05/perf-update.html';
const PULL_18566 = 'github.com/vllm-project/vllm/pull/18566';
const SGLANG_060 = 'sgl-project/sglang, benchmark/benchmark_vllm_060/README.md';
const PERF_CI = "vLLM's perf-benchmark CI, latency tests (figures not re-checked against the dashboard)";

/**
 * ShareGPT as sglang's `bench_serving` samples it for its vLLM 0.6.0 runs: the
 * output mean is the published rate-inf run's (3,700.64 output tok/s ÷ 19.04
 * req/s ≈ 194.4 tokens; the 8B run on an A100 gives the same, 194.3); the
 * prompt mean is not published and is vLLM's (202), as the filter is the same.
 */
export const SGLANG_SHAREGPT_MEANS: ShareGptMeans = { promptTokens: 202, outputTokens: 194.4 };

/** sglang's vLLM 0.6.0 servers ran with `--max_model_len 4096`: without chunked prefill, the step budget. */
export const SGLANG_MAX_MODEL_LEN = 4096;

/** How an older vLLM release differs from the V1 releases the presets describe. */
export interface ReleaseProfile {
  /**
   * CPU time the GPU waits for in every step, by preset (ms): scheduling,
   * input preparation and output handling that V1 overlaps with the GPU.
   */
  stepOverheadMs: Readonly<Record<string, number>>;
  /** Multiplies the prefill terms of the step cost (per token and attention): older kernels. */
  prefillCostFactor: number;
  numSchedulerSteps: number;
  /** The release's default `max_num_seqs`. */
  maxNumSeqs: number;
  /** Prefill in steps of its own, whole prompts, decodes skipping them (V0 without chunked prefill). */
  separatePrefillSteps: boolean;
  /** A step's outputs reach the API server when the next step ends (V0's asynchronous output processor). */
  asyncOutputProcessing: boolean;
  /**
   * Passes of the API server's event loop a request's intake takes
   * (`FrontEndCosts.requestStages`): more than one only where the release's
   * API server code was read for it; the presets take one.
   */
  requestStages: number;
}

/**
 * vLLM 0.6.0 as its published runs used it: multi-step scheduling with 10
 * steps (`--num-scheduler-steps 10`), V0's default of 256 running sequences
 * (the perf-update runs set 512, see {@link PERF_UPDATE_MAX_NUM_SEQS}),
 * prefill in steps of its own, and two differences in cost from the V1
 * releases the presets were fitted on:
 *
 * - CPU time per step. The 0.6.0 release post describes where V0's time
 *   went: the GPU idles while the CPU schedules the next batch, prepares its
 *   inputs and handles the last outputs, work V1 overlaps with the GPU. That
 *   idle time is added to every step, not multiplied with the GPU's work (a
 *   factor, 1.22, was used before: it made every large batch 22 % slower,
 *   where 0.6.0's large-batch throughput is close to V1's). Under tensor
 *   parallelism V0's driver also broadcasts each step's inputs to the other
 *   workers, so the overhead is per preset, each fitted on one point, the
 *   mean TPOT at 2 QPS of the perf-update chart on a 0.1 ms grid
 *   (8B ≈8.5 ms → 1.4 ms; 70B ≈22 ms → 3.3 ms, refitted from 3.4 once the
 *   asynchronous output processor was added: 3.3 / 3.4 / 3.5 give +0.3 /
 *   +0.8 / +1.4 %).
 * - Prefill kernels. 0.6.0 predates FlashAttention 3 and torch.compile in
 *   vLLM; its prefill terms are a factor above V1's, fitted on the 8B's
 *   prefill-heavy throughput of the same chart (≈59 req/s, 500 × 462 in /
 *   16 out at once) on a 0.1 grid: 1.3 / 1.4 / 1.5 give +6 / −1 / −6 %.
 *
 * The 8B throughput with all 500 ShareGPT prompts at once fits the ShareGPT
 * output spread (`sharegpt.ts`). Every other 0.6.0 point is held out.
 */
export const VLLM_060: ReleaseProfile = {
  stepOverheadMs: { [P8]: 1.4, [P70]: 3.3 },
  prefillCostFactor: 1.4,
  numSchedulerSteps: 10,
  maxNumSeqs: 256,
  separatePrefillSteps: true,
  asyncOutputProcessing: true,
  // 0.6.0's API server (V0's multiprocessing front end) was not read for its event-loop passes: one, as the presets.
  requestStages: 1,
};

/**
 * vLLM V1 as of May 2025 (pull 18566's run), as the presets but for its API
 * server's intake: a chat request passes the asyncio event loop's ready
 * queue at least four times before the engine core sees it, read from that
 * release's code (`calibration-data.md` §16): uvicorn starts each request's
 * ASGI cycle as a task of its own; vLLM's `with_cancellation` route decorator
 * runs the handler as another task; `_preprocess_chat` awaits tokenisation
 * on a one-thread executor (`make_async`); and the decorator's `asyncio.wait`
 * resumes only after the handler task's completion callback has run. Each
 * pass queues behind every handler already ready, so under a burst every
 * request does its first pass before any does its second, and the burst
 * reaches the engine together in the last quarter of the intake, where
 * 8,192-token prefill steps stall the first requests' decodes (the run's
 * P99 ITL and TPOT of ≈210 ms). The request's CPU cost is split evenly over
 * the four passes: how it splits is not published.
 */
export const VLLM_V1_MAY_2025: ReleaseProfile = {
  stepOverheadMs: {},
  prefillCostFactor: 1,
  numSchedulerSteps: 1,
  maxNumSeqs: 1024,
  separatePrefillSteps: false,
  asyncOutputProcessing: false,
  requestStages: 4,
};

/** The preset as `release` ran it: its prefill terms scaled by the release's factor, its intake passes. */
function releasePreset(name: string, release: ReleaseProfile | undefined): SimPreset {
  const preset = getPreset(name);
  if (!release) return preset;
  const { stepCost } = preset;
  return {
    ...preset,
    frontEnd: { ...preset.frontEnd, requestStages: release.requestStages },
    stepCost: {
      ...stepCost,
      prefillMsPerToken: stepCost.prefillMsPerToken * release.prefillCostFactor,
      attentionMsPerMillionPositions: stepCost.attentionMsPerMillionPositions * release.prefillCostFactor,
    },
  };
}

// `gpuOnly`: the source timed the GPU's compute alone, without the API server.
const single = (
  preset: string,
  promptTokens: number,
  outputTokens: number,
  gpuOnly = false,
): CalibrationScenario => ({
  key: `${preset} single ${promptTokens}/${outputTokens}${gpuOnly ? ' gpu' : ''}`,
  run: () =>
    summarizeWorkload(
      runWorkload({
        preset: getPreset(preset),
        requests: [{ promptTokens, outputTokens }],
        frontEnd: gpuOnly ? false : undefined,
      }),
    ),
});

const ttftPoint = (
  promptTokens: number,
  publishedMs: number,
  source: string,
  release: string,
): CalibrationPoint => ({
  preset: P8,
  release,
  metric: `TTFT, batch 1, ${promptTokens}-token prompt`,
  unit: 'ms',
  published: publishedMs,
  source,
  scenario: single(P8, promptTokens, 1, source.startsWith(KV_OFFLOADING)),
  pick: (s) => s.meanTtftMs,
});

// The authors' linear fit of batch-1 ITL against context (128 output tokens: mean context prompt + 64).
const itlFitPoint = (promptTokens: number): CalibrationPoint => ({
  preset: P8,
  release: '0.19.1',
  metric: `ITL, batch 1, ${promptTokens}-token prompt`,
  unit: 'ms',
  published: 6.44 + 4.37e-5 * (promptTokens + 64),
  source: `${FP8_KV} (published fit 6.44 ms + 4.37e-5 ms × context)`,
  scenario: single(P8, promptTokens, 128),
  pick: (s) => s.medianItlMs,
});

/**
 * Spread of the lengths of a run published as "~N in / ~M out": each length
 * uniform within ±5 % of its nominal value, seeded. Any spread from 1 % to
 * 10 % gives the same replay (median TTFT 694–711 ms on Table 4 below); none
 * at all does not: identical lengths lock a closed loop's clients into
 * step, so the same requests collide in prefill every cycle, which no real
 * run with approximate lengths does.
 */
const APPROXIMATE_SPREAD = 0.05;

// fp8-kvcache Table 4: concurrency 8, 150 requests of ~20K in / ~2K out.
const TABLE_4: CalibrationScenario = {
  key: 'table4',
  run: (draw = 0) => {
    const random = createRandom(drawSeed(1, draw));
    const about = (n: number) => Math.round(n * (1 + APPROXIMATE_SPREAD * (2 * random() - 1)));
    return summarizeWorkload(
      runWorkload({
        preset: getPreset(P8),
        requests: Array.from({ length: 150 }, () => ({
          promptTokens: about(20_000),
          outputTokens: about(2_000),
        })),
        concurrency: 8,
      }),
    );
  },
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

/** Options of {@link shareGpt}. */
export interface ShareGptRun {
  preset: string;
  count: number;
  /** Poisson arrivals at this rate; absent: all at once (`--request-rate inf`). */
  ratePerS?: number;
  means?: ShareGptMeans;
  maxNumSeqs?: number;
  /** The server's `max_num_batched_tokens`; V0 without chunked prefill sets it to `max_model_len`. */
  maxNumBatchedTokens?: number;
  /** Replays an older release (see {@link VLLM_060}). */
  release?: ReleaseProfile;
  /** The client sent `ignore_eos`: outputs run to the dataset's answer lengths. */
  ignoreEos?: boolean;
  /**
   * Outputs capped at the dataset's own answer lengths (`max_tokens` set to
   * each answer's length, as `vllm bench serve --dataset-name hf` does for
   * ShareGPT conversations) and running to that cap: spread as under
   * `ignore_eos` ({@link SHAREGPT_IGNORE_EOS_SIGMA}).
   */
  datasetAnswers?: boolean;
  /** Replaces the spread of the lengths (what-if replays only; the points use the two fitted spreads). */
  sigma?: ShareGptSigma;
  /** Replaces the API server's costs, `false` for none (what-if replays only). */
  frontEnd?: FrontEndCosts | false;
  /** Replaces the preset's decode cost per sequence (what-if replays only). */
  decodeMsPerSequence?: number;
}

/** `vllm bench serve --dataset-name sharegpt`, as lengths: ShareGPT-shaped requests, seeded. */
export const shareGpt = (o: ShareGptRun): CalibrationScenario => ({
  key: `sharegpt ${JSON.stringify(o)}`,
  run: (draw = 0) => {
    const sample = createShareGptSampler(
      createRandom(drawSeed(7, draw)),
      o.means,
      o.sigma ?? (o.ignoreEos || o.datasetAnswers ? SHAREGPT_IGNORE_EOS_SIGMA : undefined),
    );
    const arrivals =
      o.ratePerS === undefined
        ? new Array<number>(o.count).fill(0)
        : poissonArrivals(o.count, o.ratePerS, createRandom(drawSeed(3, draw)));
    const requests: WorkloadRequest[] = arrivals.map((arrivalMs) => ({ arrivalMs, ...sample() }));
    const preset = releasePreset(o.preset, o.release);
    return summarizeWorkload(
      runWorkload({
        preset:
          o.decodeMsPerSequence === undefined
            ? preset
            : { ...preset, stepCost: { ...preset.stepCost, decodeMsPerSequence: o.decodeMsPerSequence } },
        requests,
        frontEnd: o.frontEnd,
        maxNumSeqs: o.maxNumSeqs ?? o.release?.maxNumSeqs,
        stepOverheadMs: o.release?.stepOverheadMs[o.preset],
        numSchedulerSteps: o.release?.numSchedulerSteps,
        separatePrefillSteps: o.release?.separatePrefillSteps,
        asyncOutputProcessing: o.release?.asyncOutputProcessing,
        maxNumBatchedTokens: o.maxNumBatchedTokens,
      }),
    );
  },
});

// ShareGPT lengths (means 202 in / 179 out), all sent at once, 256 running at most.
const SHAREGPT_SATURATION = shareGpt({ preset: P8, count: 2_000, maxNumSeqs: 256 });

/**
 * vLLM pull 18566: 1,000 ShareGPT conversations to the chat endpoint at once
 * (`vllm bench serve --dataset-name hf --dataset-path
 * Aeala/ShareGPT_Vicuna_unfiltered`); 229,711 prompt and 203,068 output
 * tokens. That dataset's sampler sets each request's `max_tokens` to the
 * length of the conversation's own answer, and the mean generated (203) is
 * above the mean answer of the other ShareGPT release sglang drew (194.4,
 * {@link SGLANG_SHAREGPT_MEANS}): the model stopped short of its cap on few
 * requests, so the lengths are the dataset's answers, spread as under
 * `ignore_eos`.
 */
const PULL_18566_RUN = shareGpt({
  preset: P8,
  count: 1_000,
  means: { promptTokens: 229.711, outputTokens: 203.068 },
  datasetAnswers: true,
  release: VLLM_V1_MAY_2025,
});

/**
 * `max_num_seqs` of the perf-update runs. They are vLLM's nightly benchmark
 * (`.buildkite/nightly-benchmarks/`: ShareGPT, and sonnet 512 in / 16 or 256
 * out for the prefill- and decode-heavy sets, 500 prompts at 2–32 QPS and
 * inf), whose vLLM server ran with `--num-scheduler-steps 10 --max-num-seqs
 * 512` (`tests/nightly-tests.json`), not V0's default of 256.
 */
export const PERF_UPDATE_MAX_NUM_SEQS = 512;

// The 0.6.0 perf-update's fixed-length runs: 500 prompts of 462 tokens at once, 16 (prefill-heavy) or 256 (decode-heavy) out.
const perfUpdateFixed = (preset: string, outputTokens: number): CalibrationScenario => ({
  key: `perf-update fixed ${preset} ${outputTokens}`,
  run: () =>
    summarizeWorkload(
      runWorkload({
        preset: releasePreset(preset, VLLM_060),
        requests: Array.from({ length: 500 }, () => ({ promptTokens: 462, outputTokens })),
        maxNumSeqs: PERF_UPDATE_MAX_NUM_SEQS,
        stepOverheadMs: VLLM_060.stepOverheadMs[preset],
        numSchedulerSteps: VLLM_060.numSchedulerSteps,
        separatePrefillSteps: VLLM_060.separatePrefillSteps,
        asyncOutputProcessing: VLLM_060.asyncOutputProcessing,
      }),
    ),
});

/** The perf-update chart's fixed-length throughputs (≈, req/s): prefill-heavy 16 out, decode-heavy 256 out. */
const perfUpdateFixedPoint = (
  preset: string,
  outputTokens: 16 | 256,
  published: number,
): CalibrationPoint => ({
  preset,
  release: '0.6.0, 10 scheduler steps',
  metric: `request throughput, ${outputTokens === 16 ? 'prefill' : 'decode'}-heavy, 500 × 462 in / ${outputTokens} out at once`,
  unit: 'req/s',
  published,
  source: `${PERF_UPDATE}, appendix chart`,
  scenario: perfUpdateFixed(preset, outputTokens),
  pick: (s) => s.requestsPerS,
});

// The 0.6.0 perf-update runs: 500 ShareGPT prompts (202 in / 179 out on average) at a Poisson rate, or all at once.
const perfUpdate = (preset: string, ratePerS?: number) =>
  shareGpt({
    preset,
    count: 500,
    ratePerS,
    release: VLLM_060,
    maxNumSeqs: PERF_UPDATE_MAX_NUM_SEQS,
  });

// turboquant Fig. 1/12/14: 300 prompts, 1024 in / 512 out, Poisson at 2 and 8 req/s, or all at once.
const turboquant = (ratePerS: number): CalibrationScenario => ({
  key: `turboquant ${ratePerS}`,
  run: (draw = 0) => {
    const arrivals =
      ratePerS === Number.POSITIVE_INFINITY
        ? new Array<number>(300).fill(0)
        : poissonArrivals(300, ratePerS, createRandom(drawSeed(3, draw)));
    return summarizeWorkload(
      runWorkload({
        preset: getPreset(P70),
        requests: arrivals.map((arrivalMs) => ({ arrivalMs, promptTokens: 1024, outputTokens: 512 })),
      }),
    );
  },
});

/**
 * sglang's online runs of vLLM 0.6.0 (70B, 4×H100): `bench_serving` with
 * ShareGPT at a Poisson rate, `ignore_eos` on (its default), so outputs run
 * to the dataset's answer lengths ({@link SHAREGPT_IGNORE_EOS_SIGMA}).
 */
const SGLANG_ONLINE = {
  4: { count: 1_200, tpot: 23.58, ttft: 179.15, e2e: 2915.6, itl: 231.23 },
  8: { count: 2_400, tpot: 29.15, ttft: 207.12, e2e: 3752.38, itl: 275.32 },
} as const;

const sglangPointCache = new Map<number, CalibrationPoint[]>();

/** The four published medians of sglang's run at `rate` req/s, sharing one replay. */
function sglangPoints(rate: 4 | 8): CalibrationPoint[] {
  const cached = sglangPointCache.get(rate);
  if (cached) return cached;
  const { count, tpot, ttft, e2e, itl } = SGLANG_ONLINE[rate];
  const scenario = shareGpt({
    preset: P70,
    count,
    ratePerS: rate,
    release: VLLM_060,
    means: SGLANG_SHAREGPT_MEANS,
    maxNumBatchedTokens: SGLANG_MAX_MODEL_LEN,
    ignoreEos: true,
  });
  const base = {
    preset: P70,
    release: '0.6.0, 10 scheduler steps',
    source: SGLANG_060,
    scenario,
    unit: 'ms' as const,
  };
  const points: CalibrationPoint[] = [
    { ...base, metric: `median TPOT, ShareGPT, ${rate} req/s`, published: tpot, pick: (s) => s.medianTpotMs },
    { ...base, metric: `median TTFT, ShareGPT, ${rate} req/s`, published: ttft, pick: (s) => s.medianTtftMs },
    {
      ...base,
      metric: `median end-to-end latency, ShareGPT, ${rate} req/s`,
      published: e2e,
      pick: (s) => s.medianE2eMs,
    },
    {
      ...base,
      // Multi-step streams a run's tokens in one chunk: the benchmark's ITL is the gap between chunks.
      metric: `median ITL, ShareGPT, ${rate} req/s`,
      published: itl,
      pick: (s) => s.medianItlMs,
    },
  ];
  sglangPointCache.set(rate, points);
  return points;
}

/**
 * Moved in sample from the held-out set: the one point the answer-length
 * spread under `ignore_eos` is fitted on (see `calibration-data.md`). Its
 * sibling at 8 req/s stays held out.
 */
const SGLANG_4_E2E = {
  ...sglangPoints(4)[2]!,
  source: `${SGLANG_060} (fits the ignore_eos answer-length spread)`,
};

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
  ).map(([tokens, ms]) => ttftPoint(tokens, ms, `${KV_OFFLOADING}, Fig. 1`, 'main @ 2a1776b (Dec 2025)')),
  ...(
    [
      [49_152, 2400],
      [65_536, 3500],
      [81_920, 5100],
      [98_304, 6800],
      [114_688, 8700],
      [130_944, 10_100],
    ] as const
  ).map(([tokens, ms]) => ttftPoint(tokens, ms, `${FP8_KV}, Fig. 2`, '0.19.1')),
  ...[1_024, 32_768, 65_536, 124_000].map(itlFitPoint),
  {
    preset: P8,
    release: '0.19.1',
    metric: 'median ITL, concurrency 8, ~20K in / ~2K out',
    unit: 'ms',
    published: 15.18,
    source: `${FP8_KV}, Table 4`,
    scenario: TABLE_4,
    pick: (s) => s.medianItlMs,
  },
  {
    preset: P8,
    release: '0.19.1',
    metric: 'median TTFT, concurrency 8, ~20K in / ~2K out',
    unit: 'ms',
    published: 763.6,
    source: `${FP8_KV}, Table 4`,
    scenario: TABLE_4,
    pick: (s) => s.medianTtftMs,
  },
  {
    preset: P8,
    release: '0.19.1',
    metric: 'output throughput, concurrency 8, ~20K in / ~2K out',
    unit: 'tok/s',
    published: 450.3,
    source: `${FP8_KV}, Table 4`,
    scenario: TABLE_4,
    pick: (s) => s.outputTokensPerS,
  },
  {
    preset: P8,
    release: 'main @ 2a1776b (Dec 2025)',
    metric: 'prefill-only saturation, 512-token prompts',
    unit: 'tok/s',
    published: 44_000,
    source: `${KV_OFFLOADING}, Fig. 2 (baseline)`,
    scenario: PREFILL_ONLY,
    pick: (s) => s.promptTokensPerS,
  },
  {
    preset: P8,
    release: 'V1 alpha (Jan 2025)',
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
      release: '0.20.2',
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
    release: '0.20.2',
    metric: 'output throughput, 1024 in / 512 out, rate inf',
    unit: 'tok/s',
    published: 3080,
    source: `${TURBOQUANT}, Fig. 1`,
    scenario: turboquant(Number.POSITIVE_INFINITY),
    pick: (s) => s.outputTokensPerS,
  },
  {
    preset: P8,
    release: 'V1, May 2025 (GPU not stated)',
    metric: 'mean TTFT, ShareGPT chat, 1,000 requests at once',
    unit: 'ms',
    published: 9626.13,
    source: `${PULL_18566} (fits the front end's requestMs)`,
    scenario: PULL_18566_RUN,
    pick: (s) => s.meanTtftMs,
  },
  {
    preset: P8,
    release: '0.6.0, 10 scheduler steps',
    metric: 'mean TPOT, ShareGPT, 2 QPS',
    unit: 'ms',
    published: 8.5,
    source: `${PERF_UPDATE}, appendix chart (fits the 0.6.0 step overhead)`,
    scenario: perfUpdate(P8, 2),
    pick: (s) => s.meanTpotMs,
  },
  {
    // Moved in sample from the held-out set: fits the 70B's 0.6.0 step overhead (see VLLM_060).
    preset: P70,
    release: '0.6.0, 10 scheduler steps',
    metric: 'mean TPOT, ShareGPT, 2 QPS',
    unit: 'ms',
    published: 22,
    source: `${PERF_UPDATE}, appendix chart (fits the 0.6.0 step overhead)`,
    scenario: perfUpdate(P70, 2),
    pick: (s) => s.meanTpotMs,
  },
  {
    preset: P8,
    release: '0.6.0, 10 scheduler steps',
    metric: 'request throughput, ShareGPT, 500 requests at once',
    unit: 'req/s',
    published: 37,
    source: `${PERF_UPDATE}, appendix chart (fits the ShareGPT output spread)`,
    scenario: perfUpdate(P8),
    pick: (s) => s.requestsPerS,
  },
  {
    ...perfUpdateFixedPoint(P8, 16, 59),
    source: `${PERF_UPDATE}, appendix chart (fits the 0.6.0 prefill factor)`,
  },
  SGLANG_4_E2E,
];

// Fixed-batch latency, as `benchmark_latency.py` measures it: one offline batch, no API server.
const latencyBatch = (preset: string): CalibrationScenario => ({
  key: `latency ${preset}`,
  run: () =>
    summarizeWorkload(
      runWorkload({
        preset: getPreset(preset),
        requests: Array.from({ length: 8 }, () => ({ promptTokens: 32, outputTokens: 128 })),
        frontEnd: false,
      }),
    ),
});

/**
 * Published points no constant was fitted to: the simulator's out-of-sample
 * error. The first rows are the ones the simulator was found optimistic on;
 * the rest were added from the same and other published sources.
 */
export const HELD_OUT_POINTS: readonly CalibrationPoint[] = [
  ...(
    [
      [P8, 997.5],
      [P70, 2444.5],
    ] as const
  ).map(
    ([preset, ms]): CalibrationPoint => ({
      preset,
      release: 'not stated',
      metric: 'mean end-to-end latency, batch 8, 32 in / 128 out, offline',
      unit: 'ms',
      published: ms,
      source: PERF_CI,
      scenario: latencyBatch(preset),
      pick: (s) => s.meanE2eMs,
    }),
  ),
  // Pull 18566's run: every figure its description prints but the mean TTFT (fitted) and the output
  // throughput and duration (the request throughput again: the replay takes its request and token counts).
  ...(
    [
      ['request throughput', 'req/s', 32.42, (s) => s.requestsPerS],
      ['median ITL', 'ms', 25.44, (s) => s.medianItlMs],
      ['mean ITL', 'ms', 38.13, (s) => s.meanItlMs],
      ['P99 ITL', 'ms', 214.35, (s) => s.p99ItlMs],
      ['mean TPOT', 'ms', 77.86, (s) => s.meanTpotMs],
      ['median TPOT', 'ms', 48.84, (s) => s.medianTpotMs],
      ['P99 TPOT', 'ms', 211.21, (s) => s.p99TpotMs],
      ['median TTFT', 'ms', 9459.7, (s) => s.medianTtftMs],
      ['P99 TTFT', 'ms', 12_666.73, (s) => s.p99TtftMs],
    ] as const satisfies readonly [string, CalibrationPoint['unit'], number, CalibrationPoint['pick']][]
  ).map(
    ([statistic, unit, published, pick]): CalibrationPoint => ({
      preset: P8,
      release: 'V1, May 2025 (GPU not stated)',
      metric: `${statistic}, ShareGPT chat, 1,000 requests at once`,
      unit,
      published,
      source: PULL_18566,
      scenario: PULL_18566_RUN,
      pick,
    }),
  ),
  {
    preset: P70,
    release: '0.20.2',
    metric: 'P99 TTFT, 1024 in / 512 out, rate inf',
    unit: 'ms',
    published: 17_000,
    source: `${TURBOQUANT}, Fig. 1 and 14 (≈17 s, KV cache full)`,
    scenario: turboquant(Number.POSITIVE_INFINITY),
    pick: (s) => s.p99TtftMs,
  },
  ...(
    [
      [P8, 4, 9],
      [P8, 8, 9.5],
      [P8, 16, 10.5],
      [P8, 32, 13.5],
      [P70, 4, 24],
      [P70, 8, 30],
      [P70, 16, 40],
      [P70, 32, 57],
    ] as const
  ).map(
    ([preset, rate, ms]): CalibrationPoint => ({
      preset,
      release: '0.6.0, 10 scheduler steps',
      metric: `mean TPOT, ShareGPT, ${rate} QPS`,
      unit: 'ms',
      published: ms,
      source: `${PERF_UPDATE}, appendix chart`,
      scenario: perfUpdate(preset, rate),
      pick: (s) => s.meanTpotMs,
    }),
  ),
  {
    preset: P70,
    release: '0.6.0, 10 scheduler steps',
    metric: 'request throughput, ShareGPT, 500 requests at once',
    unit: 'req/s',
    published: 17.3,
    source: `${PERF_UPDATE}, appendix chart`,
    scenario: perfUpdate(P70),
    pick: (s) => s.requestsPerS,
  },
  ...(
    [
      [P8, 57],
      [P70, 115],
    ] as const
  ).map(
    ([preset, ms]): CalibrationPoint => ({
      preset,
      release: '0.6.0, 10 scheduler steps',
      metric: 'mean TPOT, ShareGPT, 500 requests at once',
      unit: 'ms',
      published: ms,
      source: `${PERF_UPDATE}, appendix chart`,
      scenario: perfUpdate(preset),
      pick: (s) => s.meanTpotMs,
    }),
  ),
  perfUpdateFixedPoint(P70, 16, 25),
  perfUpdateFixedPoint(P8, 256, 31),
  perfUpdateFixedPoint(P70, 256, 15.4),
  ...sglangPoints(4).filter((p) => p.metric !== SGLANG_4_E2E.metric),
  ...sglangPoints(8),
  {
    preset: P70,
    release: '0.6.0, 10 scheduler steps',
    metric: 'request throughput, ShareGPT, 5,000 requests at once',
    unit: 'req/s',
    published: 19.04,
    source: SGLANG_060,
    scenario: shareGpt({
      preset: P70,
      count: 5_000,
      release: VLLM_060,
      means: SGLANG_SHAREGPT_MEANS,
      maxNumBatchedTokens: SGLANG_MAX_MODEL_LEN,
      ignoreEos: true,
    }),
    pick: (s) => s.requestsPerS,
  },
  ...(
    [
      [P8, 1700],
      [P70, 4200],
    ] as const
  ).map(
    ([preset, ms]): CalibrationPoint => ({
      preset,
      release: 'V1 alpha (Jan 2025)',
      metric: 'mean end-to-end latency, ShareGPT, 1 QPS',
      unit: 'ms',
      published: ms,
      source: `${V1_ALPHA}, latency-vs-QPS chart`,
      scenario: shareGpt({ preset, count: 300, ratePerS: 1 }),
      pick: (s) => s.meanE2eMs,
    }),
  ),
];

/** Error statistics of a set of replayed points. */
export interface ErrorSummary {
  points: number;
  /** Median of |relative error|. */
  medianAbs: number;
  /** Largest |relative error|. */
  worstAbs: number;
  /** Mean relative error, signed: below 0 a simulated latency is optimistic (too fast) and a throughput pessimistic. */
  meanSigned: number;
}

/** Summarises replayed points' errors. */
export function summarizeErrors(results: readonly CalibrationResult[]): ErrorSummary {
  const abs = results.map((r) => Math.abs(r.relativeError));
  return {
    points: results.length,
    medianAbs: median(abs),
    worstAbs: Math.max(...abs),
    meanSigned: mean(results.map((r) => r.relativeError)),
  };
}

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
  /** Replays already run, by scenario key; pass one Map to several calls to run each scenario once. */
  summaries = new Map<string, WorkloadSummary>(),
  /** Which draw of the scenarios' random lengths and arrivals (see {@link CalibrationScenario.run}); default 0. */
  draw = 0,
): CalibrationResult[] {
  return points.map((point) => {
    const key = draw === 0 ? point.scenario.key : `${point.scenario.key} draw ${draw}`;
    let summary = summaries.get(key);
    if (!summary) {
      summary = point.scenario.run(draw);
      summaries.set(key, summary);
    }
    const simulated = point.pick(summary);
    return { point, simulated, relativeError: simulated / point.published - 1 };
  });
}
