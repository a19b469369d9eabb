/**
 * Presets: a model on a GPU setup, as the simulator's defaults. Each preset
 * holds the step-cost constants, batching limits, KV-cache capacity and load
 * time of vLLM serving that model, fitted to published measurements; the
 * sources are listed with each value. `test/sim-calibration.test.ts` replays
 * the published points against the preset and holds each within ±10 %.
 */
import type { StepCostConstants } from './cost-model.js';
import type { FrontEndCosts } from './front-end.js';

/** A source a preset value comes from. */
export interface PresetSource {
  /** What the source measured, and which value here it supports. */
  what: string;
  /** Where it was published. */
  where: string;
}

/** Everything a preset fixes. Flags override each value. */
export interface SimPreset {
  /** Preset name, as `--preset` takes it. */
  readonly name: string;
  readonly description: string;
  /** The model vLLM would serve (`--model`), reported as `root` by `/v1/models`. */
  readonly model: string;
  readonly stepCost: Readonly<StepCostConstants>;
  /** The API server's CPU cost per request and per streamed token (`front-end.ts`). */
  readonly frontEnd: Readonly<FrontEndCosts>;
  /** The vLLM release the step costs describe. */
  readonly vllmVersion: string;
  /** vLLM's `max_num_seqs` default on this GPU class. */
  readonly maxNumSeqs: number;
  /** vLLM's `max_num_batched_tokens` default for the API server on this GPU class. */
  readonly maxNumBatchedTokens: number;
  /** KV-cache capacity in tokens at `gpu_memory_utilization` 0.9; blocks = this ÷ block size. */
  readonly kvCacheTokens: number;
  /** The model's own context length (vLLM's `max_model_len` when the flag is absent). */
  readonly nativeMaxModelLen: number;
  /** Measured time from process start to a 200 on `/health` (warm page cache). */
  readonly loadDelayMs: number;
  readonly sources: readonly PresetSource[];
}

/** The calibration notes all presets rest on (relative to the repository root). */
export const CALIBRATION_NOTES = 'sim/calibration-data.md';

/**
 * The releases the presets' step costs were fitted on: vLLM V1, 0.19.1 (8B)
 * and 0.20.2 (70B). Older releases are slower per step (0.6.0 markedly so).
 */
const VLLM_VERSION = 'V1, 0.19–0.20';

/**
 * The API server's costs; one Python process whatever the model, so both
 * presets share them. `outputTokenMs` is the independent BLIS simulator's fit
 * (≈46 µs per streamed token); `requestMs` is fitted on the mean TTFT of the
 * saturated ShareGPT chat run of vLLM pull 18566 (1,000 requests at once,
 * Llama-3.1-8B), replayed with that release's intake in four passes of the
 * API server's event loop (`VLLM_V1_MAY_2025` in `calibration.ts`). The
 * presets take a request in in one pass: a burst of thousands taken in in
 * lockstep contradicts two fitted saturation throughputs of V1 (see
 * `calibration-data.md` §16).
 */
const FRONT_END: FrontEndCosts = { requestMs: 8.1, outputTokenMs: 0.046 };

const LLAMA_8B_H100: SimPreset = {
  name: 'llama-3.1-8b-h100',
  description: 'Llama-3.1-8B-Instruct, BF16, one H100 80 GB, vLLM V1 0.19–0.20',
  model: 'meta-llama/Llama-3.1-8B-Instruct',
  stepCost: {
    baseMs: 6.4,
    prefillMsPerToken: 0.023,
    attentionMsPerMillionPositions: 0.9,
    decodeMsPerSequence: 0.04,
    contextMsPerThousandTokens: 0.044,
  },
  frontEnd: FRONT_END,
  vllmVersion: VLLM_VERSION,
  maxNumSeqs: 1024,
  maxNumBatchedTokens: 8192,
  kvCacheTokens: 26_300 * 16,
  nativeMaxModelLen: 131_072,
  loadDelayMs: 32_000,
  sources: [
    {
      what: 'baseMs and contextMsPerThousandTokens: batch-1 ITL = 6.44 ms + 4.37e-5 ms × context (vLLM 0.19.1, FA3); median ITL 15.18 ms at concurrency 8 × ~20K context',
      where: 'blog.vllm.ai/2026/04/22/fp8-kvcache.html, Fig. 2 and Table 4',
    },
    {
      what: 'prefillMsPerToken and attentionMsPerMillionPositions: batch-1 TTFT 264…6844 ms for 10K…100K-token prompts; ≈44K prompt tok/s for 512-token prefill-only requests',
      where: 'blog.vllm.ai/2026/01/08/kv-offloading-connector.html, Fig. 1 and 2',
    },
    {
      what: 'decodeMsPerSequence (estimate): TPOT growth with load on ShareGPT (vLLM 0.6.0) and 25.6 ms TPOT at 256 sequences',
      where: 'blog.vllm.ai/2024/09/05/perf-update.html; LambdaLabsML/vllm-benchmark benchmark_v0.md',
    },
    {
      what: 'maxNumSeqs 1024 and maxNumBatchedTokens 8192: API-server defaults on ≥70 GiB GPUs',
      where: 'vllm-project/vllm, vllm/engine/arg_utils.py',
    },
    {
      what: 'kvCacheTokens: 51.38 GiB of KV cache at gpu_memory_utilization 0.9 ÷ 128 KiB per token ≈ 26,300 blocks',
      where: 'llm-d/llm-d-benchmark, config_explorer/empirical-vllm-memory-results.md',
    },
    {
      what: "frontEnd: 8.1 ms per request fitted on the mean TTFT (9,626 ms) of 1,000 ShareGPT chat requests sent at once to Llama-3.1-8B; replayed with its intake in 4 passes of the event loop, read from that release's API server code; 0.046 ms per streamed token from the fit of the BLIS simulator",
      where:
        'github.com/vllm-project/vllm/pull/18566; vllm/entrypoints/utils.py (with_cancellation), vllm/entrypoints/openai/serving_engine.py (tokenizer executor); inference-sim/inference-sim defaults.yaml (see sim/calibration-data.md)',
    },
    {
      what: 'loadDelayMs: ≈32.3–32.5 s to ready with a warm page cache (vLLM 0.9.0.1, H100 NVL)',
      where: 'skprasadu/sllm-vllm-faststart, benchmarks/README.md',
    },
  ],
};

