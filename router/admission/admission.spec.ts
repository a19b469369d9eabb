import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { type MeshError, Status } from '../../common/errors.js';
import {
  type AdmissionTimers,
  createAdmission,
  drainRate,
  expectedWaitMs,
  type PoolDrain,
  pushbackFor,
  recordService,
} from './admission.js';

const config = {
  max_concurrency: 2,
  saturation_queue_depth: 8,
  max_queue_length: 3,
  max_queue_wait_ms: 1_000,
  pushback_ms: 250,
  min_pushback_ms: 50,
  standing_queue_wait_ms: 100,
};

/** Manual timers: time moves only when the test says so. */
function manualTimers() {
  let t = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  let id = 0;
  const timers: AdmissionTimers = {
    now: () => t,
    setTimeout(fn, ms) {
      const key = ++id;
      pending.set(key, { at: t + ms, fn });
      return key as unknown as NodeJS.Timeout;
    },
    clearTimeout(handle) {
      pending.delete(handle as unknown as number);
    },
  };
  const advance = (ms: number) => {
    t += ms;
    for (const [key, p] of [...pending].sort((a, b) => a[1].at - b[1].at)) {
      if (p.at <= t) {
        pending.delete(key);
        p.fn();
      }
    }
  };
  return { timers, advance };
}

const tick = () => new Promise((r) => setImmediate(r));
const ticket = (
  priority: number,
  over: Partial<{ saturated: () => boolean; deadline: number; signal: AbortSignal; poolKey: string }> = {},
) => ({
  priority,
  poolKey: over.poolKey ?? 'm/v1',
  saturated: over.saturated ?? (() => false),
  deadline: over.deadline ?? Number.POSITIVE_INFINITY,
  signal: over.signal ?? new AbortController().signal,
});

