import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { silentLogger } from '../../../../common/log.js';
import { createRedisConnection } from '../../../../common/redis.js';
import { createResponseCache, decodeEntry, encodeEntry } from '../../../../sidecar/cache/response-cache.js';
import { deletePrefix, redisClient, SHARED_REDIS_URL, uniquePrefix } from '../../../helpers/redis.js';

const answer = (text: string) => ({
  texts: [text, ' world', ''],
  finishReason: 'length',
  usage: { promptTokens: 3, completionTokens: 2, cachedTokens: 0 },
});

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('response cache: L1', () => {
  it('serves a stored answer until its TTL passes on the injected clock', () => {
    const clock = fakeClock();
    const cache = createResponseCache({ ttlMs: 1000, now: clock.now, logger: silentLogger });
    cache.store('k', answer('hello'));
    assert.deepEqual(cache.getL1('k')?.texts, ['hello', ' world', '']);
    assert.equal(cache.getL1('k')?.expiresAt, 1_001_000);
    clock.advance(999);
    assert.ok(cache.getL1('k'), 'still fresh 1 ms before expiry');
    clock.advance(2);
    assert.equal(cache.getL1('k'), undefined, 'expired');
  });

  it('is bounded in bytes, evicting the least recently used answer', () => {
    const cache = createResponseCache({ l1MaxBytes: 1500, logger: silentLogger });
    const big = (c: string) => ({ ...answer(c.repeat(400)) });
    cache.store('a', big('a'));
    cache.store('b', big('b'));
    assert.ok(cache.getL1('a'), 'a is used, so b is the least recently used');
    cache.store('c', big('c'));
    assert.ok(cache.l1Bytes <= 1500, `${cache.l1Bytes} bytes`);
    assert.ok(cache.getL1('a'));
    assert.equal(cache.getL1('b'), undefined);
    assert.ok(cache.getL1('c'));
    cache.store('huge', big('h'.repeat(10)));
    assert.equal(cache.getL1('huge'), undefined, 'an answer larger than the cache is not kept');
  });

  it('0 bytes disables L1', () => {
    const cache = createResponseCache({ l1MaxBytes: 0, logger: silentLogger });
    cache.store('k', answer('x'));
    assert.equal(cache.getL1('k'), undefined);
    assert.equal(cache.l2State, 'off');
  });

  it('the L2 wire form round-trips and anything else is a miss', () => {
    const v = { ...answer('é漢'), expiresAt: 42 };
    assert.deepEqual(decodeEntry(encodeEntry(v)), v);
    assert.equal(decodeEntry('not json'), undefined);
    assert.equal(decodeEntry('{"v":2,"t":[],"f":"stop","e":1}'), undefined);
    assert.equal(decodeEntry('{"v":1,"t":[1],"f":"stop","e":1}'), undefined);
  });
});

describe('response cache: L2 on the shared Redis', () => {
  const prefix = uniquePrefix('response-cache');
  let redis: Redis;
  let admin: Redis;
  before(async () => {
    redis = createRedisConnection({ url: SHARED_REDIS_URL, logger: silentLogger, commandTimeoutMs: 1000 });
    admin = redisClient();
    if (redis.status !== 'ready') await once(redis, 'ready');
  });
  after(async () => {
    await deletePrefix(admin, prefix);
    admin.disconnect();
    redis.disconnect();
  });
  /** One pod's cache over the shared Redis, on `clock`. */
  const podCache = (clock: ReturnType<typeof fakeClock>) =>
    createResponseCache({ redis, keyPrefix: prefix, ttlMs: 60_000, now: clock.now, logger: silentLogger });

  it('stores with the TTL in Redis, and another cache (another pod) reads it into its L1', async () => {
    const clock = fakeClock();
    const a = podCache(clock);
    const stored = once(a.events, 'stored', {}).then(() => once(a.events, 'stored'));
    a.store('key1', answer('shared'));
    const [event] = (await stored) as [{ tier: string }];
    assert.equal(event.tier, 'l2');
    const ttl = await admin.pttl(`${prefix}key1`);
    assert.ok(ttl > 59_000 && ttl <= 60_000, `pttl ${ttl}`);

    const b = podCache(clock);
    assert.equal(b.getL1('key1'), undefined);
    const hit = await b.getL2('key1');
    assert.deepEqual(hit?.texts, ['shared', ' world', '']);
    assert.equal(hit?.usage.promptTokens, 3);
    assert.ok(b.getL1('key1'), 'copied into L1');
    assert.equal(await b.getL2('missing'), undefined);
  });

  it('ignores an L2 entry whose stamp has expired on this clock', async () => {
    const clock = fakeClock();
    const a = podCache(clock);
    const stored = once(a.events, 'stored').then(() => once(a.events, 'stored'));
    a.store('key2', answer('old'));
    await stored;
    clock.advance(60_001);
    assert.equal(await a.getL2('key2'), undefined);
  });
});
