import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { Canary } from '../canary/types.js';
import { LocalHistogram } from '../local-histogram.js';
import { GAP_BATCH, StreamTimes } from './stream-times.js';

/** The ITL histogram as the router registers it, and a canary that records the gaps handed to it. */
function sinks() {
  const registry = new Registry();
  const itl = new LocalHistogram({
    name: 'itl_seconds',
    help: 'gaps',
    labelNames: ['model', 'model_version'],
    buckets: [0.005, 0.01, 0.02, 0.05],
    registers: [registry],
  });
  const handed: number[][] = [];
  const canary = {
    gaps(_model: string, _version: string, seconds: ArrayLike<number>, count: number) {
      handed.push(Array.from({ length: count }, (_, i) => seconds[i] as number));
    },
  } as unknown as Canary;
  const series = itl.series({ model: 'm', model_version: 'v1' });
  return { registry, series, canary, handed };
}

describe('stream chunk times', () => {
  it('hand every gap to the ITL histogram and the canary, in batches and at the end', async () => {
    const { registry, series, canary, handed } = sinks();
    const times = new StreamTimes();
    const chunks = 2 * GAP_BATCH + 7;
    // Gaps of 3, 4, 5, ... ms from a clock at 1000 ms.
    const at = [1000];
    for (let i = 1; i < chunks; i++) at.push((at[i - 1] as number) + 2 + i);
    times.first(at[0] as number, { itl: series, canary, model: 'm', version: 'v1' });
    const counts: number[] = [];
    for (let i = 1; i < chunks; i++) {
      times.next(at[i] as number);
      counts.push(series.count);
    }
    // Observed only when a batch is full: a running stream's last gaps wait.
    assert.equal(counts[GAP_BATCH - 2], 0);
    assert.equal(counts[GAP_BATCH - 1], GAP_BATCH);
    assert.equal(counts[2 * GAP_BATCH - 1], 2 * GAP_BATCH);
    assert.equal(series.count, 2 * GAP_BATCH);
    times.flush();
    times.flush();
    const gaps = at.slice(1).map((t, i) => (t - (at[i] as number)) / 1000);
    assert.equal(series.count, chunks - 1);
    assert.ok(Math.abs(series.sum - gaps.reduce((a, b) => a + b, 0)) < 1e-9);
    assert.deepEqual(handed.flat(), gaps);
    assert.deepEqual(
      handed.map((h) => h.length),
      [GAP_BATCH, GAP_BATCH, 7 - 1],
    );
    assert.equal(times.firstAt, at[0]);
    assert.equal(times.lastAt, at.at(-1));
    // What a scrape shows after the stream ended: every gap, bucketed.
    const text = await registry.metrics();
    assert.match(text, new RegExp(`itl_seconds_count\\{model="m",model_version="v1"\\} ${chunks - 1}`));
    assert.match(text, /itl_seconds_bucket\{le="0.005",model="m",model_version="v1"\} 3\b/);
  });

  it('observe nothing for a stream that never streamed', () => {
    const times = new StreamTimes();
    times.flush();
    assert.equal(times.firstAt, 0);
  });
});
