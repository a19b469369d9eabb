import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StepBatch } from './cost-model.js';
import { getPreset, SIM_PRESETS } from './presets.js';
import { resolveSimConfig } from './sim-config.js';

const decode = (sequences: number): StepBatch => ({
  prefillRequests: 0,
  prefillTokens: 0,
  prefillAttentionPositions: 0,
  decodeRequests: sequences,
  decodeContextTokens: sequences * 1000,
});

describe('sim config', () => {
  it('takes every engine value from the preset, the 8B one by default', () => {
    const config = resolveSimConfig({});
    const preset = getPreset('llama-3.1-8b-h100');
    assert.equal(config.preset, preset);
    assert.equal(config.maxModelLen, 131_072, "the model's own context length");
    assert.equal(config.maxNumSeqs, preset.maxNumSeqs);
    assert.equal(config.maxNumBatchedTokens, preset.maxNumBatchedTokens);
    assert.equal(config.blockSize, 16);
    assert.equal(config.numGpuBlocks, 26_300);
    assert.equal(config.numGpuBlocksOverridden, false);
    assert.equal(config.costModelKind, 'preset');
  });

  it('lets options override each value, and scales the block count with the block size', () => {
    const config = resolveSimConfig({
      preset: 'llama-3.1-70b-4xh100',
      maxModelLen: 32_768,
      maxNumSeqs: 64,
      maxNumBatchedTokens: 2048,
      blockSize: 32,
    });
    assert.equal(config.preset.name, 'llama-3.1-70b-4xh100');
    assert.equal(config.maxNumSeqs, 64);
    assert.equal(config.maxNumBatchedTokens, 2048);
    assert.equal(config.numGpuBlocks, Math.floor(getPreset('llama-3.1-70b-4xh100').kvCacheTokens / 32));
    const overridden = resolveSimConfig({ numGpuBlocks: 1000 });
    assert.equal(overridden.numGpuBlocks, 1000);
    assert.equal(overridden.numGpuBlocksOverridden, true);
  });

  it("defaults max_model_len to the model's own, cut to what the KV cache holds", () => {
    assert.equal(resolveSimConfig({ preset: 'llama-3.1-70b-4xh100' }).maxModelLen, 131_072);
    assert.equal(resolveSimConfig({ numGpuBlocks: 1000 }).maxModelLen, 16_000);
    assert.equal(resolveSimConfig({ maxModelLen: 4096 }).maxModelLen, 4096);
  });

  it("runs the preset's front end with the preset's cost model only", () => {
    assert.deepEqual(resolveSimConfig({}).frontEnd, getPreset().frontEnd);
    assert.equal(resolveSimConfig({ interTokenLatencyMs: 5 }).frontEnd, undefined);
    assert.equal(resolveSimConfig({ costModel: () => 1 }).frontEnd, undefined);
    assert.equal(resolveSimConfig({ frontEnd: false }).frontEnd, undefined);
  });

  it('caps the default max_num_seqs at the token budget, as vLLM does', () => {
    assert.equal(resolveSimConfig({ maxNumBatchedTokens: 512 }).maxNumSeqs, 512);
  });

  it('switches to fixed latencies when one is given, the others from the preset', () => {
    const config = resolveSimConfig({ interTokenLatencyMs: 5 });
    assert.equal(config.costModelKind, 'fixed-latency');
    // A decode step takes the inter-token latency whatever the batch.
    assert.equal(config.costModel(decode(1)), 5);
    assert.equal(config.costModel(decode(200)), 5);
    const preset = resolveSimConfig({});
    assert.ok(preset.costModel(decode(200)) > preset.costModel(decode(1)));
    const custom = resolveSimConfig({ costModel: () => 42 });
    assert.equal(custom.costModelKind, 'custom');
    assert.equal(custom.costModel(decode(1)), 42);
  });

  it('refuses what vLLM refuses at start-up', () => {
    assert.throws(() => resolveSimConfig({ preset: 'gpt-9' }), /unknown preset "gpt-9"; known presets: /);
    assert.throws(() => resolveSimConfig({ maxModelLen: 200_000 }), /greater than the context length/);
    assert.throws(
      () => resolveSimConfig({ maxNumSeqs: 300, maxNumBatchedTokens: 256 }),
      /maxNumBatchedTokens \(256\) must be greater than or equal to maxNumSeqs \(300\)/,
    );
    assert.throws(() => resolveSimConfig({ numGpuBlocks: 10, maxModelLen: 1024 }), /cannot hold one request/);
    assert.throws(() => resolveSimConfig({ blockSize: 0 }), /blockSize must be a positive integer/);
    assert.throws(() => resolveSimConfig({ interTokenLatencyMs: -1 }), /interTokenLatencyMs must be >= 0/);
  });

  it('cites a source for every preset', () => {
    for (const preset of Object.values(SIM_PRESETS)) {
      assert.ok(preset.sources.length >= 3, preset.name);
      for (const source of preset.sources) assert.ok(source.what && source.where, preset.name);
    }
  });
});
