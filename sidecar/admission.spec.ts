import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MeshError, RETRY_PUSHBACK_KEY, Status } from '../common/errors.js';
import { createAdmission } from './admission.js';

describe('admission', () => {
  it('admits up to the limit, queues FIFO, and grants in order as slots free', async () => {
    const a = createAdmission(2);
    const r1 = await a.acquire();
    const r2 = await a.acquire();
    const order: number[] = [];
    const p3 = a.acquire().then((r) => {
      order.push(3);
      return r;
    });
    const p4 = a.acquire().then((r) => {
      order.push(4);
      return r;
    });
    assert.equal(a.inFlight, 2);
    assert.equal(a.queued, 2);
    r1();
    r1(); // releasing twice frees one slot only
    const r3 = await p3;
    assert.equal(a.queued, 1);
    r2();
    const r4 = await p4;
    assert.deepEqual(order, [3, 4]);
    r3();
    r4();
    assert.equal(a.inFlight, 0);
  });

  it('sheds with RESOURCE_EXHAUSTED and a retry pushback when the queue is full', async () => {
    const a = createAdmission(1, () => {}, { maxQueue: 1, queuePushbackMs: 750 });
    const release = await a.acquire();
    const queued = a.acquire();
    await assert.rejects(a.acquire(), (err: MeshError) => {
      assert.equal(err.code, Status.RESOURCE_EXHAUSTED);
      assert.equal(err.retryPushbackMs, 750);
      assert.equal(err.toStatusObject().metadata.get(RETRY_PUSHBACK_KEY)[0], '750');
      assert.match(err.message, /queue is full \(1 waiting, 1 in flight/);
      return true;
    });
    release();
    (await queued)();
  });

  it('a queue of 0 sheds whatever cannot run at once', async () => {
    const a = createAdmission(1, () => {}, { maxQueue: 0 });
    const release = await a.acquire();
    await assert.rejects(a.acquire(), (err: MeshError) => err.code === Status.RESOURCE_EXHAUSTED);
    release();
  });

  it('a caller that gives up while queued leaves the queue', async () => {
    let changes = 0;
    const a = createAdmission(1, () => changes++);
    const release = await a.acquire();
    const controller = new AbortController();
    const waiting = a.acquire(controller.signal);
    assert.equal(a.queued, 1);
    controller.abort();
    await assert.rejects(waiting, (err: MeshError) => err.code === Status.CANCELLED);
    assert.equal(a.queued, 0);
    release();
    assert.equal(a.inFlight, 0);
    assert.ok(changes >= 4);
  });

  it('raising the limit admits queued callers', async () => {
    const a = createAdmission(1);
    const r1 = await a.acquire();
    const p2 = a.acquire();
    a.setLimit(2);
    assert.equal(a.limit, 2);
    const r2 = await p2;
    assert.equal(a.inFlight, 2);
    r1();
    r2();
  });
});
