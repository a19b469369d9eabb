import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFrontEndQueue } from './front-end.js';
import { createManualClock } from './manual-clock.js';

describe('front-end queue', () => {
  it('does its work first come first served, one job after the other, scaled by the time scale', () => {
    const clock = createManualClock();
    const queue = createFrontEndQueue(clock, 2);
    const done: [string, number][] = [];
    queue.run(5, () => done.push(['a', clock.now()]));
    queue.run(1, () => done.push(['b', clock.now()]));
    assert.equal(queue.backlogMs(), 12);
    clock.advance(20);
    queue.run(3, () => done.push(['c', clock.now()]));
    clock.runAll();
    assert.deepEqual(done, [
      ['a', 10],
      ['b', 12],
      ['c', 26],
    ]);
  });

  it('runs free work at once when idle, and cancels queued work', () => {
    const clock = createManualClock();
    const queue = createFrontEndQueue(clock, 0);
    let ran = 0;
    queue.run(100, () => ran++);
    assert.equal(ran, 1);
    const busy = createFrontEndQueue(clock, 1);
    const cancel = busy.run(4, () => ran++);
    cancel();
    clock.runAll();
    assert.equal(ran, 1);
  });
});