describe('admission', () => {
  it('admits up to the concurrency limit, then queues by priority (FIFO within one)', async () => {
    const { timers } = manualTimers();
    const a = createAdmission(config, timers);
    const r1 = await a.admit(ticket(2));
    const r2 = await a.admit(ticket(2));
    assert.equal(a.inFlight, 2);
    const order: string[] = [];
    const low = a.admit(ticket(1)).then((r) => {
      order.push('low');
      return r;
    });
    const normal = a.admit(ticket(2)).then((r) => {
      order.push('normal');
      return r;
    });
    const high = a.admit(ticket(3)).then((r) => {
      order.push('high');
      return r;
    });
    assert.equal(a.queued, 3);
    r1();
    (await high)();
    r2();
    (await normal)();
    (await low)();
    assert.deepEqual(order, ['high', 'normal', 'low']);
    assert.equal(a.inFlight, 0);
  });

  it('sheds with RESOURCE_EXHAUSTED and a pushback when the queue is full or the wait too long', async () => {
    const { timers, advance } = manualTimers();
    const a = createAdmission(config, timers);
    await a.admit(ticket(2));
    await a.admit(ticket(2));
    const waiting = [a.admit(ticket(2)), a.admit(ticket(2)), a.admit(ticket(2))];
    await assert.rejects(a.admit(ticket(2)), (e: MeshError) => {
      assert.equal(e.code, Status.RESOURCE_EXHAUSTED);
      assert.equal(e.retryPushbackMs, 250);
      assert.match(e.message, /queue full/);
      return true;
    });
    advance(999);
    assert.equal(a.queued, 3);
    advance(1);
    for (const w of waiting)
      await assert.rejects(
        w,
        (e: MeshError) => e.code === Status.RESOURCE_EXHAUSTED && /1000 ms/.test(e.message),
      );
    assert.equal(a.queued, 0);
  });

  it('waits no longer than the request deadline', async () => {
    const { timers, advance } = manualTimers();
    const a = createAdmission({ ...config, max_concurrency: 1 }, timers);
    await a.admit(ticket(2));
    const w = a.admit(ticket(2, { deadline: 100 }));
    advance(100);
    await assert.rejects(w, (e: MeshError) => e.code === Status.RESOURCE_EXHAUSTED);
  });

  it('queues while the pool is saturated and admits when it is not', async () => {
    const { timers } = manualTimers();
    const a = createAdmission({ ...config, max_concurrency: 100 }, timers);
    let saturated = true;
    const w = a.admit(ticket(2, { saturated: () => saturated }));
    await tick();
    assert.equal(a.queued, 1);
    // Another pool is not held up by the saturated one.
    const other = await a.admit(ticket(2, { poolKey: 'm/v2' }));
    other();
    saturated = false;
    a.poke();
    (await w)();
    assert.equal(a.queued, 0);
  });

  it('a cancelled request leaves the queue', async () => {
    const { timers } = manualTimers();
    const a = createAdmission({ ...config, max_concurrency: 1 }, timers);
    const r = await a.admit(ticket(2));
    const controller = new AbortController();
    const w = a.admit(ticket(2, { signal: controller.signal }));
    controller.abort();
    await assert.rejects(w, (e: MeshError) => e.code === Status.CANCELLED);
    assert.equal(a.queued, 0);
    r();
    await tick();
    assert.equal(a.inFlight, 0);
  });

  it('emits admitted with the wait time', async () => {
    const { timers, advance } = manualTimers();
    const a = createAdmission({ ...config, max_concurrency: 1 }, timers);
    const r = await a.admit(ticket(2));
    const w = a.admit(ticket(2));
    advance(40);
    const admitted = once(a.events, 'admitted');
    r();
    const [ev] = (await admitted) as [{ waitedMs: number }];
    assert.equal(ev.waitedMs, 40);
    (await w)();
  });

  it('estimates a pool drain rate from in-flight requests over their mean service time', () => {
    const d: PoolDrain = { inFlight: 4, serviceMs: 0 };
    assert.equal(drainRate(d), 0, 'unknown before the first finish');
    assert.equal(expectedWaitMs(3, drainRate(d)), undefined);
    recordService(d, 100);
    assert.equal(d.serviceMs, 100, 'the first sample sets it');
    assert.equal(drainRate(d), 0.04, '4 in flight over 100 ms: 40/s');
    recordService(d, 200);
    assert.equal(d.serviceMs, 120, 'EWMA with weight 0.2');
    // An idle gap between requests does not lower the rate: only service times count.
    d.serviceMs = 100;
    assert.equal(expectedWaitMs(0, drainRate(d)), 25);
    assert.equal(expectedWaitMs(7, drainRate(d)), 200);
  });

  it('bounds the pushback between min_pushback_ms and max_queue_wait_ms', () => {
    const cfg = { ...config, max_queue_wait_ms: 100, min_pushback_ms: 10 };
    assert.equal(pushbackFor(125, cfg), 25, 'the backlog beyond the budget');
    assert.equal(pushbackFor(101, cfg), 10, 'at least the minimum');
    assert.equal(pushbackFor(10_000, cfg), 100, 'at most the queue wait');
    assert.equal(pushbackFor(10_000, { ...cfg, max_queue_wait_ms: 0 }), 10);
  });

  it('sheds at once when the expected wait exceeds the budget, and admits one per finish, highest priority first', async () => {
    const { timers, advance } = manualTimers();
    const a = createAdmission(
      { ...config, max_concurrency: 100, max_queue_length: 100, max_queue_wait_ms: 100, min_pushback_ms: 10 },
      timers,
    );
    // A pool that runs 4 at once: saturated with 4 in flight.
    const saturated = () => (a.drain('m/v1')?.inFlight ?? 0) >= 4;
    const t = (priority: number, deadline?: number) => ticket(priority, { saturated, deadline });
    const running = [await a.admit(t(2)), await a.admit(t(2)), await a.admit(t(2)), await a.admit(t(2))];
    advance(100);
    // Saturated, but nothing finished yet: no estimate, so it waits.
    const first = a.admit(t(2));
    await tick();
    assert.equal(a.queued, 1);
    running.shift()?.();
    running.push(await first);
    assert.equal(a.drain('m/v1')?.serviceMs, 100);
    assert.equal(a.drain('m/v1')?.inFlight, 4);
    // 4 in flight over 100 ms: 25 ms per place in the queue; the budget is 100 ms.
    const order: string[] = [];
    const queued = ['n1', 'n2', 'n3', 'n4'].map((name) =>
      a.admit(t(2)).then((r) => {
        order.push(name);
        running.push(r);
      }),
    );
    assert.equal(a.queued, 4);
    await assert.rejects(a.admit(t(2)), (e: MeshError) => {
      assert.equal(e.code, Status.RESOURCE_EXHAUSTED);
      assert.equal(e.retryPushbackMs, 25);
      assert.match(e.message, /pool "m\/v1" overloaded: every pod saturated, 4 queued ahead/);
      assert.match(e.message, /expected wait 125 ms exceeds the 100 ms budget/);
      return true;
    });
    // Its own deadline is a tighter budget.
    await assert.rejects(
      a.admit(t(3, timers.now() + 20)),
      (e: MeshError) => e.code === Status.RESOURCE_EXHAUSTED,
    );
    // Higher priority has nobody ahead; lower has everyone.
    const high = a.admit(t(3)).then((r) => {
      order.push('high');
      running.push(r);
    });
    await assert.rejects(a.admit(t(1)), (e: MeshError) => /5 queued ahead/.test(e.message));
    assert.equal(a.queued, 5);
    // Each finish lets exactly one in, highest priority first, FIFO within one.
    for (let i = 0; i < 5; i++) {
      running.shift()?.();
      await tick();
      await tick();
      assert.equal(order.length, i + 1);
      assert.equal(a.drain('m/v1')?.inFlight, 4, 'never past the pool capacity');
    }
    assert.deepEqual(order, ['high', 'n1', 'n2', 'n3', 'n4']);
    await Promise.all([...queued, high]);
    for (const r of running) r();
    assert.equal(a.inFlight, 0);
  });

  it('lets one request in per freed slot, though the pool looks free until the request is placed', async () => {
    const { timers } = manualTimers();
    const a = createAdmission({ ...config, max_concurrency: 100, max_queue_length: 100 }, timers);
    // The scheduler's view of the pool: a request counts once it is placed
    // (after its admission resolves), a finish at once.
    let placed = 0;
    const saturated = () => placed >= 4;
    const admitOne = () =>
      a.admit(ticket(2, { saturated })).then((release) => {
        placed++;
        return () => {
          placed--;
          release();
        };
      });
    const running = [await admitOne(), await admitOne(), await admitOne(), await admitOne()];
    let admitted = 0;
    const waiters = [admitOne(), admitOne(), admitOne()].map((w) =>
      w.then((r) => {
        admitted++;
        return r;
      }),
    );
    await tick();
    assert.equal(a.queued, 3);
    running.shift()?.();
    await tick();
    await tick();
    assert.equal(admitted, 1, 'one finish, one admission');
    assert.equal(placed, 4, 'the pool stays at its capacity');
    assert.equal(a.queued, 2);
    for (const r of running) r();
    for (const w of waiters) (await w)();
  });

  it('cuts the wait to standing_queue_wait_ms once the queue stands, and back once it has stayed empty', async () => {
    const { timers, advance } = manualTimers();
    const a = createAdmission(
      {
        ...config,
        max_concurrency: 100,
        max_queue_length: 100,
        max_queue_wait_ms: 300,
        standing_queue_wait_ms: 120,
      },
      timers,
    );
    const sheds: string[] = [];
    a.events.on('shed', (e: { reason: string }) => sheds.push(e.reason));
    // A pool that runs 2 at once, each request 100 ms.
    const saturated = () => (a.drain('m/v1')?.inFlight ?? 0) >= 2;
    const t = () => ticket(2, { saturated });
    const first = await a.admit(t());
    const second = await a.admit(t());
    advance(100);
    first();
    const third = await a.admit(t());
    assert.equal(a.drain('m/v1')?.serviceMs, 100);
    // 2 in flight over 100 ms: 50 ms per place. Nothing finishes: the queue
    // grows within the full budget (a burst)...
    const w1 = a.admit(t());
    advance(100);
    const w2 = a.admit(t());
    advance(100);
    const w3 = a.admit(t());
    await tick();
    assert.equal(a.queued, 3);
    assert.deepEqual(sheds, []);
    // ...until it has not emptied for max_queue_wait_ms: it stands. The
    // oldest reaches its full wait; the waiters past the standing budget
    // are shed, and new ones wait at most that long.
    advance(100);
    await assert.rejects(w1, (e: MeshError) => /no capacity within 300 ms/.test(e.message));
    const late = a.admit(t());
    await assert.rejects(w2, (e: MeshError) => {
      assert.equal(e.code, Status.RESOURCE_EXHAUSTED);
      assert.match(
        e.message,
        /queue stands \(sustained overload\), so a request waits at most 120 ms; waited 200 ms/,
      );
      assert.ok((e.retryPushbackMs ?? 0) >= config.min_pushback_ms);
      return true;
    });
    assert.deepEqual(sheds, ['queue_timeout', 'standing_queue']);
    assert.equal(a.queued, 2, 'the waiter within the standing budget stays, and the new one joins');
    await assert.rejects(a.admit(t()), (e: MeshError) =>
      /expected wait 150 ms exceeds the 120 ms budget/.test(e.message),
    );
    second();
    (await w3)();
    (await late)();
    third();
    // Empty for a mean service time (now about 140 ms): the full budget again.
    advance(200);
    const held = [await a.admit(t()), await a.admit(t())];
    const patient = [a.admit(t()), a.admit(t()), a.admit(t()), a.admit(t())];
    await tick();
    assert.equal(a.queued, 4, 'a burst after the overload queues within max_queue_wait_ms again');
    for (const r of held) r();
    for (const w of patient) (await w)();
    assert.equal(a.inFlight, 0);
  });
});
