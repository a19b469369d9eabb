import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimHttpError } from './errors.js';
import { createFaultState, faultsToJson, NO_FAULTS, parseFaultsPatch } from './faults.js';

describe('faults', () => {
  it('parses the JSON fields, null turning a fault off', () => {
    assert.deepEqual(
      parseFaultsPatch({
        error_rate: 0.25,
        error_status: 429,
        stall_after_tokens: 3,
        crash_after_tokens: null,
        slow_factor: 2.5,
        health_status: 503,
      }),
      {
        errorRate: 0.25,
        errorStatus: 429,
        stallAfterTokens: 3,
        crashAfterTokens: null,
        slowFactor: 2.5,
        healthStatus: 503,
      },
    );
    assert.deepEqual(parseFaultsPatch({ slow_factor: null, error_status: null }), {
      slowFactor: 1,
      errorStatus: 500,
    });
  });

  it('rejects bad values and unknown fields with a 400 naming the field', () => {
    for (const [body, field] of [
      [{ error_rate: 1.5 }, 'error_rate'],
      [{ error_status: 404 }, 'error_status'],
      [{ stall_after_tokens: -1 }, 'stall_after_tokens'],
      [{ crash_after_tokens: 2.5 }, 'crash_after_tokens'],
      [{ slow_factor: 0 }, 'slow_factor'],
      [{ health_status: 500 }, 'health_status'],
      [{ latency: 1 }, 'latency'],
    ] as const) {
      assert.throws(
        () => parseFaultsPatch(body),
        (err: SimHttpError) =>
          err.status === 400 &&
          (err.body as { error: { param: string; message: string } }).error.param === field &&
          (err.body as { error: { message: string } }).error.message.startsWith(field),
      );
    }
    assert.throws(() => parseFaultsPatch([1]), SimHttpError);
  });

  it('merges patches, resets to no faults, and validates the initial set', () => {
    const state = createFaultState({ errorRate: 0.5, slowFactor: undefined });
    assert.equal(state.get().errorRate, 0.5);
    assert.equal(state.get().slowFactor, 1);
    state.merge({ errorStatus: 503 });
    assert.deepEqual(faultsToJson(state.get()), {
      error_rate: 0.5,
      error_status: 503,
      stall_after_tokens: null,
      crash_after_tokens: null,
      slow_factor: 1,
      health_status: null,
    });
    assert.deepEqual(state.reset(), NO_FAULTS);
    assert.throws(() => createFaultState({ errorRate: 2 }), /errorRate must be a number in \[0, 1\]/);
  });
});
