import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { type MeshError, Status } from '../../../../common/errors.js';
import { createRateLimiter, withResponsiveTimeout } from '../../../../router/auth/rate-limiter.js';
import { startPrivateRedis } from '../../../helpers/redis.js';

async function connected(url: string): Promise<Redis> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => 50 });
  if (r.status !== 'ready') await once(r, 'ready');
  return r;
}

describe('withResponsiveTimeout', () => {
  it('does not count event-loop lag: a reply that arrived while the loop was blocked is taken', async () => {
    const r = await connected('redis://127.0.0.1:6379');
    try {
      const reply = withResponsiveTimeout(r.ping(), 20);
      const until = performance.now() + 100;
      while (performance.now() < until) {
        // A busy router: the reply waits in the socket meanwhile.
      }
      assert.equal(await reply, 'PONG');
    } finally {
      await r.quit();
    }
  });

  it('times out after the given responsive time', async () => {
    await assert.rejects(withResponsiveTimeout(new Promise(() => {}), 20), /no answer within 20 ms/);
  });
});

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
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.close());
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
    // With Redis gone, decisions are local: this replica's share (1/4) of what
    // Redis last said was left (399), refilling at 400 / 4 per second.
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
    assert.equal(ok, 99);
  });

  it('a replica whose Redis stalls decides from its share of the shared state, and Redis learns what it granted', async () => {
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.close());
    const admin = await connected(redis.url);
    cleanups.push(() => admin.quit());
    const client = await connected(redis.url);
    cleanups.push(() => client.quit());
    const fallbacks: string[] = [];
    const limiter = createRateLimiter({
      redis: client,
      replicas: 2,
      redisTimeoutMs: 20,
      now: () => 0, // the local bucket does not refill during the test
      onFallback: (reason) => fallbacks.push(reason),
    });
    const limits = { tokensPerMinute: 6_000 }; // Redis refills 0.1 token per ms
    await limiter.admit('t', limits, 1_000); // shared: 5,000 left, so this replica's share is 2,500
    // Redis holds every script (but still answers reads) for a while.
    await admin.call('CLIENT', 'PAUSE', '10000', 'WRITE');
    await limiter.admit('t', limits, 2_000); // from the local share
    await assert.rejects(
      limiter.admit('t', limits, 1_000),
      (e: MeshError) => e.code === Status.RESOURCE_EXHAUSTED,
    );
    assert.deepEqual(fallbacks, ['timeout', 'timeout']);
    assert.equal(limiter.degraded, true);

    // The stalled scripts run late: the first admits (so it is not owed twice),
    // the second admits too although this replica refused it (so it is refunded).
    await admin.call('CLIENT', 'UNPAUSE');
    await client.ping(); // after the late replies on the same connection
    await limiter.admit('t', limits, 1);
    assert.equal(limiter.degraded, false);
    const tokens = Number(await admin.hget('llmmesh:ratelimit:t:tpm', 'tokens'));
    // 6,000 − 1,000 − 2,000 − 1, plus what refilled meanwhile: each granted token counted once.
    assert.ok(tokens >= 2_999 && tokens < 3_999, `shared bucket ${tokens}`);
  });

  it('a grant made while Redis was down is charged to Redis when it returns', async () => {
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.close());
    const client = new Redis(redis.url, {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => 50,
    });
    client.on('error', () => {});
    cleanups.push(() => client.disconnect());
    if (client.status !== 'ready') await once(client, 'ready');
    const fallbacks: string[] = [];
    const limiter = createRateLimiter({
      redis: client,
      replicas: 2,
      now: () => 0,
      onFallback: (reason) => fallbacks.push(reason),
    });
    const limits = { tokensPerMinute: 6_000 };
    await limiter.admit('t', limits, 1_000); // shared 5,000; local share 2,500
    await redis.kill();
    await limiter.admit('t', limits, 2_000); // granted alone: owed to Redis
    assert.ok(
      fallbacks.length > 0 && fallbacks.every((r) => r === 'unavailable' || r === 'error'),
      fallbacks.join(),
    );

    await redis.restart();
    await once(client, 'ready');
    // A fresh Redis starts the bucket full, less what this replica granted alone.
    await limiter.admit('t', limits, 1);
    const admin = await connected(redis.url);
    cleanups.push(() => admin.quit());
    const tokens = Number(await admin.hget('llmmesh:ratelimit:t:tpm', 'tokens'));
    assert.ok(tokens >= 3_999 && tokens < 4_100, `shared bucket ${tokens}`);
  });
});
