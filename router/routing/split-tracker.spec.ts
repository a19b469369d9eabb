import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSplitTracker } from './split-tracker.js';

describe('observed split', () => {
  it('reports shares over a sliding window', () => {
    let t = 0;
    const s = createSplitTracker(60_000, () => t);
    assert.deepEqual(s.shares('m'), {});
    for (let i = 0; i < 90; i++) s.record('m', 'v1');
    for (let i = 0; i < 10; i++) s.record('m', 'v2');
    assert.deepEqual(s.shares('m'), { v1: 0.9, v2: 0.1 });
    t += 30_000;
    for (let i = 0; i < 100; i++) s.record('m', 'v2');
    assert.deepEqual(s.shares('m'), { v1: 0.45, v2: 0.55 });
    t += 40_000; // the first 100 aged out
    assert.deepEqual(s.shares('m'), { v2: 1 });
    assert.equal(s.total('m'), 100);
  });
});
