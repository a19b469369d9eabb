import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { parseRegistration, registrationKey } from '../../../common/discovery-keys.js';
import { silentLogger } from '../../../common/log.js';
import { createRedisConnection } from '../../../common/redis.js';
import { createRegistration } from '../../../sidecar/registration.js';
import { deletePrefix, redisClient, SHARED_REDIS_URL, uniquePrefix } from '../../helpers/redis.js';

describe('redis registration', () => {
  const prefix = uniquePrefix('registration');
  let redis: Redis;
  let admin: Redis;
  before(async () => {
    redis = createRedisConnection({ url: SHARED_REDIS_URL, commandTimeoutMs: 1000, logger: silentLogger });
    admin = redisClient();
    if (redis.status !== 'ready') await once(redis, 'ready');
  });
  after(async () => {
    await deletePrefix(admin, prefix);
    admin.disconnect();
    redis.disconnect();
  });

  it('writes the key routers read, with a TTL, and deletes it on stop', async () => {
    let t = 1234;
    const reg = createRegistration({
      redis,
      address: '10.0.0.7:7001',
      identity: () => ({ model: 'm', version: 'v2' }),
      prefix,
      ttlMs: 5_000,
      heartbeatMs: 60_000,
      now: () => t,
      logger: silentLogger,
    });
    assert.equal(reg.key, registrationKey('10.0.0.7:7001', prefix));
    if (!(await admin.exists(reg.key))) await once(reg.events, 'registered');
    assert.deepEqual(parseRegistration(await admin.get(reg.key)), {
      address: '10.0.0.7:7001',
      model: 'm',
      version: 'v2',
      updatedAt: 1234,
    });
    const ttl = await admin.pttl(reg.key);
    assert.ok(ttl > 0 && ttl <= 5_000, `pttl ${ttl}`);
    t = 5678;
    assert.equal(await reg.beat(), true);
    assert.equal(parseRegistration(await admin.get(reg.key))?.updatedAt, 5678, 'the heartbeat refreshes it');
    await reg.stop();
    assert.equal(await admin.exists(reg.key), 0);
    assert.equal(await reg.beat(), false, 'no beat after stop');
    assert.equal(await admin.exists(reg.key), 0);
  });

  it('writes nothing while the model is unknown', async () => {
    const reg = createRegistration({
      redis,
      address: '10.0.0.8:7001',
      identity: () => ({ model: '', version: 'v1' }),
      prefix,
      heartbeatMs: 60_000,
      logger: silentLogger,
    });
    assert.equal(await reg.beat(), false);
    assert.equal(await admin.exists(reg.key), 0);
    await reg.stop();
  });
});
