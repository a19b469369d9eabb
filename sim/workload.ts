/**
 * Replays a benchmark workload against the simulated engine on a manual
 * clock, the way `vllm bench serve` drives a server: requests arrive at given
 * times (open loop, e.g. a Poisson rate) or are kept N in flight (closed loop,
 * `--max-concurrency N`). The result has the numbers vLLM's benchmark prints
 * (TTFT, TPOT, ITL, throughput), in simulated time, so calibration checks and
 * capacity estimates are deterministic and take no wall time.
 */
import type { StepCostModel } from './cost-model.js';
import { createStepCostModel } from './cost-model.js';
import { createEngine, type EngineObserver } from './engine.js';
import type { FrontEndCosts } from './front-end.js';
import { createKvCacheManager, DEFAULT_BLOCK_SIZE } from './kv-cache.js';
import { createManualClock } from './manual-clock.js';
import { getPreset, type SimPreset } from './presets.js';

/** One request of a workload. */
export interface WorkloadRequest {
  /** Arrival time in ms (open loop only; default 0). */
  arrivalMs?: number;
  promptTokens: number;
  /** Output tokens; the request always runs to this length (`ignore_eos`). */
  outputTokens: number;
  /** The prompt's token ids; by default a prompt that shares no block with any other request. */
  promptTokenIds?: readonly number[];
}

/** Options of {@link runWorkload}. */
export interface WorkloadOptions {
  /** The engine's preset (default: the default preset). */
  preset?: SimPreset;
  requests: readonly WorkloadRequest[];
  /** Closed loop: this many requests in flight, the next sent when one finishes. Absent: open loop. */
  concurrency?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  numGpuBlocks?: number;
  blockSize?: number;
  enablePrefixCaching?: boolean;
  /** Replaces the preset's cost model (and then runs without a front end unless `frontEnd` is given). */
  costModel?: StepCostModel;
  /** The API server's costs: default the preset's; `false` for none (an offline `LLM`, or the engine alone). */
  frontEnd?: FrontEndCosts | false;
  /** Multiplies every step's cost; default 1. */
  stepCostFactor?: number;
  /**
   * CPU time added to every step that runs anything (ms), before the factor:
   * an older vLLM release's scheduling and input preparation, during which
   * the GPU waits (see `ReleaseProfile` in `calibration.ts`); default 0.
   */
  stepOverheadMs?: number;
  /** vLLM 0.6's multi-step scheduling (see `EngineOptions.numSchedulerSteps`); default 1. */
  numSchedulerSteps?: number;
  /** vLLM V0 without chunked prefill (see `EngineOptions.separatePrefillSteps`); default false. */
  separatePrefillSteps?: boolean;
  /** vLLM V0's asynchronous output processor (see `EngineOptions.asyncOutputProcessing`); default false. */
  asyncOutputProcessing?: boolean;
}

/** Timings of one finished request, in simulated ms. */
export interface RequestResult {
  arrivalMs: number;
  firstTokenMs: number;
  finishMs: number;
  promptTokens: number;
  outputTokens: number;
  cachedTokens: number;
}

/** What a replay measured. */
export interface WorkloadResult {
  requests: RequestResult[];
  /** Every inter-token gap of every request as its client saw it (ms). */
  interTokenLatenciesMs: number[];
  /** From the first arrival to the last token (ms). */
  durationMs: number;
  numPreemptions: number;
  /** Engine steps run. */
  steps: number;
}

/** Unique per-request token ids start here, above any vocabulary, so prompts never share a block by chance. */
const UNIQUE_TOKEN_BASE = 1_000_000;

