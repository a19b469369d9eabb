/**
 * The response cache against a real simulator and real Redis: hits never
 * reach the engine (the simulator's counters say so), identical concurrent
 * requests share one engine call, Redis serves a restarted sidecar, and a
 * Redis that dies or hangs fails no request.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { cacheHeader, createSidecarClient, generate } from '../bench/sidecar-client.js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateRequest } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import { silentLogger } from '../common/log.js';
import { type Sidecar, type SidecarOptions, startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { fixture } from './helpers/fixtures.js';
import { replaySse, startHttpServer } from './helpers/http-server.js';
import { MODEL } from './helpers/mesh.js';
import {
  deletePrefix,
  type PrivateRedis,
  redisClient,
  SHARED_REDIS_URL,
  startPrivateRedis,
  uniquePrefix,
} from './helpers/redis.js';
import { nextEvent } from './helpers/wait.js';

const det = (prompt: string, maxTokens = 12): GenerateRequest => ({
  model: MODEL,
  prompt,
  sampling: { maxTokens, temperature: 0 },
});

/** Resolves at the next `cache-stored` event of `tier`. */
const stored = (sidecar: Sidecar, tier: 'l1' | 'l2') =>
  nextEvent(sidecar.events, 'cache-stored', (e: { tier: string }) => e.tier === tier);

async function metricsText(sidecar: Sidecar): Promise<string> {
  return sidecar.metrics.registry.metrics();
}

