import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { errors, MeshError, Status } from '../../common/errors.js';
import { silentLogger } from '../../common/log.js';
import { type BreakerTransition, createBreakers, isBreakerOpen, isEndpointFault } from './breakers.js';

const config = {
  error_threshold_percentage: 50,
  volume_threshold: 4,
  reset_timeout_ms: 5_000,
  window_ms: 10_000,
  max_ejection_percent: 50,
};
const fail = (code: Status) => () => Promise.reject(new MeshError(code, `failed with ${Status[code]}`));
const ok = () => Promise.resolve('ok');

describe('endpoint circuit breakers', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'] }));
  afterEach(() => mock.timers.reset());

  it('classifies endpoint faults', () => {
    const cases: Array<[unknown, boolean]> = [
      [errors.unavailable('down'), true],
      [new MeshError(Status.INTERNAL, 'engine 500'), true],
      [new MeshError(Status.UNKNOWN, 'weird'), true],
      [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), true],
      [errors.invalidArgument('prompt', 'too long'), false],
      [errors.notFound('no such model'), false],
      [errors.cancelled('client went away'), false],
      [errors.deadlineExceeded('client deadline'), false],
      [errors.resourceExhausted('429', 100), false],
      [new MeshError(Status.PERMISSION_DENIED, 'no'), false],
    ];
    for (const [err, fault] of cases) assert.equal(isEndpointFault(err), fault, String(err));
  });

  it('opens on endpoint faults, half-opens after the reset timeout, closes on a good probe', async () => {
    const rotation = new EventEmitter();
    const b = createBreakers({ config, logger: silentLogger, rotateBucketController: rotation });
    const seen: BreakerTransition[] = [];
    b.events.on('transition', (t: BreakerTransition) => seen.push(t));
    try {
      // Below the volume threshold nothing opens, whatever the failure rate.
      for (let i = 0; i < 3; i++) await assert.rejects(b.run('a', fail(Status.UNAVAILABLE)));
      assert.equal(b.state('a'), 'closed');
      await assert.rejects(b.run('a', fail(Status.INTERNAL)));
      assert.equal(b.state('a'), 'open');
      await assert.rejects(
        b.run('a', ok),
        (e) => isBreakerOpen(e) && (e as MeshError).code === Status.UNAVAILABLE,
      );
      assert.equal(b.probeAvailable('a'), false);

      mock.timers.tick(4_999);
      assert.equal(b.state('a'), 'open');
      mock.timers.tick(1);
      assert.equal(b.state('a'), 'half-open');
      assert.equal(b.probeAvailable('a'), true);
      // One probe goes through; a second concurrent call fails fast.
      let finishProbe!: () => void;
      const probe = b.run(
        'a',
        () =>
          new Promise<string>((r) => {
            finishProbe = () => r('ok');
          }),
      );
      assert.equal(b.probeAvailable('a'), false);
      await assert.rejects(b.run('a', ok), isBreakerOpen);
      finishProbe();
      assert.equal(await probe, 'ok');
      assert.equal(b.state('a'), 'closed');
      assert.deepEqual(
        seen.map((t) => `${t.from}->${t.to}`),
        ['closed->open', 'open->half-open', 'half-open->closed'],
      );
    } finally {
      b.close();
    }
  });

  it('a failed probe reopens the breaker', async () => {
    const b = createBreakers({
      config: { ...config, volume_threshold: 1 },
      logger: silentLogger,
      rotateBucketController: new EventEmitter(),
    });
    try {
      await assert.rejects(b.run('a', fail(Status.UNAVAILABLE)));
      assert.equal(b.state('a'), 'open');
      mock.timers.tick(5_000);
      await assert.rejects(b.run('a', fail(Status.UNAVAILABLE)));
      assert.equal(b.state('a'), 'open');
    } finally {
      b.close();
    }
  });

  it('client faults never open a breaker', async () => {
    const b = createBreakers({
      config: { ...config, volume_threshold: 1 },
      logger: silentLogger,
      rotateBucketController: new EventEmitter(),
    });
    try {
      for (const code of [
        Status.INVALID_ARGUMENT,
        Status.NOT_FOUND,
        Status.CANCELLED,
        Status.DEADLINE_EXCEEDED,
        Status.RESOURCE_EXHAUSTED,
      ]) {
        for (let i = 0; i < 20; i++) await assert.rejects(b.run('a', fail(code)));
      }
      assert.equal(b.state('a'), 'closed');
    } finally {
      b.close();
    }
  });

  it('failures age out of the rolling window', async () => {
    const rotation = new EventEmitter();
    const b = createBreakers({ config, logger: silentLogger, rotateBucketController: rotation });
    try {
      for (let i = 0; i < 3; i++) await assert.rejects(b.run('a', fail(Status.UNAVAILABLE)));
      for (let i = 0; i < 10; i++) rotation.emit('rotate');
      await assert.rejects(b.run('a', fail(Status.UNAVAILABLE)));
      assert.equal(b.state('a'), 'closed', 'one failure in a fresh window is under the volume threshold');
    } finally {
      b.close();
    }
  });

  it('a forced try bypasses an open breaker, and its success closes it', async () => {
    const b = createBreakers({
      config: { ...config, volume_threshold: 1 },
      logger: silentLogger,
      rotateBucketController: new EventEmitter(),
    });
    try {
      await assert.rejects(b.run('a', fail(Status.UNAVAILABLE)));
      assert.equal(b.state('a'), 'open');
      assert.equal(await b.run('a', ok, { force: true }), 'ok');
      assert.equal(b.state('a'), 'closed');
    } finally {
      b.close();
    }
  });

  it('reconfiguring rebuilds breakers closed; retain drops vanished endpoints', async () => {
    const b = createBreakers({
      config: { ...config, volume_threshold: 1 },
      logger: silentLogger,
      rotateBucketController: new EventEmitter(),
    });
    try {
      await assert.rejects(b.run('a', fail(Status.UNAVAILABLE)));
      await assert.rejects(b.run('b', fail(Status.UNAVAILABLE)));
      b.retain(['b']);
      assert.deepEqual(b.states(), { b: 'open' });
      b.configure({ ...config, reset_timeout_ms: 1_000 });
      assert.deepEqual(b.states(), {});
      assert.equal(b.state('b'), 'closed');
    } finally {
      b.close();
    }
  });
});
