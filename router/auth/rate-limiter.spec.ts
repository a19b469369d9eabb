import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { type MeshError, Status } from '../../common/errors.js';
import { spawnRedis } from '../../test/helpers/spawn-redis.js';
import { createRateLimiter } from './rate-limiter.js';

async function connected(url: string): Promise<Redis> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => 50 });
  if (r.status !== 'ready') await once(r, 'ready');
  return r;
}

describe('rate limits (local buckets, injected clock)', () => {
  it('enforces requests per second and refills with time', async () => {
    let t = 0;
    const limiter = createRateLimiter({ now: () => t });
    const limits = { requestsPerSecond: 2 };
    await limiter.admit('a', limits, 0);
    await limiter.admit('a', limits, 0);
    await assert.rejects(limiter.admit('a', limits, 0), (e: MeshError) => {
      assert.equal(e.code, Status.RESOURCE_EXHAUSTED);
      assert.equal(e.retryPushbackMs, 500);
      assert.match(e.message, /requests_per_second/);
      return true;
    });
    t += 500;
    await limiter.admit('a', limits, 0);
    await limiter.admit('b', limits, 0); // tenants are separate
  });

  it('takes prompt tokens at admission and charges output tokens as they stream', async () => {
    let t = 0;
    const limiter = createRateLimiter({ now: () => t });
    const limits = { tokensPerMinute: 600 }; // 10 tokens per second
    await limiter.admit('a', limits, 100);
    limiter.charge('a', limits, 450); // bucket now 50
    await limiter.admit('a', limits, 50);
    await assert.rejects(limiter.admit('a', limits, 20), (e: MeshError) => e.retryPushbackMs === 2000);
    limiter.charge('a', limits, 100); // streaming may overdraw: bucket -100
    t += 12_000; // +120 tokens → 20
    await limiter.admit('a', limits, 20);
  });
});

describe('rate limits shared through Redis', () => {
  const cleanups: Array<() => unknown> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('two replicas enforce one tokens-per-minute budget together', async () => {
    const r1 = await connected('redis://127.0.0.1:6379');
    const r2 = await connected('redis://127.0.0.1:6379');
    cleanups.push(
      () => r1.quit(),
      () => r2.quit(),
    );
    const keyPrefix = `test:${randomUUID()}:`;
    const a = createRateLimiter({ redis: r1, keyPrefix, replicas: 2 });
    const b = createRateLimiter({ redis: r2, keyPrefix, replicas: 2 });
    const limits = { tokensPerMinute: 60_000 }; // refills 1 token per ms
    let admitted = 0;
    const attempts = 80;
    for (let i = 0; i < attempts; i++) {
      try {
        await (i % 2 === 0 ? a : b).admit('tenant', limits, 1_000);
        admitted += 1_000;
      } catch (e) {
        assert.equal((e as MeshError).code, Status.RESOURCE_EXHAUSTED);
      }
    }
    assert.equal(a.degraded, false);
    // The budget (60,000) plus what refilled while the loop ran, not 2× it.
    assert.ok(admitted >= 60_000 && admitted < 80_000, `admitted ${admitted}`);
    await r1.del(`${keyPrefix}tenant:tpm`);
  });

  it('falls back to per-replica limits when Redis dies, failing no request', async () => {
    const redis = await spawnRedis();
    cleanups.push(() => redis.kill());
    const client = new Redis(redis.url, {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => 100,
    });
    client.on('error', () => {});
    cleanups.push(() => client.disconnect());
    if (client.status !== 'ready') await once(client, 'ready');
    const changes: boolean[] = [];
    const limiter = createRateLimiter({
      redis: client,
      replicas: 4,
      now: () => 0, // local buckets do not refill during the test
      onDegradedChange: (d) => changes.push(d),
    });
    const limits = { requestsPerSecond: 400 };
    await limiter.admit('t', limits, 0);
    assert.equal(limiter.degraded, false);
    await redis.kill();
    // With Redis gone, decisions are local: 400 / 4 replicas = 100 per second.
    let ok = 0;
    for (let i = 0; i < 150; i++) {
      try {
        await limiter.admit('t', limits, 0);
        ok++;
      } catch (e) {
        assert.equal((e as MeshError).code, Status.RESOURCE_EXHAUSTED);
      }
    }
    assert.equal(limiter.degraded, true);
    assert.deepEqual(changes, [true]);
    assert.equal(ok, 100);
  });
});
