import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createStepCostModel, type StepBatch } from './cost-model.js';
import { getPreset } from './presets.js';

const step = (batch: Partial<StepBatch>): StepBatch => ({
  prefillRequests: 0,
  prefillTokens: 0,
  prefillAttentionPositions: 0,
  decodeRequests: 0,
  decodeContextTokens: 0,
  ...batch,
});

const prefill = (tokens: number, cachedPrefix = 0) =>
  step({
    prefillRequests: 1,
    prefillTokens: tokens,
    prefillAttentionPositions: tokens * cachedPrefix + (tokens * (tokens - 1)) / 2,
  });

describe('step cost model', () => {
  const cost = createStepCostModel(getPreset('llama-3.1-8b-h100').stepCost);

  it('costs nothing for an empty step', () => {
    assert.equal(cost(step({})), 0);
  });

  it('makes decode steps slower with more sequences and more context, by less than linearly per sequence', () => {
    const one = cost(step({ decodeRequests: 1, decodeContextTokens: 1000 }));
    const eight = cost(step({ decodeRequests: 8, decodeContextTokens: 8000 }));
    const many = cost(step({ decodeRequests: 256, decodeContextTokens: 256_000 }));
    const longContext = cost(step({ decodeRequests: 8, decodeContextTokens: 160_000 }));
    assert.ok(one < eight && eight < many);
    assert.ok(eight < longContext);
    // Batching pays: 256 sequences cost far less than 256 single steps.
    assert.ok(many < 256 * one * 0.2);
  });

  it('makes prefill grow faster than linearly with the prompt (attention)', () => {
    const short = cost(prefill(1000));
    const long = cost(prefill(8000));
    assert.ok(long > 8 * (short - cost(prefill(1))));
  });

  it('charges a cached prefix only through the attention of the new tokens', () => {
    const cold = cost(prefill(4096));
    const warm = cost(prefill(16, 4080));
    const tiny = cost(prefill(16));
    assert.ok(warm < cold / 5);
    assert.ok(warm > tiny);
  });
});