describe('response cache: L1 and coalescing', () => {
  let sim: SimServer;
  let simUrl: string;
  let sidecar: Sidecar;
  let client: EngineClient;
  let clockMs = 1_000_000;
  before(async () => {
    sim = createSimServer({ servedModelName: MODEL, timeScale: 1, interTokenLatencyMs: 2 });
    simUrl = (await sim.listen(0)).url;
    sidecar = await startSidecar({
      engineUrl: simUrl,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      cacheTtlMs: 60_000,
      now: () => clockMs,
      logger: silentLogger,
    });
    client = createSidecarClient(sidecar.address);
    await nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready);
  });
  after(async () => {
    client.close();
    await sidecar.close();
    await sim.close();
  });

  it('a deterministic request served twice reaches the engine once; the hit replays the same stream', async () => {
    const before = sim.stats.started;
    const storedL1 = stored(sidecar, 'l1');
    const miss = await generate(client, det('The history of the lighthouse', 16));
    await storedL1;
    assert.equal(cacheHeader(miss), 'miss');
    assert.equal(sim.stats.started, before + 1);

    const hit = await generate(client, det('The history of the lighthouse', 16));
    assert.equal(cacheHeader(hit), 'hit-l1');
    assert.equal(sim.stats.started, before + 1, 'the engine saw one request');
    assert.equal(hit.text, miss.text);
    assert.deepEqual(
      hit.chunks.map((c) => c.text),
      miss.chunks.map((c) => c.text),
      'same chunking',
    );
    assert.equal(hit.chunks[0]?.modelVersion, 'v1');
    assert.equal(hit.chunks.at(-1)?.finishReason, 'FINISH_REASON_LENGTH');
    const mu = miss.chunks.at(-1)?.usage;
    const hu = hit.chunks.at(-1)?.usage;
    assert.equal(hu?.completionTokens, 16);
    assert.equal(hu?.promptTokens, mu?.promptTokens);
    assert.equal(hu?.cachedTokens, hu?.promptTokens, 'no prompt token was computed for the hit');

    const text = await metricsText(sidecar);
    assert.match(
      text,
      /llm_response_cache_requests_total\{result="hit-l1",model="llama-3-8b-chat",model_version="v1"\} 1/,
    );
    assert.match(text, /llm_response_cache_requests_total\{result="miss",[^}]*\} \d+/);
  });

  it('a seed makes a request cacheable; a different seed is a different answer', async () => {
    const base = {
      model: MODEL,
      prompt: 'Seeded story',
      sampling: { maxTokens: 8, temperature: 0.9, seed: 1 },
    };
    const before = sim.stats.started;
    assert.equal(cacheHeader(await generate(client, base)), 'miss');
    assert.equal(cacheHeader(await generate(client, base)), 'hit-l1');
    const other = await generate(client, { ...base, sampling: { ...base.sampling, seed: 2 } });
    assert.equal(cacheHeader(other), 'miss');
    assert.equal(sim.stats.started, before + 2);
  });

  it('non-deterministic requests and bypass always reach the engine', async () => {
    const before = sim.stats.started;
    const random = { model: MODEL, prompt: 'Random story', sampling: { maxTokens: 4, temperature: 0.8 } };
    assert.equal(cacheHeader(await generate(client, random)), 'uncacheable');
    assert.equal(cacheHeader(await generate(client, random)), 'uncacheable');
    await generate(client, det('Bypassed story', 4));
    const bypass = await generate(client, det('Bypassed story', 4), {
      metadata: { 'x-llmmesh-cache': 'bypass' },
    });
    assert.equal(cacheHeader(bypass), 'bypass');
    assert.equal(bypass.chunks.at(-1)?.usage?.completionTokens, 4);
    assert.equal(sim.stats.started, before + 4);
  });

  it('20 identical concurrent requests make one engine request', async () => {
    const before = sim.stats.started;
    const started = nextEvent(sim.events, 'request-start');
    const results = await Promise.all(
      Array.from({ length: 20 }, () => generate(client, det('A concurrent question about tides', 64))),
    );
    await started;
    assert.equal(sim.stats.started, before + 1, 'one engine request');
    const headers = results.map(cacheHeader);
    assert.equal(headers.filter((h) => h === 'miss').length, 1);
    assert.ok(
      headers.every((h) => h === 'miss' || h === 'coalesced' || h === 'hit-l1'),
      headers.join(),
    );
    assert.equal(new Set(results.map((r) => r.text)).size, 1, 'everyone got the same answer');
    assert.ok(results.every((r) => r.chunks.length === 64 && r.chunks[0]?.modelVersion === 'v1'));
  });

  it('a follower that cancels leaves the shared engine call running for the others', async () => {
    const before = sim.stats.started;
    const abortedBefore = sim.stats.aborted;
    const controller = new AbortController();
    let firstChunk!: () => void;
    const gotChunk = new Promise<void>((r) => {
      firstChunk = r;
    });
    const leader = generate(client, det('Shared call with a quitter', 200));
    const quitter = generate(client, det('Shared call with a quitter', 200), {
      signal: controller.signal,
      onChunk: () => firstChunk(),
    });
    await gotChunk;
    controller.abort();
    await assert.rejects(quitter, (err: grpc.ServiceError) => err.code === 1 /* CANCELLED */);
    const r = await leader;
    assert.equal(r.chunks.length, 200);
    assert.equal(sim.stats.started, before + 1);
    assert.equal(sim.stats.aborted, abortedBefore);
  });

  it('when every caller goes away the engine request is aborted', async () => {
    const controller = new AbortController();
    const aborted = nextEvent(sim.events, 'request-abort');
    let firstChunk!: () => void;
    const gotChunk = new Promise<void>((r) => {
      firstChunk = r;
    });
    const call = generate(client, det('Nobody waits for this one', 4000), {
      signal: controller.signal,
      onChunk: () => firstChunk(),
    });
    await gotChunk;
    controller.abort();
    await assert.rejects(call);
    await aborted;
  });

  it('entries expire after the TTL on the injected clock', async () => {
    const before = sim.stats.started;
    await generate(client, det('Short-lived answer', 4));
    assert.equal(cacheHeader(await generate(client, det('Short-lived answer', 4))), 'hit-l1');
    clockMs += 60_001;
    assert.equal(cacheHeader(await generate(client, det('Short-lived answer', 4))), 'miss');
    assert.equal(sim.stats.started, before + 2);
  });
});

describe('response cache: coalescing against recorded vLLM output', () => {
  it('identical requests that arrive while the engine works join its one call and get its stream', async () => {
    // The engine holds its answer until every caller has arrived, then replays a real vLLM stream.
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    const engine = await startHttpServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path === '/health') res.writeHead(200).end();
      else if (path === '/v1/models') res.writeHead(200).end(fixture('vllm-models.json'));
      else if (path === '/v1/completions')
        void released.then(() => replaySse(res, fixture('vllm-completions-stream.sse')));
      else res.writeHead(404).end('{"detail":"Not Found"}');
    });
    const sidecar = await startSidecar({
      engineUrl: engine.url,
      listen: '127.0.0.1:0',
      version: 'v1',
      probeIntervalMs: 50,
      logger: silentLogger,
    });
    const client = createSidecarClient(sidecar.address);
    try {
      await nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready);
      let seen = 0;
      const allArrived = new Promise<void>((resolve) => {
        sidecar.events.on('cache', () => {
          if (++seen === 20) resolve();
        });
      });
      const req = {
        model: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
        prompt: 'San Francisco is a',
        sampling: { maxTokens: 7, temperature: 0 },
      };
      const calls = Array.from({ length: 20 }, () => generate(client, req));
      await allArrived;
      release();
      const results = await Promise.all(calls);
      assert.equal(
        engine.requests.filter((r) => r.path === '/v1/completions').length,
        1,
        'one engine request',
      );
      const headers = results.map(cacheHeader).sort();
      assert.deepEqual(headers, [...Array(19).fill('coalesced'), 'miss']);
      for (const r of results) {
        assert.equal(r.text, ' city in the state of California,');
        assert.equal(r.chunks.at(-1)?.finishReason, 'FINISH_REASON_LENGTH');
        assert.equal(r.chunks[0]?.modelVersion, 'v1');
      }
    } finally {
      client.close();
      await sidecar.close();
      await engine.close();
    }
  });
});

