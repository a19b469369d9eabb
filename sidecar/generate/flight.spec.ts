import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MeshError, Status } from '../../common/errors.js';
import { completedSource, createFlight } from './flight.js';

describe('flight', () => {
  it('followers see chunks so far and the live ones; the finish chunk ends it', async () => {
    const f = createFlight();
    const leave = f.join();
    f.push({ text: 'a' });
    const next = f.changed();
    f.push({ text: 'b', finishReason: 'stop' });
    await next;
    assert.equal(f.done, true);
    assert.deepEqual(
      f.chunks.map((c) => c.text),
      ['a', 'b'],
    );
    f.push({ text: 'late' });
    assert.equal(f.chunks.length, 2, 'nothing after the end');
    leave();
    assert.equal(f.signal.aborted, false, 'leaving a finished flight aborts nothing');
  });

  it('aborts the engine call only when the last follower leaves early', () => {
    const f = createFlight();
    const a = f.join();
    const b = f.join();
    a();
    a();
    assert.equal(f.followers, 1);
    assert.equal(f.signal.aborted, false);
    b();
    assert.equal(f.signal.aborted, true);
  });

  it('a failure reaches every follower as a MeshError', async () => {
    const f = createFlight();
    const waiting = f.changed();
    f.fail(new Error('boom'));
    await waiting;
    assert.equal((f.error as MeshError).code, Status.INTERNAL);
    await f.changed(); // resolves at once once failed
  });

  it('calls change listeners in the push, finish or failure that changed it, until they unsubscribe', () => {
    const f = createFlight();
    const seen: number[] = [];
    const off = f.onChange(() => seen.push(f.chunks.length));
    f.push({ text: 'a' });
    f.push({ text: 'b' });
    assert.deepEqual(seen, [1, 2]);
    off();
    f.push({ text: 'c', finishReason: 'stop' });
    assert.deepEqual(seen, [1, 2]);
    const g = createFlight();
    let calls = 0;
    g.onChange(() => calls++);
    g.fail(new Error('boom'));
    g.push({ text: 'late' });
    assert.equal(calls, 1);
  });

  it('a completed source is done', async () => {
    const s = completedSource([{ text: 'x', finishReason: 'length' }]);
    assert.equal(s.done, true);
    await s.changed();
  });
});
