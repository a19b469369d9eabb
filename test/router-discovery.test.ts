/**
 * Discovery: DNS (a headless Service's records, resolver injected) and Redis
 * (sidecar registration keys, written here directly) add and remove
 * endpoints while the router runs; pools form from what sidecars report.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { registrationKey } from '../common/discovery-keys.js';
import { createLogger } from '../common/log.js';
import { createDiscovery } from '../router/discovery/discovery.js';
import { createRedisClient } from '../router/discovery/redis.js';
import { type EngineStub, startEngineStub } from './helpers/engine-stub.js';
import { startPrivateRedis } from './helpers/redis.js';
import { startRouterHarness } from './helpers/router-harness.js';
import { waitUntil } from './helpers/wait.js';

const ROUTES = 'models: { m: { versions: { v1: { weight: 1 }, v2: { weight: 1 } } } }\n';
const REDIS_URL = process.env.LLMMESH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('discovery', () => {
  it('dns: follows the A records of a name, adding and removing endpoints', async () => {
    // Two sidecars on one port, as pods behind a headless Service: 127.0.0.2 and 127.0.0.3.
    const first = await startEngineStub({ model: 'm', version: 'v1', host: '127.0.0.2' });
    const port = Number(first.address.split(':')[1]);
    const second = await startEngineStub({ model: 'm', version: 'v2', host: '127.0.0.3', port });
    let records = ['127.0.0.2'];
    let lookups = 0;
    const lookupEvents = new EventEmitter();
    const h = await startRouterHarness({
      endpoints: [],
      discovery: { kind: 'dns', name: 'sidecars.llm.svc.cluster.local', port, interval_ms: 100 },
      yaml: ROUTES,
      extra: {
        resolver: async (name) => {
          assert.equal(name, 'sidecars.llm.svc.cluster.local');
          lookups++;
          lookupEvents.emit('lookup');
          if (records.length === 0) throw Object.assign(new Error('queryA ETIMEOUT'), { code: 'ETIMEOUT' });
          return records;
        },
      },
    });
    const addresses = () =>
      h.router.endpoints
        .snapshot()
        .endpoints.map((e) => `${e.address}${e.ready ? '' : '?'}`)
        .sort();
    const wait = (want: string[]) =>
      waitUntil(h.router.endpoints.events, 'change', () => addresses().join() === want.join(), want.join());
    try {
      await wait([`127.0.0.2:${port}`]);
      records = ['127.0.0.3', '127.0.0.2'];
      await wait([`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
      const pools = ['v1', 'v2'].map((v) =>
        h.router.endpoints
          .snapshot()
          .pool('m', v)
          .map((e) => e.address),
      );
      assert.deepEqual(
        pools,
        [[`127.0.0.2:${port}`], [`127.0.0.3:${port}`]],
        'pools from what each sidecar reports',
      );
      const r = await h.client.generate({ model: 'm', prompt: 'hi', routing: { version: 'v2' } });
      assert.equal(r.endpoint, `127.0.0.3:${port}`);
      // A failed lookup keeps the last list.
      records = [];
      const seen = lookups;
      await waitUntil(lookupEvents, 'lookup', () => lookups > seen + 2, 'failed lookups');
      assert.deepEqual(addresses(), [`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
      records = ['127.0.0.3'];
      await wait([`127.0.0.3:${port}`]);
      assert.equal(h.router.status().discovery, 'dns');
    } finally {
      await h.close();
      await first.close();
      await second.close();
    }
  });

  it('redis: lists sidecar registrations with SCAN; a deleted or expired key removes the endpoint', async () => {
    const prefix = `llmmesh-test:${randomUUID()}:`;
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const stubs: EngineStub[] = await Promise.all([
      startEngineStub({ model: 'm', version: 'v1' }),
      startEngineStub({ model: 'm', version: 'v2' }),
    ]);
    const register = (s: EngineStub, version: string, ttlMs = 10_000) =>
      redis.set(
        registrationKey(s.address, prefix),
        JSON.stringify({ address: s.address, model: 'm', version, updatedAt: Date.now() }),
        'PX',
        ttlMs,
      );
    const [a, b] = stubs as [EngineStub, EngineStub];
    await register(a, 'v1');
    // Keys under other prefixes and garbage values are ignored.
    await redis.set(`${prefix}garbage`, 'not json', 'PX', 10_000);
    const h = await startRouterHarness({
      endpoints: [],
      discovery: { kind: 'redis', url: REDIS_URL, prefix, interval_ms: 100 },
      yaml: ROUTES,
    });
    const addresses = () =>
      h.router.endpoints
        .snapshot()
        .endpoints.map((e) => e.address)
        .sort();
    const wait = (want: string[]) =>
      waitUntil(
        h.router.endpoints.events,
        'change',
        () => addresses().join() === [...want].sort().join(),
        want.join(),
      );
    try {
      await wait([a.address]);
      await register(b, 'v2', 400);
      await wait([a.address, b.address]);
      await h.waitReady(2);
      const r = await h.client.generate({ model: 'm', prompt: 'hi', routing: { version: 'v2' } });
      assert.equal(r.endpoint, b.address);
      // b's registration expires (its sidecar stopped heartbeating).
      await wait([a.address]);
      await redis.del(registrationKey(a.address, prefix));
      await wait([]);
    } finally {
      await h.close();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(keys);
      redis.disconnect();
      for (const s of stubs) await s.close();
    }
  });

  it('redis: a Redis that restarts empty does not empty the pool; endpoints stay until re-registered or their TTL ends', async () => {
    const server = await startPrivateRedis();
    const prefix = 'llmmesh:endpoints:';
    const a = '127.0.0.1:7101';
    const b = '127.0.0.1:7102';
    const register = async (url: string, address: string, ttlMs: number) => {
      const r = new Redis(url, { maxRetriesPerRequest: 1 });
      await r.set(
        registrationKey(address, prefix),
        JSON.stringify({ address, model: 'm', version: 'v1', updatedAt: Date.now() }),
        'PX',
        ttlMs,
      );
      r.disconnect();
    };
    await register(server.url, a, 60_000);
    await register(server.url, b, 60_000);
    let clock = Date.now();
    const events = new EventEmitter();
    const lists: string[][] = [];
    const logs: string[] = [];
    const logger = createLogger('router', {
      level: 'debug',
      write: (line) => {
        logs.push(line);
        events.emit('log');
      },
    });
    // Count finished polls: each starts with INFO, so two more INFO replies frame a whole listing.
    let infos = 0;
    const discovery = createDiscovery(
      { kind: 'redis', url: server.url, prefix, interval_ms: 20 },
      {
        logger,
        now: () => clock,
        redis: (url) => {
          const c = createRedisClient(url);
          return {
            scan: c.scan.bind(c),
            mget: c.mget.bind(c),
            pttl: c.pttl.bind(c),
            quit: c.quit.bind(c),
            info: async (section) => {
              const r = await c.info(section);
              infos++;
              events.emit('info');
              return r;
            },
          };
        },
        onAddresses: (addresses) => {
          lists.push(addresses);
          events.emit('list');
        },
      },
    );
    try {
      await waitUntil(events, 'list', () => lists.at(-1)?.join() === [a, b].join(), 'a and b listed');
      await server.kill();
      await server.restart(); // empty: no registrations
      await waitUntil(
        events,
        'log',
        () => logs.some((l) => l.includes('Redis restarted without registrations')),
        'restart noticed',
      );
      assert.deepEqual(lists.at(-1), [a, b], 'the pool is kept');
      assert.ok(
        lists.every((l) => l.length > 0),
        'never an empty pool',
      );

      // a re-registers (its next heartbeat); b never does and goes when its TTL would have ended.
      await register(server.url, a, 60_000);
      const seen = infos;
      await waitUntil(events, 'info', () => infos >= seen + 2, 'a whole poll');
      assert.deepEqual(lists.at(-1), [a, b]);
      clock += 61_000;
      await waitUntil(events, 'list', () => lists.at(-1)?.join() === a, 'b expired');
      // On the same server, a deleted key removes the endpoint at once.
      const r = new Redis(server.url, { maxRetriesPerRequest: 1 });
      await r.del(registrationKey(a, prefix));
      r.disconnect();
      await waitUntil(events, 'list', () => lists.at(-1)?.length === 0, 'a removed');
    } finally {
      await discovery.close();
      await server.close();
    }
  });
});
