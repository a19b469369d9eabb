/**
 * The presets against the published vLLM measurements they were fitted to:
 * every point is replayed on a manual clock (the same workload as the
 * publication: prompt lengths, concurrency, arrival rate) and must land within
 * ±10 % of the published value. `node --import tsx bench/sim-fidelity.ts` prints the table.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CALIBRATION_POINTS, CALIBRATION_TOLERANCE, replayCalibration } from '../sim/calibration.js';

describe('sim calibration', () => {
  const results = replayCalibration();

  for (const kind of ['TTFT', 'ITL', 'TPOT', 'throughput', 'saturation']) {
    it(`reproduces the published ${kind} points within ±${CALIBRATION_TOLERANCE * 100} %`, (t) => {
      const mine = results.filter((r) => r.point.metric.includes(kind));
      assert.ok(mine.length > 0);
      for (const { point, simulated, relativeError } of mine) {
        t.diagnostic(
          `${point.preset} ${point.metric}: published ${point.published} ${point.unit}, simulated ${simulated.toFixed(1)} (${(relativeError * 100).toFixed(1)} %)`,
        );
        assert.ok(
          Math.abs(relativeError) <= CALIBRATION_TOLERANCE,
          `${point.preset} ${point.metric}: published ${point.published} ${point.unit} (${point.source}), simulated ${simulated.toFixed(1)}`,
        );
      }
    });
  }

  it('covers every point and both presets', () => {
    const covered = new Set(
      results
        .filter((r) =>
          ['TTFT', 'ITL', 'TPOT', 'throughput', 'saturation'].some((k) => r.point.metric.includes(k)),
        )
        .map((r) => r.point),
    );
    assert.equal(covered.size, CALIBRATION_POINTS.length);
    assert.deepEqual(
      new Set(results.map((r) => r.point.preset)),
      new Set(['llama-3.1-8b-h100', 'llama-3.1-70b-4xh100']),
    );
  });

  it('is deterministic', () => {
    const again = replayCalibration(CALIBRATION_POINTS.filter((p) => p.preset === 'llama-3.1-70b-4xh100'));
    for (const r of again) {
      assert.equal(r.simulated, results.find((x) => x.point === r.point)?.simulated);
    }
  });
});
