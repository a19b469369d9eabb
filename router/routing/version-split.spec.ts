import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MeshError, Status } from '../../common/errors.js';
import { createRandom as seeded } from '../../common/random.js';
import type { ModelConfig } from '../config/schema.js';
import { chooseVersion, rendezvousOrder } from './version-split.js';

const model = (weights: Record<string, number>, extra: Partial<ModelConfig> = {}): ModelConfig => ({
  versions: Object.fromEntries(Object.entries(weights).map(([k, w]) => [k, { weight: w }])),
  sticky: 'session_key',
  profile: 'default',
  fallback: true,
  ...extra,
});
const all = () => true;

describe('version choice', () => {
  it('splits traffic by weight (90/10 within 1.5 points over 20,000 requests)', () => {
    const random = seeded(42);
    const counts: Record<string, number> = { v1: 0, v2: 0 };
    const m = model({ v1: 90, v2: 10 });
    for (let i = 0; i < 20_000; i++) {
      const c = chooseVersion({ model: 'm' }, m, all, random);
      assert.equal(c.reason, 'weighted');
      counts[c.version] = (counts[c.version] ?? 0) + 1;
    }
    assert.ok(Math.abs((counts.v2 ?? 0) / 20_000 - 0.1) < 0.015, JSON.stringify(counts));
  });

  it('never sends new traffic to a version at weight 0 while others can serve', () => {
    const random = seeded(1);
    const m = model({ v1: 1, v2: 0 });
    for (let i = 0; i < 1000; i++) assert.equal(chooseVersion({ model: 'm' }, m, all, random).version, 'v1');
  });

  it('pins a version, and rejects an unknown one with NOT_FOUND', () => {
    const m = model({ v1: 100, v2: 0 });
    assert.deepEqual(chooseVersion({ model: 'm', pinnedVersion: 'v2' }, m, all), {
      version: 'v2',
      reason: 'pinned',
    });
    assert.throws(
      () => chooseVersion({ model: 'm', pinnedVersion: 'v9' }, m, all),
      (e: MeshError) => e.code === Status.NOT_FOUND && /no version "v9"/.test(e.message),
    );
  });

  it('does not fall back from a pinned version', () => {
    const m = model({ v1: 50, v2: 50 });
    assert.throws(
      () => chooseVersion({ model: 'm', pinnedVersion: 'v2' }, m, (v) => v !== 'v2'),
      (e: MeshError) => e.code === Status.UNAVAILABLE,
    );
  });

  it('maps a session key to the same version every time', () => {
    const m = model({ v1: 50, v2: 50 });
    for (let k = 0; k < 200; k++) {
      const first = chooseVersion({ model: 'm', sessionKey: `user-${k}` }, m, all, seeded(k));
      for (let i = 0; i < 5; i++) {
        const again = chooseVersion({ model: 'm', sessionKey: `user-${k}` }, m, all, seeded(k + 1000 + i));
        assert.equal(again.version, first.version);
        assert.equal(again.reason, 'sticky');
      }
    }
  });

  it('moves only the sessions it must when weights change (rendezvous hashing)', () => {
    const keys = Array.from({ length: 10_000 }, (_, i) => `session-${i}`);
    const before = keys.map(
      (k) =>
        rendezvousOrder(k, [
          ['v1', { weight: 90 }],
          ['v2', { weight: 10 }],
        ])[0],
    );
    const after = keys.map(
      (k) =>
        rendezvousOrder(k, [
          ['v1', { weight: 70 }],
          ['v2', { weight: 30 }],
        ])[0],
    );
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] !== after[i]) {
        moved++;
        // Growing v2 only ever moves sessions from v1 to v2.
        assert.equal(after[i], 'v2');
      }
    }
    const share = (list: Array<string | undefined>) => list.filter((v) => v === 'v2').length / keys.length;
    assert.ok(Math.abs(share(before) - 0.1) < 0.02, `v2 share before ${share(before)}`);
    assert.ok(Math.abs(share(after) - 0.3) < 0.02, `v2 share after ${share(after)}`);
    assert.ok(Math.abs(moved / keys.length - 0.2) < 0.02, `moved ${moved}`);
  });

  it('falls back to another version when the chosen one has no usable endpoint', () => {
    const m = model({ v1: 0, v2: 100 });
    const c = chooseVersion({ model: 'm' }, m, (v) => v === 'v1', seeded(3));
    assert.deepEqual(c, { version: 'v1', reason: 'fallback', fallbackFrom: 'v2' });
  });

  it('reports UNAVAILABLE when fallback is off or nothing can serve', () => {
    const off = model({ v1: 50, v2: 50 }, { fallback: false });
    assert.throws(
      () => chooseVersion({ model: 'm', sessionKey: 'k' }, off, (v) => v === 'nope'),
      (e: MeshError) => e.code === Status.UNAVAILABLE && /fallback is off/.test(e.message),
    );
    assert.throws(
      () => chooseVersion({ model: 'm' }, model({ v1: 1 }), () => false),
      (e: MeshError) => e.code === Status.UNAVAILABLE,
    );
  });
});