const LLAMA_70B_4XH100: SimPreset = {
  name: 'llama-3.1-70b-4xh100',
  description: 'Llama-3.1-70B-Instruct, BF16, four H100 80 GB (tensor parallel 4), vLLM V1 0.20',
  model: 'meta-llama/Llama-3.1-70B-Instruct',
  stepCost: {
    baseMs: 16.0,
    prefillMsPerToken: 0.065,
    attentionMsPerMillionPositions: 1.1,
    decodeMsPerSequence: 0.05,
    contextMsPerThousandTokens: 0.027,
  },
  frontEnd: FRONT_END,
  vllmVersion: VLLM_VERSION,
  maxNumSeqs: 1024,
  maxNumBatchedTokens: 8192,
  kvCacheTokens: 420_208,
  nativeMaxModelLen: 131_072,
  loadDelayMs: 165_000,
  sources: [
    {
      what: 'baseMs, decodeMsPerSequence, contextMsPerThousandTokens: mean TPOT ≈19.7 / ≈46.6 / ≈60.2 ms at 2 / 8 / inf req/s, 1024 in / 512 out, and ≈3,080 output tok/s at inf (Llama-3.3-70B BF16, vLLM 0.20.2)',
      where: 'blog.vllm.ai/2026/05/11/turboquant.html, Fig. 1, 12 and 14',
    },
    {
      what: 'prefillMsPerToken and attentionMsPerMillionPositions: the 8B values scaled by per-GPU FLOPs (141 vs 16 GFLOP per token over 4 GPUs) plus all-reduce gives 0.055 ms/token, the 0.6.0 prefill-heavy run ≈11.6K prompt tok/s bounds it at ≈0.086; 0.065 fits the 0.20.2 rate-inf throughput and TPOT together',
      where: 'blog.vllm.ai/2024/09/05/perf-update.html; blog.vllm.ai/2026/05/11/turboquant.html',
    },
    {
      what: 'kvCacheTokens: 420,208 tokens of KV cache (32.06 GiB per GPU)',
      where: 'LMCache docs FAQ table (github.com/LMCache/LMCache/pull/1769)',
    },
    {
      what: 'maxNumSeqs 1024 and maxNumBatchedTokens 8192: API-server defaults on ≥70 GiB GPUs',
      where: 'vllm-project/vllm, vllm/engine/arg_utils.py',
    },
    {
      what: "frontEnd: 8.1 ms per request fitted on the mean TTFT (9,626 ms) of 1,000 ShareGPT chat requests sent at once to Llama-3.1-8B; replayed with its intake in 4 passes of the event loop, read from that release's API server code; 0.046 ms per streamed token from the fit of the BLIS simulator",
      where:
        'github.com/vllm-project/vllm/pull/18566; vllm/entrypoints/utils.py (with_cancellation), vllm/entrypoints/openai/serving_engine.py (tokenizer executor); inference-sim/inference-sim defaults.yaml (see sim/calibration-data.md)',
    },
    {
      what: 'loadDelayMs (estimate): 70B FP8 over 2 GPUs loads in 117 s, plus compile and graph capture',
      where:
        'llm-d/llm-d-benchmark, config_explorer/empirical-vllm-memory-results.md; vllm-project/vllm pull 11005',
    },
  ],
};

/** The presets by name. */
export const SIM_PRESETS: Readonly<Record<string, SimPreset>> = Object.freeze({
  [LLAMA_8B_H100.name]: LLAMA_8B_H100,
  [LLAMA_70B_4XH100.name]: LLAMA_70B_4XH100,
});

/** The preset used when none is named. */
export const DEFAULT_PRESET_NAME = LLAMA_8B_H100.name;

/** The preset called `name`; throws a RangeError listing the known names otherwise. */
export function getPreset(name: string = DEFAULT_PRESET_NAME): SimPreset {
  const preset = SIM_PRESETS[name];
  if (!preset) {
    throw new RangeError(`unknown preset "${name}"; known presets: ${Object.keys(SIM_PRESETS).join(', ')}`);
  }
  return preset;
}

/**
 * The time a decode-only step of one sequence with a short context takes:
 * the inter-token latency of a lone request under the preset.
 */
export function loneDecodeStepMs(preset: SimPreset): number {
  return preset.stepCost.baseMs + preset.stepCost.decodeMsPerSequence;
}
