import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MeshError, Status } from '../../common/errors.js';
import { completedSource, createFlight } from './flight.js';

describe('flight', () => {
  it('followers see chunks so far and the live ones; the finish chunk ends it', async () => {
    const f = createFlight();
    const { leave } = f.join();
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
    a.leave();
    a.leave();
    assert.equal(f.followers, 1);
    assert.equal(f.signal.aborted, false);
    b.leave();
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

  it('a flight that retains nothing drops each chunk once every follower wrote it', () => {
    const f = createFlight({ retain: false });
    const a = f.join();
    const b = f.join(); // joins before the first drop: sees every chunk
    f.push({ text: 'a' });
    f.push({ text: 'b' });
    a.written(2);
    assert.equal(f.chunks.length, 2, 'kept for the follower that has not written them');
    b.written(1);
    assert.equal(f.length, 2);
    assert.deepEqual(
      f.chunks.map((c) => c.text),
      ['b'],
    );
    assert.equal(f.at(1).text, 'b');
    assert.throws(() => f.at(0), RangeError);
    assert.throws(() => f.join(), /cannot be joined/);
    b.leave(); // a has written everything: nothing is held
    assert.equal(f.chunks.length, 0);
    f.push({ text: 'c', finishReason: 'stop' });
    assert.equal(f.last?.text, 'c');
    assert.equal(f.at(2).text, 'c');
    a.written(3);
    assert.equal(f.chunks.length, 0);
    assert.equal(f.length, 3);
  });

  it('a flight that retains its chunks keeps them all (coalesced followers, cache fill)', () => {
    const f = createFlight();
    const a = f.join();
    f.push({ text: 'a' });
    a.written(1);
    const b = f.join(); // a late follower replays from the start
    f.push({ text: 'b', finishReason: 'stop' });
    a.written(2);
    b.written(2);
    assert.deepEqual(
      f.chunks.map((c) => c.text),
      ['a', 'b'],
    );
    assert.equal(f.at(0).text, 'a');
  });

  it("a flight can share its caller's controller: aborted with it, or when its follower leaves early", () => {
    const call = new AbortController();
    const f = createFlight({ retain: false, controller: call });
    assert.equal(f.signal, call.signal);
    f.join().leave();
    assert.equal(call.signal.aborted, true);
  });

  it('a completed source is done', async () => {
    const s = completedSource([{ text: 'x', finishReason: 'length' }]);
    assert.equal(s.done, true);
    assert.equal(s.length, 1);
    assert.equal(s.at(0).finishReason, 'length');
    await s.changed();
  });
});