/** Runs `options.requests` to completion on a fresh engine and manual clock. */
export function runWorkload(options: WorkloadOptions): WorkloadResult {
  const preset = options.preset ?? getPreset();
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const clock = createManualClock(0);
  let steps = 0;
  const interTokenLatenciesMs: number[] = [];
  const observer: EngineObserver = {
    onStep: () => {
      steps++;
    },
  };
  const frontEnd =
    options.frontEnd === false
      ? undefined
      : (options.frontEnd ?? (options.costModel ? undefined : preset.frontEnd));
  const baseCost = options.costModel ?? createStepCostModel(preset.stepCost);
  const overheadMs = options.stepOverheadMs ?? 0;
  const costModel: StepCostModel =
    overheadMs === 0
      ? baseCost
      : (batch) => {
          const ms = baseCost(batch);
          return ms === 0 ? 0 : ms + overheadMs;
        };
  const engine = createEngine({
    clock,
    kvCache: createKvCacheManager({
      numBlocks: options.numGpuBlocks ?? Math.floor(preset.kvCacheTokens / blockSize),
      blockSize,
      enablePrefixCaching: options.enablePrefixCaching ?? true,
    }),
    costModel,
    maxNumSeqs: options.maxNumSeqs ?? preset.maxNumSeqs,
    maxNumBatchedTokens: options.maxNumBatchedTokens ?? preset.maxNumBatchedTokens,
    timeScale: 1,
    stepTimeFactor: options.stepCostFactor === undefined ? undefined : () => options.stepCostFactor!,
    frontEnd,
    numSchedulerSteps: options.numSchedulerSteps,
    separatePrefillSteps: options.separatePrefillSteps,
    asyncOutputProcessing: options.asyncOutputProcessing,
    observer,
  });

  const results: RequestResult[] = [];
  let next = 0;
  const submit = (index: number) => {
    const spec = options.requests[index]!;
    const arrivalMs = clock.now();
    let firstTokenMs = Number.NaN;
    let lastTokenMs = Number.NaN;
    let cachedTokens = 0;
    engine.submit(
      {
        id: `req-${index}`,
        promptTokenIds: spec.promptTokenIds ?? uniquePrompt(index, spec.promptTokens),
        maxTokens: spec.outputTokens,
        nextToken: (i) => UNIQUE_TOKEN_BASE / 2 + i,
      },
      {
        onToken(output) {
          const now = clock.now();
          if (output.index === 0) {
            firstTokenMs = now;
            cachedTokens = output.numCachedTokens;
          } else if (now > lastTokenMs) {
            // Tokens arriving together came in one streamed chunk: the benchmark counts one gap per chunk.
            interTokenLatenciesMs.push(now - lastTokenMs);
          }
          lastTokenMs = now;
          if (output.finishReason === null) return;
          results.push({
            arrivalMs,
            firstTokenMs,
            finishMs: clock.now(),
            promptTokens: spec.promptTokenIds?.length ?? spec.promptTokens,
            outputTokens: output.index + 1,
            cachedTokens,
          });
          if (options.concurrency !== undefined && next < options.requests.length) submit(next++);
        },
      },
    );
  };

  if (options.concurrency !== undefined) {
    while (next < Math.min(options.concurrency, options.requests.length)) submit(next++);
  } else {
    options.requests.forEach((r, i) => {
      clock.schedule(r.arrivalMs ?? 0, () => submit(i));
    });
  }
  clock.runAll(100_000_000);
  const { numPreemptions } = engine.snapshot();
  engine.shutdown();
  if (results.length !== options.requests.length) {
    throw new Error(`workload ended with ${results.length} of ${options.requests.length} requests finished`);
  }
  const start = Math.min(
    ...options.requests.map((r) => (options.concurrency === undefined ? (r.arrivalMs ?? 0) : 0)),
  );
  const end = Math.max(...results.map((r) => r.finishMs));
  return { requests: results, interTokenLatenciesMs, durationMs: end - start, numPreemptions, steps };
}

/** A prompt of `length` tokens whose first token is unique to `index`, so it shares no block with another. */
export function uniquePrompt(index: number, length: number): number[] {
  const ids = new Array<number>(length);
  ids[0] = UNIQUE_TOKEN_BASE + index;
  for (let i = 1; i < length; i++) ids[i] = 256 + (i % 100_000);
  return ids;
}

/** The summary `vllm bench serve` prints, from a {@link WorkloadResult}. */
export interface WorkloadSummary {
  requestsPerS: number;
  outputTokensPerS: number;
  promptTokensPerS: number;
  meanTtftMs: number;
  medianTtftMs: number;
  p99TtftMs: number;
  /** Mean from sending a request to its last token. */
  meanE2eMs: number;
  medianE2eMs: number;
  /** Mean over requests of (latency − TTFT) / (output tokens − 1). */
  meanTpotMs: number;
  medianTpotMs: number;
  p99TpotMs: number;
  meanItlMs: number;
  medianItlMs: number;
  p99ItlMs: number;
}

/** Summarises a replay the way vLLM's benchmark does. */
export function summarizeWorkload(result: WorkloadResult): WorkloadSummary {
  const seconds = result.durationMs / 1000;
  const ttfts = result.requests.map((r) => r.firstTokenMs - r.arrivalMs);
  const tpots = result.requests
    .filter((r) => r.outputTokens > 1)
    .map((r) => (r.finishMs - r.firstTokenMs) / (r.outputTokens - 1));
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  return {
    requestsPerS: result.requests.length / seconds,
    outputTokensPerS: sum(result.requests.map((r) => r.outputTokens)) / seconds,
    promptTokensPerS: sum(result.requests.map((r) => r.promptTokens)) / seconds,
    meanTtftMs: mean(ttfts),
    medianTtftMs: median(ttfts),
    p99TtftMs: percentile(ttfts, 99),
    meanE2eMs: mean(result.requests.map((r) => r.finishMs - r.arrivalMs)),
    medianE2eMs: median(result.requests.map((r) => r.finishMs - r.arrivalMs)),
    meanTpotMs: mean(tpots),
    medianTpotMs: median(tpots),
    p99TpotMs: percentile(tpots, 99),
    meanItlMs: mean(result.interTokenLatenciesMs),
    medianItlMs: median(result.interTokenLatenciesMs),
    p99ItlMs: percentile(result.interTokenLatenciesMs, 99),
  };
}

/** Arithmetic mean (NaN for no values). */
export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Median, numpy-style (mean of the middle two for an even count; NaN for no values). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * The `p`th percentile (0–100), numpy-style as `vllm bench serve` takes it
 * (`np.percentile`: linear between the two nearest ranks; NaN for no values).
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = ((sorted.length - 1) * p) / 100;
  const below = Math.floor(rank);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below]! + (sorted[above]! - sorted[below]!) * (rank - below);
}

/** Arrival times (ms) of `count` requests at `ratePerS` on average, Poisson as in `vllm bench serve --request-rate`. */
export function poissonArrivals(count: number, ratePerS: number, random: () => number): number[] {
  const times: number[] = [];
  let t = 0;
  for (let i = 0; i < count; i++) {
    times.push(t);
    t += (-Math.log(1 - random()) / ratePerS) * 1000;
  }
  return times;
}
