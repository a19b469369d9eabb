import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RESTART_MAX_DELAY_MS, restartDelayMs } from './supervisor.js';

describe('restartDelayMs', () => {
  it('doubles from 1 s per restart of a crash-looping process, up to the cap', () => {
    assert.deepEqual([0, 1, 2, 3, 4].map(restartDelayMs), [1_000, 2_000, 4_000, 8_000, 16_000]);
    assert.equal(restartDelayMs(5), RESTART_MAX_DELAY_MS);
    assert.equal(restartDelayMs(50), RESTART_MAX_DELAY_MS);
  });
});
