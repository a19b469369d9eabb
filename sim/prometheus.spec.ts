import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildOneTwoFiveBuckets,
  createExpositionWriter,
  createHistogram,
  formatPromValue,
  pythonFloatRepr,
} from './prometheus.js';

describe('prometheus text', () => {
  it('formats numbers as prometheus_client does', () => {
    assert.equal(formatPromValue(0), '0.0');
    assert.equal(formatPromValue(26), '26.0');
    assert.equal(formatPromValue(0.025), '0.025');
    assert.equal(formatPromValue(2560), '2560.0');
    assert.equal(formatPromValue(3675428), '3.675428e+06');
    assert.equal(formatPromValue(1762438423.0434499), '1.7624384230434499e+09');
    assert.equal(formatPromValue(Number.POSITIVE_INFINITY), '+Inf');
    assert.equal(pythonFloatRepr(0.00001), '1e-05');
    assert.equal(pythonFloatRepr(1e16), '1e+16');
    assert.equal(pythonFloatRepr(0.1 + 0.2), '0.30000000000000004');
  });

  it('builds vLLM 1-2-5 buckets up to the limit', () => {
    assert.deepEqual(buildOneTwoFiveBuckets(100), [1, 2, 5, 10, 20, 50, 100]);
    assert.equal(buildOneTwoFiveBuckets(32768).at(-1), 20000);
  });

  it('writes cumulative histogram lines with sorted labels', () => {
    const h = createHistogram([0.1, 1]);
    h.observe(0.05);
    h.observe(0.5);
    h.observe(5);
    const w = createExpositionWriter();
    w.family('x_seconds', 'histogram', 'Help.');
    w.histogram('x_seconds', { model_name: 'm', engine: '0' }, h);
    assert.equal(
      w.text(),
      [
        '# HELP x_seconds Help.',
        '# TYPE x_seconds histogram',
        'x_seconds_bucket{engine="0",le="0.1",model_name="m"} 1.0',
        'x_seconds_bucket{engine="0",le="1.0",model_name="m"} 2.0',
        'x_seconds_bucket{engine="0",le="+Inf",model_name="m"} 3.0',
        'x_seconds_count{engine="0",model_name="m"} 3.0',
        'x_seconds_sum{engine="0",model_name="m"} 5.55',
        '',
      ].join('\n'),
    );
  });
});
