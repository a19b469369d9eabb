import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRandom } from '../common/random.js';
import { createSimpleCostModel } from './cost-model.js';
import {
  median,
  percentile,
  poissonArrivals,
  runWorkload,
  summarizeWorkload,
  uniquePrompt,
} from './workload.js';

// 20 ms per prefill step, 10 ms per decode step, whatever the batch.
const fixed = createSimpleCostModel({
  timeToFirstTokenMs: 20,
  interTokenLatencyMs: 10,
  prefillTimePerTokenMs: 0,
});

describe('workload replay', () => {
  it('measures TTFT, TPOT and throughput in simulated time', () => {
    const result = runWorkload({ costModel: fixed, requests: [{ promptTokens: 100, outputTokens: 11 }] });
    const summary = summarizeWorkload(result);
    assert.equal(summary.meanTtftMs, 20);
    assert.equal(summary.meanTpotMs, 10);
    assert.equal(summary.medianItlMs, 10);
    assert.equal(result.durationMs, 120);
    assert.equal(summary.outputTokensPerS, 11 / 0.12);
  });

  it('keeps N requests in flight in a closed loop', () => {
    const requests = Array.from({ length: 6 }, () => ({ promptTokens: 10, outputTokens: 5 }));
    const result = runWorkload({ costModel: fixed, requests, concurrency: 2 });
    // Three waves of two: each wave 20 + 4 × 10 ms.
    assert.equal(result.durationMs, 3 * 60);
    assert.deepEqual(
      result.requests.map((r) => r.arrivalMs),
      [0, 0, 60, 60, 120, 120],
    );
  });

  it('adds an older release CPU overhead to every step that runs, before any factor', () => {
    const requests = [
      { arrivalMs: 0, promptTokens: 100, outputTokens: 11 },
      // Arrives after the first has finished: the idle gap between them costs nothing.
      { arrivalMs: 1000, promptTokens: 100, outputTokens: 1 },
    ];
    const plain = runWorkload({ costModel: fixed, requests });
    const slow = runWorkload({ costModel: fixed, requests, stepOverheadMs: 2 });
    const both = runWorkload({ costModel: fixed, requests, stepOverheadMs: 2, stepCostFactor: 1.5 });
    // 1 prefill step and 10 decode steps, then one prefill step.
    assert.equal(plain.steps, 12);
    assert.deepEqual(
      [plain, slow, both].map((r) => r.requests.map((q) => q.finishMs - q.arrivalMs)),
      [
        [120, 20],
        [120 + 11 * 2, 20 + 2],
        [(120 + 11 * 2) * 1.5, (20 + 2) * 1.5],
      ],
    );
  });

  it('sends open-loop requests at their arrival times', () => {
    const result = runWorkload({
      costModel: fixed,
      requests: [
        { arrivalMs: 0, promptTokens: 10, outputTokens: 1 },
        { arrivalMs: 500, promptTokens: 10, outputTokens: 1 },
      ],
    });
    assert.deepEqual(
      result.requests.map((r) => [r.arrivalMs, r.firstTokenMs]),
      [
        [0, 20],
        [500, 520],
      ],
    );
  });

  it('builds prompts that share no block, and Poisson arrivals at the asked rate', () => {
    assert.notDeepEqual(uniquePrompt(1, 32).slice(0, 16), uniquePrompt(2, 32).slice(0, 16));
    const arrivals = poissonArrivals(4000, 8, createRandom(1));
    const rate = arrivals.length / (arrivals.at(-1)! / 1000);
    assert.ok(Math.abs(rate - 8) < 0.5, `rate ${rate}`);
    assert.deepEqual(poissonArrivals(5, 8, createRandom(1)), poissonArrivals(5, 8, createRandom(1)));
    assert.equal(median([3, 1, 2, 10]), 2.5);
  });

  it('takes percentiles as numpy does, between the two nearest ranks', () => {
    // np.percentile([3, 1, 2, 10], 99) = 3 + 0.97 × (10 − 3); its 50th is the median.
    assert.ok(Math.abs(percentile([3, 1, 2, 10], 99) - 9.79) < 1e-9);
    assert.equal(percentile([3, 1, 2, 10], 50), median([3, 1, 2, 10]));
    assert.equal(percentile([5], 99), 5);
    assert.ok(Number.isNaN(percentile([], 99)));
    // A replay's summary: 99 requests alone (TTFT 20 ms) and one arriving 5 ms into the last one's
    // prefill step, which waits for it and then takes a step of its own (TTFT 15 + 20 ms).
    const requests = Array.from({ length: 100 }, (_, i) => ({
      arrivalMs: i === 99 ? 98_005 : i * 1000,
      promptTokens: 10,
      outputTokens: 2,
    }));
    const s = summarizeWorkload(runWorkload({ costModel: fixed, requests }));
    assert.equal(s.medianTtftMs, 20);
    assert.ok(Math.abs(s.p99TtftMs - (20 + 0.01 * 15)) < 1e-9, `P99 TTFT ${s.p99TtftMs}`);
  });
});
