/**
 * How long one engine step takes. A step runs, for every scheduled request,
 * either a chunk of prefill (prompt tokens not in the prefix cache, or the
 * recomputation of a preempted request) or one decode token. The engine
 * describes the step as a {@link StepBatch}; a cost model turns it into
 * simulated milliseconds. Models calibrated on published vLLM measurements
 * plug in here without touching the scheduler.
 */

/** What one engine step computes. */
export interface StepBatch {
  /** Requests computing prefill tokens in this step. */
  prefillRequests: number;
  /** Prefill tokens computed in this step (cached tokens excluded). */
  prefillTokens: number;
  /**
   * Sum over the step's prefill tokens of their position in their sequence
   * (cached prefix included): the quadratic attention work of prefill.
   */
  prefillAttentionPositions: number;
  /** Requests decoding one token in this step. */
  decodeRequests: number;
  /** Total context length (tokens already in the KV cache) of the decoding requests. */
  decodeContextTokens: number;
}

/** Simulated duration of a step in milliseconds (before the time scale is applied). */
export type StepCostModel = (batch: StepBatch) => number;

/** Options of {@link createSimpleCostModel}. */
export interface SimpleCostModelOptions {
  /** Duration of a step that runs any prefill, before per-token cost (ms). */
  timeToFirstTokenMs: number;
  /** Duration of a decode-only step (ms). */
  interTokenLatencyMs: number;
  /** Extra duration per prefill token computed (ms). */
  prefillTimePerTokenMs: number;
}

/**
 * The first, simple cost model: a step with prefill costs a fixed base plus a
 * cost per uncached prompt token, a decode-only step costs the inter-token
 * latency. So a lone request sees TTFT ≈ base + per-token × prompt and then one
 * token per inter-token latency, and a new prompt arriving stalls the decodes
 * sharing its step, as in vLLM.
 */
export function createSimpleCostModel(options: SimpleCostModelOptions): StepCostModel {
  const { timeToFirstTokenMs, interTokenLatencyMs, prefillTimePerTokenMs } = options;
  return (batch) => {
    if (batch.prefillRequests > 0) return timeToFirstTokenMs + prefillTimePerTokenMs * batch.prefillTokens;
    return batch.decodeRequests > 0 ? interTokenLatencyMs : 0;
  };
}

/**
 * Constants of the linear step-cost model fitted to published vLLM
 * measurements (see `presets.ts` for the values and their sources):
 *
 *     step_ms = base + prefill·P + attention·A/1e6 + decode·B + context·C/1000
 *
 * with P the step's uncached prefill tokens, A the sum of their positions in
 * their prompts (cached prefix included: the quadratic attention of prefill),
 * B the decoding sequences and C their total context in tokens.
 */
export interface StepCostConstants {
  /** Fixed cost of any step: launch, sampling, scheduler (ms). */
  baseMs: number;
  /** Per prefill token computed (ms): the GEMMs of prefill. */
  prefillMsPerToken: number;
  /** Per million prefill token-positions (ms): prefill attention, quadratic in the prompt. */
  attentionMsPerMillionPositions: number;
  /** Per decoding sequence (ms): the GEMM work one more row of the batch adds. */
  decodeMsPerSequence: number;
  /** Per thousand tokens of decode context (ms): reading the KV cache. */
  contextMsPerThousandTokens: number;
}

/** The cost model of a preset: {@link StepCostConstants} applied to a step. An empty step costs nothing. */
export function createStepCostModel(constants: StepCostConstants): StepCostModel {
  const {
    baseMs,
    prefillMsPerToken,
    attentionMsPerMillionPositions,
    decodeMsPerSequence,
    contextMsPerThousandTokens,
  } = constants;
  return (batch) => {
    if (batch.prefillRequests === 0 && batch.decodeRequests === 0) return 0;
    return (
      baseMs +
      prefillMsPerToken * batch.prefillTokens +
      (attentionMsPerMillionPositions * batch.prefillAttentionPositions) / 1e6 +
      decodeMsPerSequence * batch.decodeRequests +
      (contextMsPerThousandTokens * batch.decodeContextTokens) / 1000
    );
  };
}
