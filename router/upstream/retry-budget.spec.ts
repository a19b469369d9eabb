import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRetryBudget } from './retry-budget.js';

describe('retry budget', () => {
  it('allows retries up to the ratio of requests, with a floor', () => {
    let t = 0;
    const budget = createRetryBudget({ ratio: 0.2, min_retries: 3, window_ms: 10_000 }, () => t);
    // The floor holds with no traffic.
    assert.deepEqual(
      [1, 2, 3, 4].map(() => budget.tryRetry()),
      [true, true, true, false],
    );
    for (let i = 0; i < 100; i++) budget.recordRequest();
    let granted = 0;
    for (let i = 0; i < 100; i++) if (budget.tryRetry()) granted++;
    assert.equal(granted, 20 - 3, '20% of 100 requests, 3 already spent');
    assert.deepEqual(budget.usage(), { requests: 100, retries: 20, allowed: 20 });
    // The window slides: old requests and retries age out.
    t += 10_000;
    assert.deepEqual(budget.usage(), { requests: 0, retries: 0, allowed: 3 });
    assert.equal(budget.tryRetry(), true);
  });

  it('ratio 0 with floor 0 never retries', () => {
    const budget = createRetryBudget({ ratio: 0, min_retries: 0, window_ms: 1000 }, () => 0);
    for (let i = 0; i < 10; i++) budget.recordRequest();
    assert.equal(budget.tryRetry(), false);
  });
});
