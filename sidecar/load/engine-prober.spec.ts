import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../common/log.js';
import type { EngineClient } from '../engine-client.js';
import { createEngineProber, MAX_EXCUSED_PROBES } from './engine-prober.js';

/** Holds this thread for `ms`, as a CPU-throttled or GC-paused sidecar stands still. */
function stall(ms: number) {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

/** The engine answers this probe at once. */
const answers = () => Promise.resolve(true);

/** The engine never answers: the probe times out (a hung engine). */
const hangs = (timeoutMs: number) =>
  new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs));

/**
 * The engine is healthy but the sidecar stalls for longer than the probe
 * timeout: when it runs again, its timeout fires before it reads the answer.
 */
const stallsPastTimeout = (timeoutMs: number) =>
  new Promise<boolean>((resolve) => {
    setTimeout(() => resolve(false), timeoutMs);
    stall(timeoutMs + 100);
  });

/**
 * A prober over an engine whose `n`-th `/health` (from 1) behaves as
 * `health(n)` says. `notReady` resolves when readiness first turns false;
 * `started(n)` when the `n`-th probe begins.
 */
function probe(health: (n: number) => (timeoutMs: number) => Promise<boolean>) {
  let calls = 0;
  const readyChanges: boolean[] = [];
  const waiting = new Map<number, () => void>();
  let lost: () => void = () => {};
  const notReady = new Promise<void>((resolve) => {
    lost = resolve;
  });
  const engine = {
    url: 'http://engine.test',
    health: (o: { timeoutMs: number }) => {
      calls++;
      waiting.get(calls)?.();
      return health(calls)(o.timeoutMs);
    },
    models: async () => [{ id: 'm', maxModelLen: 4096 }],
    metrics: async () => '',
    maxNumSeqs: async () => undefined,
  } as unknown as EngineClient;
  // The prober's own timers do not hold the process open; the test's wait does.
  const keepAlive = setInterval(() => {}, 1000);
  const prober = createEngineProber({
    engine,
    intervalMs: 100,
    logger: silentLogger,
    onReadyChange: (ready) => {
      readyChanges.push(ready);
      if (!ready) lost();
    },
    onChange: () => {},
  });
  const stop = prober.stop;
  prober.stop = () => {
    clearInterval(keepAlive);
    stop();
  };
  return {
    prober,
    readyChanges,
    calls: () => calls,
    notReady,
    started: (n: number) =>
      n <= calls ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(n, resolve)),
  };
}

describe('engine prober', () => {
  it('a hung engine turns the pod not ready after one probe timeout', async () => {
    const p = probe((n) => (n === 1 ? answers : hangs));
    try {
      await p.notReady;
      assert.deepEqual(p.readyChanges, [true, false]);
      assert.match(p.prober.state.reason, /\/health is not 200/);
    } finally {
      p.prober.stop();
    }
  });

  it('a probe that timed out only because the sidecar itself stalled keeps the pod ready and asks again', async () => {
    // Probe 1 answers, probe 2 times out during the stall, probe 3 (at once) answers.
    const p = probe((n) => (n === 2 ? stallsPastTimeout : answers));
    try {
      await p.started(3);
      // The probe running now is the third: wait for its end.
      await p.prober.probe();
      assert.deepEqual(p.readyChanges, [true], 'readiness never flipped');
      assert.equal(p.prober.state.ready, true);
    } finally {
      p.prober.stop();
    }
  });

  it(`a sidecar starved for good still reports its hung engine after ${MAX_EXCUSED_PROBES} excused probes`, async () => {
    const p = probe((n) => (n === 1 ? answers : stallsPastTimeout));
    try {
      await p.notReady;
      assert.deepEqual(p.readyChanges, [true, false]);
      assert.equal(p.calls(), 2 + MAX_EXCUSED_PROBES, 'the probe after the excused ones counted');
    } finally {
      p.prober.stop();
    }
  });

  it('notes the sidecar’s own requests at the engine while each metrics scrape ran', async () => {
    // 2 in flight when the scrape starts, 3 when it answers: the gauges may count all 3.
    let inFlight = 2;
    let scraped: (() => void) | undefined;
    const scrapedOnce = new Promise<void>((resolve) => {
      scraped = resolve;
    });
    const engine = {
      url: 'http://engine.test',
      health: async () => true,
      models: async () => [{ id: 'm', maxModelLen: 4096 }],
      metrics: async () => {
        inFlight = 3;
        return 'vllm:num_requests_running{model_name="m"} 3\n';
      },
      maxNumSeqs: async () => undefined,
    } as unknown as EngineClient;
    const prober = createEngineProber({
      engine,
      intervalMs: 60_000,
      logger: silentLogger,
      inFlight: () => inFlight,
      onChange: (state) => {
        if (state.ready) scraped?.();
      },
    });
    try {
      await scrapedOnce;
      assert.equal(prober.state.metrics.numRequestsRunning, 3);
      assert.equal(prober.state.inFlightAtScrape, 3);
    } finally {
      prober.stop();
    }
  });
});
