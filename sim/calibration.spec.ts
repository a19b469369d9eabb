import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { shareGpt, VLLM_V1_MAY_2025 } from './calibration.js';

const P8 = 'llama-3.1-8b-h100';

describe('calibration replays', () => {
  it('takes a burst in by the release’s passes of the API server’s event loop, so full prefill steps stall the first decodes', () => {
    const burst = { preset: P8, count: 1_000, means: { promptTokens: 230, outputTokens: 200 } };
    const onePass = shareGpt(burst).run();
    const fourPasses = shareGpt({ ...burst, release: VLLM_V1_MAY_2025 }).run();
    // One pass: a request reaches the engine every 8.1 ms, a step prefills a prompt or two beside the
    // decodes. Four: the burst arrives in the last quarter of the intake, one request per ≈2 ms, and
    // the steps that prefill it hold every running decode for one large step.
    assert.ok(fourPasses.p99ItlMs > 3 * onePass.p99ItlMs, `${fourPasses.p99ItlMs} vs ${onePass.p99ItlMs}`);
    assert.ok(
      fourPasses.p99TpotMs > 2 * onePass.p99TpotMs,
      `${fourPasses.p99TpotMs} vs ${onePass.p99TpotMs}`,
    );
  });

  it('costs a lone request the same whatever the number of passes', () => {
    const lone = { preset: P8, count: 1 };
    const a = shareGpt(lone).run();
    const b = shareGpt({ ...lone, release: VLLM_V1_MAY_2025 }).run();
    assert.ok(Math.abs(a.meanTtftMs - b.meanTtftMs) < 1e-9, `${a.meanTtftMs} vs ${b.meanTtftMs}`);
  });

  it('spreads answers capped at the dataset’s own as the dataset’s answers, as under ignore_eos', () => {
    const run = { preset: P8, count: 200, ratePerS: 4 };
    const capped = shareGpt({ ...run, datasetAnswers: true }).run();
    const ignoreEos = shareGpt({ ...run, ignoreEos: true }).run();
    const stopped = shareGpt(run).run();
    assert.deepEqual(capped, ignoreEos);
    assert.notDeepEqual(capped, stopped);
  });
});