describe('response cache: L2 on the shared Redis', () => {
  const prefix = uniquePrefix('sidecar-cache');
  let sim: SimServer;
  let simUrl: string;
  let admin: Redis;
  before(async () => {
    sim = createSimServer({ servedModelName: MODEL, timeScale: 0 });
    simUrl = (await sim.listen(0)).url;
    admin = redisClient();
  });
  after(async () => {
    await deletePrefix(admin, prefix);
    admin.disconnect();
    await sim.close();
  });

  const start = (extra: Partial<SidecarOptions> = {}) =>
    startSidecar({
      engineUrl: simUrl,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      redis: SHARED_REDIS_URL,
      // Generous: these tests are about what L2 holds, not about its timeout (a loaded CI box is slow).
      redisTimeoutMs: 2_000,
      cacheKeyPrefix: `${prefix}cache:`,
      discoveryPrefix: `${prefix}endpoints:`,
      logger: silentLogger,
      ...extra,
    });
  const ready = async (s: Sidecar) => {
    const waits: Array<Promise<unknown>> = [];
    if (s.cache?.l2State !== 'up') waits.push(nextEvent(s.events, 'redis', (up: boolean) => up));
    if (!s.report().ready) waits.push(nextEvent(s.events, 'report', (r: { ready: boolean }) => r.ready));
    await Promise.all(waits);
  };

  it('after a restart (empty L1), Redis serves the answer without the engine', async () => {
    const first = await start();
    await ready(first);
    const c1 = createSidecarClient(first.address);
    const inRedis = stored(first, 'l2');
    const miss = await generate(c1, det('Cached across restarts'));
    await inRedis;
    assert.equal(cacheHeader(miss), 'miss');
    const keys = await admin.keys(`${prefix}cache:*`);
    assert.equal(keys.length, 1);
    const ttl = await admin.pttl(keys[0] as string);
    assert.ok(ttl > 0 && ttl <= 600_000, `a TTL is set (${ttl} ms)`);
    c1.close();
    await first.close();

    const before = sim.stats.started;
    const second = await start();
    await ready(second);
    const c2 = createSidecarClient(second.address);
    try {
      const hit = await generate(c2, det('Cached across restarts'));
      assert.equal(cacheHeader(hit), 'hit-l2');
      assert.equal(hit.text, miss.text);
      assert.equal(sim.stats.started, before, 'the engine was not asked');
      assert.equal(
        cacheHeader(await generate(c2, det('Cached across restarts'))),
        'hit-l1',
        'copied into L1',
      );
      assert.match(await metricsText(second), /llm_response_cache_requests_total\{result="hit-l2",[^}]*\} 1/);
      assert.match(await metricsText(second), /llm_response_cache_l2_up\{[^}]*\} 1/);
    } finally {
      c2.close();
      await second.close();
    }
  });

  it('pods of another version do not share answers', async () => {
    const v1 = await start();
    const v2 = await start({ version: 'v2' });
    await Promise.all([ready(v1), ready(v2)]);
    const c1 = createSidecarClient(v1.address);
    const c2 = createSidecarClient(v2.address);
    try {
      const inRedis = stored(v1, 'l2');
      await generate(c1, det('Version-specific answer'));
      await inRedis;
      assert.equal(cacheHeader(await generate(c2, { ...det('Version-specific answer') })), 'miss');
    } finally {
      c1.close();
      c2.close();
      await v1.close();
      await v2.close();
    }
  });
});

