import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { LocalHistogram } from './local-histogram.js';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1];

/** A deterministic generator (mulberry32), so a failure replays. */
function rng(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pair(labelNames: string[] = ['model', 'model_version']) {
  const a = new Registry();
  const b = new Registry();
  const config = { name: 'x_seconds', help: 'Help.', labelNames, buckets: BUCKETS };
  return {
    prom: new Histogram({ ...config, registers: [a] }),
    local: new LocalHistogram({ ...config, registers: [b] }),
    text: async () => [await a.metrics(), await b.metrics()] as const,
  };
}

describe('LocalHistogram', () => {
  it('scrapes byte for byte like a prom-client Histogram fed the same observations', async () => {
    const { prom, local, text } = pair();
    const random = rng(7);
    const series = new Map<string, ReturnType<typeof local.series>>();
    for (let i = 0; i < 5000; i++) {
      const labels = {
        model: `m${Math.floor(random() * 3)}`,
        model_version: `v"${Math.floor(random() * 2)}`,
      };
      // Values on bounds, between them, and above the last one.
      const r = random();
      const v =
        r < 0.2
          ? (BUCKETS[Math.floor(random() * BUCKETS.length)] as number)
          : r < 0.3
            ? 1 + random() * 5
            : random() * 0.2;
      prom.observe(labels, v);
      const key = `${labels.model}/${labels.model_version}`;
      if (i % 2 === 0) local.observe(labels, v);
      else {
        const s = series.get(key) ?? local.series(labels);
        series.set(key, s);
        s.observe(v);
      }
    }
    const [want, got] = await text();
    assert.match(want, /x_seconds_bucket\{le="\+Inf",model="m\d",model_version="v\\"\d"\} \d+/);
    assert.equal(got, want);
    assert.deepEqual(await local.get(), await prom.get());
  });

  it('keeps labels(), zero, remove and reset in step with prom-client', async () => {
    const { prom, local, text } = pair();
    for (const h of [prom, local] as Histogram<'model' | 'model_version'>[]) {
      h.zero({ model: 'a', model_version: '1' });
      h.labels('b', '2').observe(0.003);
      h.labels({ model: 'c', model_version: '3' }).observe(7);
      h.observe({ model: 'd', model_version: '4' }, 0.04);
      h.remove('d', '4');
    }
    let [want, got] = await text();
    assert.equal(got, want);
    prom.reset();
    local.reset();
    [want, got] = await text();
    assert.equal(got, want);
  });

  it('shows an unlabelled histogram like prom-client, before and after observations', async () => {
    const { prom, local, text } = pair([]);
    let [want, got] = await text();
    assert.equal(got, want);
    prom.observe(0.02);
    local.observe(0.02);
    [want, got] = await text();
    assert.equal(got, want);
  });

  it('rejects an unknown label and a value that is not a number, naming them', () => {
    const { local } = pair();
    assert.throws(() => local.observe({ model: 'a', nope: 'x' } as never, 1), /"nope"/);
    assert.throws(() => local.observe({ model: 'a', model_version: '1' }, Number.NaN), /not a valid number/);
  });
});
