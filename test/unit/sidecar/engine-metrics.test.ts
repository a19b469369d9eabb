import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEngineMetrics } from '../../../sidecar/engine-metrics.js';
import { fixture } from '../../helpers/fixtures.js';

describe('engine metrics scrape', () => {
  it('reads the V1 gauges and cache config of a real idle vLLM', () => {
    const m = parseEngineMetrics(fixture('vllm-metrics-v1.prom'));
    assert.equal(m.numRequestsRunning, 0);
    assert.equal(m.numRequestsWaiting, 0);
    assert.equal(m.kvCacheUsagePerc, 0);
    assert.equal(m.blockSize, 16);
    assert.equal(m.numGpuBlocks, 2452);
  });

  it('reads cache config of a loaded vLLM', () => {
    const m = parseEngineMetrics(fixture('vllm-metrics-v1-loaded.prom'));
    assert.equal(m.blockSize, 4);
    assert.equal(m.numGpuBlocks, 15998);
  });

  it('sums gauges across engine cores and accepts the V0 cache name', () => {
    const text = [
      '# HELP vllm:num_requests_running Number of requests in model execution batches.',
      '# TYPE vllm:num_requests_running gauge',
      'vllm:num_requests_running{engine="0",model_name="m"} 3.0',
      'vllm:num_requests_running{engine="1",model_name="m"} 4.0',
      'vllm:num_requests_waiting{engine="0",model_name="m"} 2.0',
      'vllm:gpu_cache_usage_perc{model_name="m"} 0.5',
    ].join('\n');
    assert.deepEqual(parseEngineMetrics(text), {
      numRequestsRunning: 7,
      numRequestsWaiting: 2,
      kvCacheUsagePerc: 0.5,
    });
  });

  it('reads SGLang names', () => {
    const m = parseEngineMetrics(fixture('sglang-metrics.prom'));
    assert.equal(typeof m.numRequestsRunning, 'number');
    assert.equal(typeof m.kvCacheUsagePerc, 'number');
  });
});