describe('response cache: a private Redis that dies or hangs', () => {
  let redis: PrivateRedis;
  let sim: SimServer;
  let sidecar: Sidecar;
  let client: EngineClient;
  before(async () => {
    redis = await startPrivateRedis();
    sim = createSimServer({ servedModelName: MODEL, timeScale: 0 });
    const { url } = await sim.listen(0);
    sidecar = await startSidecar({
      engineUrl: url,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      redis: redis.url,
      redisTimeoutMs: 500,
      logger: silentLogger,
    });
    client = createSidecarClient(sidecar.address);
    const waits: Array<Promise<unknown>> = [];
    if (sidecar.cache?.l2State !== 'up') waits.push(nextEvent(sidecar.events, 'redis', (up: boolean) => up));
    waits.push(nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready));
    await Promise.all(waits);
  });
  after(async () => {
    client.close();
    await sidecar.close();
    await sim.close();
    await redis.close();
  });

  it('killing Redis mid-test fails no request; the cache degrades to L1 and recovers when Redis returns', async () => {
    const inRedis = stored(sidecar, 'l2');
    await generate(client, det('Before the outage'));
    await inRedis;

    const down = nextEvent(sidecar.events, 'redis', (up: boolean) => !up);
    // Requests are in flight while Redis dies.
    const during = Array.from({ length: 10 }, (_, i) => generate(client, det(`During the outage ${i % 5}`)));
    await redis.kill();
    const results = await Promise.all(during);
    await down;
    assert.equal(sidecar.cache?.l2State, 'down');
    assert.ok(results.every((r) => r.chunks.at(-1)?.usage?.completionTokens === 12));

    const after = await Promise.all([
      generate(client, det('Before the outage')),
      generate(client, det('After the outage')),
      generate(client, det('After the outage')),
    ]);
    assert.equal(cacheHeader(after[0]!), 'hit-l1', 'L1 still serves');
    assert.ok(after.every((r) => r.chunks.length === 12));

    const up = nextEvent(sidecar.events, 'redis', (isUp: boolean) => isUp);
    await redis.restart();
    await up;
    // L2 is written again (a command may time out on a loaded machine: try a few new answers).
    let writtenAgain = false;
    for (let i = 0; i < 5 && !writtenAgain; i++) {
      const outcome = new Promise<boolean>((resolve) => {
        const cacheEvents = sidecar.cache?.events;
        const onStored = (e: { tier: string }) => {
          if (e.tier === 'l2') done(true);
        };
        const onError = () => done(false);
        const done = (written: boolean) => {
          sidecar.events.off('cache-stored', onStored);
          cacheEvents?.off('l2-error', onError);
          resolve(written);
        };
        sidecar.events.on('cache-stored', onStored);
        cacheEvents?.on('l2-error', onError);
      });
      await generate(client, det(`After recovery ${i}`));
      writtenAgain = await outcome;
    }
    assert.ok(writtenAgain);
    const check = redisClient(redis.url);
    try {
      assert.ok((await check.keys('llmmesh:cache:*')).length >= 1, 'the answer is in the restarted Redis');
    } finally {
      check.disconnect();
    }
  });

  it('a hung Redis (paused) slows no request beyond its timeout and fails none', async () => {
    redis.pause();
    try {
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) => generate(client, det(`While Redis hangs ${i}`))),
      );
      assert.ok(results.every((r) => cacheHeader(r) === 'miss' && r.chunks.length === 12));
      assert.match(
        await metricsText(sidecar),
        /llm_response_cache_l2_errors_total\{op="get",[^}]*\} [1-9]/,
        'the lookups timed out',
      );
    } finally {
      redis.resume();
    }
    // Still answering from memory while L2 backs off.
    assert.equal(cacheHeader(await generate(client, det('While Redis hangs 0'))), 'hit-l1');
  });
});

describe('response cache: off', () => {
  it('with the cache off, deterministic requests go to the engine and say bypass', async () => {
    const sim = createSimServer({ servedModelName: MODEL, timeScale: 0 });
    const { url } = await sim.listen(0);
    const sidecar = await startSidecar({
      engineUrl: url,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      responseCache: false,
      logger: silentLogger,
    });
    const client = createSidecarClient(sidecar.address);
    try {
      await once(sidecar.events, 'report');
      await nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready);
      await generate(client, det('No cache here'));
      const second = await generate(client, det('No cache here'));
      assert.equal(cacheHeader(second), 'bypass');
      assert.equal(sim.stats.started, 2);
    } finally {
      client.close();
      await sidecar.close();
      await sim.close();
    }
  });
});
