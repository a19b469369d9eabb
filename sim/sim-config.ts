/**
 * Resolves a simulator's engine settings: the preset gives every value, and
 * options (flags) override each one, with the checks vLLM makes at start-up
 * (context length against the KV cache and the model, token budget against
 * `max_num_seqs`).
 */
import { createSimpleCostModel, createStepCostModel, type StepCostModel } from './cost-model.js';
import type { FrontEndCosts } from './front-end.js';
import { DEFAULT_BLOCK_SIZE } from './kv-cache.js';
import { getPreset, loneDecodeStepMs, type SimPreset } from './presets.js';

/** Engine options as {@link resolveSimConfig} reads them (a subset of the server's options). */
export interface EngineSettingsInput {
  /** Preset name (default `llama-3.1-8b-h100`). */
  preset?: string;
  maxModelLen?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
  blockSize?: number;
  numGpuBlocks?: number;
  interTokenLatencyMs?: number;
  timeToFirstTokenMs?: number;
  prefillTimePerTokenMs?: number;
  costModel?: StepCostModel;
  /** The API server's costs: default the preset's with its own cost model, none otherwise; `false` for none. */
  frontEnd?: FrontEndCosts | false;
}

/** Resolved engine settings. */
export interface EngineSettings {
  preset: SimPreset;
  maxModelLen: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  blockSize: number;
  numGpuBlocks: number;
  /** True when `numGpuBlocks` was given rather than derived from the preset (vLLM's `num_gpu_blocks_override`). */
  numGpuBlocksOverridden: boolean;
  costModel: StepCostModel;
  /** Which cost model runs: the preset's fitted one, a fixed-latency one, or one passed in. */
  costModelKind: 'preset' | 'fixed-latency' | 'custom';
  /** The API server's costs, or undefined when none is simulated. */
  frontEnd: FrontEndCosts | undefined;
}

/**
 * Applies `input` over its preset. Without `maxModelLen`, the context length
 * is the model's own (the preset's native length), cut to what the KV cache
 * holds when it holds less, as vLLM does. The fixed-latency options
 * (`interTokenLatencyMs`, `timeToFirstTokenMs`, `prefillTimePerTokenMs`) switch
 * to a cost model where a decode step always takes the inter-token latency and
 * a prefill step the base plus a per-token cost, the ones not given taken from
 * the preset's lone-request values. Throws a RangeError naming the bad setting.
 */
export function resolveSimConfig(input: EngineSettingsInput): EngineSettings {
  const preset = getPreset(input.preset);
  const maxNumBatchedTokens = input.maxNumBatchedTokens ?? preset.maxNumBatchedTokens;
  // vLLM caps the default max_num_seqs at the token budget; an explicit larger value is an error.
  const maxNumSeqs = input.maxNumSeqs ?? Math.min(preset.maxNumSeqs, maxNumBatchedTokens);
  const blockSize = input.blockSize ?? DEFAULT_BLOCK_SIZE;
  const numGpuBlocks = input.numGpuBlocks ?? Math.floor(preset.kvCacheTokens / blockSize);
  // As vLLM: the model's own context length, unless the KV cache cannot hold one request that long.
  const maxModelLen = input.maxModelLen ?? Math.min(preset.nativeMaxModelLen, numGpuBlocks * blockSize);

  const positiveInt = (name: string, value: number) => {
    if (!Number.isInteger(value) || value < 1)
      throw new RangeError(`${name} must be a positive integer, got ${value}`);
  };
  positiveInt('blockSize', blockSize);
  positiveInt('numGpuBlocks', numGpuBlocks);
  positiveInt('maxModelLen', maxModelLen);
  positiveInt('maxNumSeqs', maxNumSeqs);
  positiveInt('maxNumBatchedTokens', maxNumBatchedTokens);
  if (maxModelLen > preset.nativeMaxModelLen) {
    throw new RangeError(
      `maxModelLen (${maxModelLen}) is greater than the context length of ${preset.model} (${preset.nativeMaxModelLen})`,
    );
  }
  if (maxNumBatchedTokens < maxNumSeqs) {
    throw new RangeError(
      `maxNumBatchedTokens (${maxNumBatchedTokens}) must be greater than or equal to maxNumSeqs (${maxNumSeqs})`,
    );
  }
  if (numGpuBlocks * blockSize < maxModelLen) {
    throw new RangeError(
      `the KV cache (${numGpuBlocks} blocks × ${blockSize} tokens = ${numGpuBlocks * blockSize} tokens) cannot hold one request of maxModelLen ${maxModelLen}`,
    );
  }

  const fixed =
    input.interTokenLatencyMs !== undefined ||
    input.timeToFirstTokenMs !== undefined ||
    input.prefillTimePerTokenMs !== undefined;
  let costModel: StepCostModel;
  let costModelKind: EngineSettings['costModelKind'];
  if (input.costModel) {
    costModel = input.costModel;
    costModelKind = 'custom';
  } else if (fixed) {
    costModel = createSimpleCostModel({
      interTokenLatencyMs: input.interTokenLatencyMs ?? loneDecodeStepMs(preset),
      timeToFirstTokenMs: input.timeToFirstTokenMs ?? preset.stepCost.baseMs,
      prefillTimePerTokenMs: input.prefillTimePerTokenMs ?? preset.stepCost.prefillMsPerToken,
    });
    costModelKind = 'fixed-latency';
  } else {
    costModel = createStepCostModel(preset.stepCost);
    costModelKind = 'preset';
  }
  for (const [name, value] of [
    ['interTokenLatencyMs', input.interTokenLatencyMs],
    ['timeToFirstTokenMs', input.timeToFirstTokenMs],
    ['prefillTimePerTokenMs', input.prefillTimePerTokenMs],
  ] as const) {
    if (value !== undefined && !(value >= 0)) throw new RangeError(`${name} must be >= 0, got ${value}`);
  }

  return {
    preset,
    maxModelLen,
    maxNumSeqs,
    maxNumBatchedTokens,
    blockSize,
    numGpuBlocks,
    numGpuBlocksOverridden: input.numGpuBlocks !== undefined,
    costModel,
    costModelKind,
    frontEnd:
      input.frontEnd === false
        ? undefined
        : (input.frontEnd ?? (costModelKind === 'preset' ? preset.frontEnd : undefined)),
  };
}
