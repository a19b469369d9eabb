import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { errors, MeshError, Status } from '../../common/errors.js';
import { silentLogger } from '../../common/log.js';
import type { BreakerConfig } from '../config/schema.js';
import { classifyFailure } from '../request/failure-policy.js';
import {
  type AttemptOutcome,
  type Breakers,
  type BreakerTransition,
  createBreakers,
  isBreakerOpen,
  WINDOW_BUCKETS,
} from './breakers.js';

const base: BreakerConfig = {
  error_threshold_percentage: 50,
  volume_threshold: 4,
  consecutive_failures: 0,
  reset_timeout_ms: 5_000,
  window_ms: 10_000,
  max_ejection_percent: 50,
};
/** What an attempt that failed with `err` before its first chunk settles, by the failure policy. */
function outcomeOf(err: unknown, clientCancelled = false): AttemptOutcome {
  return classifyFailure(err, { clientCancelled, deadlinePassed: false }).policy.endpointFault
    ? 'endpoint-fault'
    : 'neutral';
}

describe('endpoint circuit breakers', () => {
  let rotation: EventEmitter;
  let b: Breakers;
  let seen: BreakerTransition[];
  const start = (over: Partial<BreakerConfig> = {}) => {
    b?.close();
    b = createBreakers({
      config: { ...base, ...over },
      logger: silentLogger,
      rotateBucketController: rotation,
    });
    b.events.on('transition', (t: BreakerTransition) => seen.push(t));
    return b;
  };
  /** Settles `n` attempts on `endpoint` with `outcome`. */
  const attempts = (endpoint: string, outcome: AttemptOutcome, n = 1) => {
    for (let i = 0; i < n; i++) b.acquire(endpoint).settle(outcome);
  };
  const moves = (endpoint = 'a') =>
    seen.filter((t) => t.endpoint === endpoint).map((t) => `${t.from}->${t.to}`);
  /** Opens `a` with one fault (volume 1) and waits out the reset timeout. */
  const halfOpen = () => {
    start({ volume_threshold: 1 });
    attempts('a', 'endpoint-fault');
    assert.equal(b.state('a'), 'open');
    mock.timers.tick(base.reset_timeout_ms);
    assert.equal(b.state('a'), 'half-open');
  };

  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    rotation = new EventEmitter();
    seen = [];
  });
  afterEach(() => {
    b?.close();
    mock.timers.reset();
  });

  it('the failure policy decides what an attempt’s error counts as', () => {
    const cases: Array<[unknown, AttemptOutcome]> = [
      [errors.unavailable('down'), 'endpoint-fault'],
      [new MeshError(Status.INTERNAL, 'engine 500'), 'endpoint-fault'],
      [new MeshError(Status.UNKNOWN, 'weird'), 'endpoint-fault'],
      [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'endpoint-fault'],
      [errors.invalidArgument('prompt', 'too long'), 'neutral'],
      [errors.notFound('no such model'), 'neutral'],
      [errors.deadlineExceeded('client deadline'), 'neutral'],
      [errors.resourceExhausted('429', 100), 'neutral'],
      [new MeshError(Status.PERMISSION_DENIED, 'no'), 'neutral'],
    ];
    for (const [err, outcome] of cases) assert.equal(outcomeOf(err), outcome, String(err));
    assert.equal(
      outcomeOf(errors.cancelled('client went away'), true),
      'neutral',
      'the client’s own cancellation is neutral',
    );
  });

  it('opens on the error rate once the volume is reached, half-opens after the reset timeout', async () => {
    start();
    attempts('a', 'endpoint-fault', 3);
    assert.equal(b.state('a'), 'closed', 'below the volume threshold nothing opens');
    attempts('a', 'endpoint-fault');
    assert.equal(b.state('a'), 'open');
    assert.match(seen[0]?.reason ?? '', /error rate 100% of 4 attempts/);
    assert.throws(
      () => b.acquire('a'),
      (e) => isBreakerOpen(e) && (e as MeshError).code === Status.UNAVAILABLE,
    );
    assert.throws(() => b.acquire('a'), isBreakerOpen);
    assert.equal(b.probeAvailable('a'), false);
    mock.timers.tick(4_999);
    assert.equal(b.state('a'), 'open');
    mock.timers.tick(1);
    assert.equal(b.state('a'), 'half-open');
    assert.equal(b.probeAvailable('a'), true);
    assert.deepEqual(moves(), ['closed->open', 'open->half-open']);
  });

  it('the error rate counts successes: half the attempts failing is not over 50 %', () => {
    start();
    for (let i = 0; i < 10; i++) {
      attempts('a', 'success');
      attempts('a', 'endpoint-fault');
    }
    assert.equal(b.state('a'), 'closed');
    attempts('a', 'endpoint-fault');
    assert.equal(b.state('a'), 'open', '11 of 21');
  });

  describe('a half-open probe', () => {
    it('success closes the breaker, with a fresh window', () => {
      halfOpen();
      const probe = b.acquire('a');
      assert.equal(probe.probe, true);
      probe.settle('success');
      assert.equal(b.state('a'), 'closed');
      assert.deepEqual(moves(), ['closed->open', 'open->half-open', 'half-open->closed']);
      assert.deepEqual(b.health('a'), { failureRatio: 0, consecutiveFailures: 0 });
      // The fault that opened it is history: a new fault is one of two attempts, not two of three.
      attempts('a', 'success');
      attempts('a', 'endpoint-fault');
      assert.equal(b.state('a'), 'closed');
    });

    it('endpoint fault reopens it, and the reset timeout starts again', () => {
      halfOpen();
      b.acquire('a').settle('endpoint-fault');
      assert.equal(b.state('a'), 'open');
      assert.equal(seen.at(-1)?.reason, 'probe failed');
      mock.timers.tick(base.reset_timeout_ms - 1);
      assert.equal(b.state('a'), 'open');
      mock.timers.tick(1);
      assert.equal(b.state('a'), 'half-open');
    });

    for (const [name, err] of [
      ['CANCELLED', errors.cancelled('client went away')],
      ['the client’s deadline', errors.deadlineExceeded('client deadline')],
      ['429', errors.resourceExhausted('busy', 100)],
      ['a client fault', errors.invalidArgument('prompt', 'too long')],
    ] as const) {
      it(`${name} neither closes nor opens it, and frees the probe for the next request`, async () => {
        halfOpen();
        // CANCELLED is the client's: an endpoint that cancels on its own is at fault.
        b.acquire('a').settle(outcomeOf(err, name === 'CANCELLED'));
        assert.equal(b.state('a'), 'half-open');
        assert.equal(b.probeAvailable('a'), true);
        const next = b.acquire('a');
        assert.equal(next.probe, true, 'the next request probes');
        next.settle('success');
        assert.equal(b.state('a'), 'closed');
        assert.deepEqual(moves(), ['closed->open', 'open->half-open', 'half-open->closed']);
      });
    }

    it('is one at a time: a second caller is rejected while the probe is out', () => {
      halfOpen();
      const probe = b.acquire('a');
      assert.equal(b.probeAvailable('a'), false);
      assert.throws(() => b.acquire('a'), isBreakerOpen);
      probe.settle('neutral');
      assert.equal(b.probeAvailable('a'), true);
      const again = b.acquire('a');
      again.settle('success');
      again.settle('endpoint-fault');
      assert.equal(b.state('a'), 'closed', 'a permit settles once; later calls are ignored');
    });

    it('a late success of an attempt admitted before the breaker opened does not close it', () => {
      start({ volume_threshold: 1 });
      const early = b.acquire('a');
      attempts('a', 'endpoint-fault');
      mock.timers.tick(base.reset_timeout_ms);
      early.settle('success');
      assert.equal(b.state('a'), 'half-open');
      assert.equal(b.acquire('a').probe, true);
    });
  });

  it('neutral outcomes are not counted in the window at all', () => {
    start();
    attempts('a', 'endpoint-fault', 3);
    attempts('a', 'neutral', 50);
    assert.equal(b.state('a'), 'closed');
    assert.deepEqual(b.health('a'), { failureRatio: 1, consecutiveFailures: 3 });
    attempts('a', 'endpoint-fault');
    assert.equal(b.state('a'), 'open', 'four of four counted attempts failed');

    start({ volume_threshold: 1, error_threshold_percentage: 0 });
    attempts('b', 'neutral', 50);
    assert.equal(b.state('b'), 'closed');
    assert.deepEqual(b.health('b'), { failureRatio: 0, consecutiveFailures: 0 });
  });

  it('consecutive endpoint faults open the breaker whatever the window holds', () => {
    start({ consecutive_failures: 5 });
    attempts('a', 'success', 200);
    attempts('a', 'endpoint-fault', 4);
    attempts('a', 'neutral', 3);
    attempts('a', 'success');
    attempts('a', 'endpoint-fault', 4);
    assert.equal(b.state('a'), 'closed', 'a success resets the count; neutral outcomes do not');
    attempts('a', 'endpoint-fault');
    assert.equal(b.state('a'), 'open');
    assert.equal(seen[0]?.reason, '5 consecutive failures');

    start({ consecutive_failures: 0 });
    attempts('b', 'success', 200);
    attempts('b', 'endpoint-fault', 20);
    assert.equal(b.state('b'), 'closed', '0 disables the rule');
  });

  it('mid-stream failures count against the attempt that already had its first chunk', () => {
    start();
    for (let i = 0; i < 4; i++) {
      const p = b.acquire('a');
      p.settle('success');
      b.recordFailure('a');
    }
    assert.equal(b.state('a'), 'open', 'four attempts, four failed streams: 100 %');

    start({ consecutive_failures: 3, volume_threshold: 1000 });
    attempts('b', 'success', 50);
    for (let i = 0; i < 3; i++) b.recordFailure('b');
    assert.equal(b.state('b'), 'open');
  });

  it('failures age out of the rolling window; consecutive faults are forgotten after a quiet window', () => {
    start({ consecutive_failures: 10, volume_threshold: 100 });
    attempts('a', 'success');
    attempts('a', 'endpoint-fault', 3);
    assert.deepEqual(b.health('a'), { failureRatio: 0.75, consecutiveFailures: 3 });
    for (let i = 0; i < WINDOW_BUCKETS; i++) rotation.emit('rotate');
    assert.deepEqual(b.health('a'), { failureRatio: 0, consecutiveFailures: 0 });
    attempts('a', 'endpoint-fault');
    assert.deepEqual(b.health('a'), { failureRatio: 1, consecutiveFailures: 1 });
    assert.equal(b.health('a'), b.health('a'), 'health is cached between changes');
    assert.equal(b.health('never-seen').failureRatio, 0);
  });

  it('announces health changes on faults (so views can be rebuilt), not on every success', () => {
    start();
    const changed: string[] = [];
    b.events.on('health', (e: string) => changed.push(e));
    attempts('a', 'success', 10);
    assert.deepEqual(changed, []);
    attempts('a', 'endpoint-fault');
    b.recordFailure('a');
    attempts('a', 'success');
    assert.deepEqual(changed, ['a', 'a', 'a']);
  });

  it('a forced try bypasses an open breaker; its success closes it, its failure leaves it open', async () => {
    start({ volume_threshold: 1 });
    attempts('a', 'endpoint-fault');
    const forced = b.acquire('a', { force: true });
    assert.equal(forced.forced, true);
    forced.settle('endpoint-fault');
    assert.equal(b.state('a'), 'open');
    assert.deepEqual(
      b.health('a'),
      { failureRatio: 1, consecutiveFailures: 2 },
      'faults while open still count, so a kept-open endpoint does not look healthy',
    );
    b.acquire('a', { force: true }).settle('success');
    assert.equal(b.state('a'), 'closed');
  });

  it('a config change keeps every breaker’s state; thresholds apply in place', () => {
    start({ volume_threshold: 1 });
    attempts('open', 'endpoint-fault');
    attempts('half', 'endpoint-fault');
    mock.timers.tick(2_000);
    b.configure({ ...base, volume_threshold: 1, reset_timeout_ms: 3_000 });
    mock.timers.tick(3_000);
    assert.equal(b.state('half'), 'half-open', 'the pending reset timer runs out as set');
    assert.equal(b.state('open'), 'half-open');
    attempts('open', 'endpoint-fault');
    mock.timers.tick(2_999);
    assert.equal(b.state('open'), 'open');
    mock.timers.tick(1);
    assert.equal(b.state('open'), 'half-open', 'the new reset timeout applies to the next opening');
    b.acquire('open').settle('success');

    // Thresholds in place: a closed breaker keeps its counts.
    attempts('closed', 'success', 2);
    attempts('closed', 'endpoint-fault', 2);
    b.configure({ ...base, volume_threshold: 5, error_threshold_percentage: 40, reset_timeout_ms: 3_000 });
    attempts('closed', 'endpoint-fault');
    assert.equal(b.state('closed'), 'open', '3 of 5 is over 40 %');

    // A window change rebuilds the counts but carries the state.
    const probe = b.acquire('half');
    const before = seen.length;
    b.configure({ ...base, window_ms: 5_000, reset_timeout_ms: 3_000 });
    assert.deepEqual(b.states(), { open: 'closed', half: 'half-open', closed: 'open' });
    assert.equal(seen.length, before, 'no transition');
    assert.throws(() => b.acquire('half'), isBreakerOpen, 'the probe stays taken');
    probe.settle('success');
    assert.equal(b.state('half'), 'closed');
    mock.timers.tick(3_000);
    assert.equal(b.state('closed'), 'half-open');
  });

  it('retain drops vanished endpoints (reporting them closed) and ignores their late outcomes', () => {
    start({ volume_threshold: 1 });
    attempts('a', 'endpoint-fault');
    const late = b.acquire('b');
    attempts('b', 'endpoint-fault');
    b.retain(['a']);
    assert.deepEqual(b.states(), { a: 'open' });
    assert.deepEqual(moves('b'), ['closed->open', 'open->closed']);
    late.settle('endpoint-fault');
    assert.deepEqual(b.states(), { a: 'open' });
    assert.equal(b.state('b'), 'closed');
  });
});
