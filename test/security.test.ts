/**
 * Security and tenancy end to end: API keys and model permissions, rate
 * limits shared by two router replicas through Redis, input limits enforced
 * before anything reaches the engine, TLS on the public API, mTLS from router
 * to sidecar, and the admin token.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTestCa } from '../bench/test-ca.js';
import { createInferenceClient, type InferenceClient, type MeshError } from '../client/index.js';
import { Status } from '../common/errors.js';
import { silentLogger } from '../common/log.js';
import { channelCredentials } from '../common/tls.js';
import { hashApiKey } from '../router/auth/tenants.js';
import { validateRouterConfig } from '../router/config/load.js';
import { type Router, startRouter } from '../router/server.js';
import { type Sidecar, startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { waitUntil } from './helpers/wait.js';

const MODEL = 'llama-3-8b-chat';

interface Stack {
  sim: SimServer;
  sidecar: Sidecar;
  close(): Promise<void>;
}

async function startPod(tls?: Parameters<typeof startSidecar>[0]['tls']): Promise<Stack> {
  const sim = createSimServer({ servedModelName: MODEL, timeScale: 0, maxModelLen: 4096 });
  const bound = await sim.listen(0, '127.0.0.1');
  const sidecar = await startSidecar({
    engineUrl: bound.url,
    listen: '127.0.0.1:0',
    model: MODEL,
    version: 'v1',
    admin: false,
    responseCache: false,
    probeIntervalMs: 50,
    logger: silentLogger,
    ...(tls ? { tls } : {}),
  });
  return {
    sim,
    sidecar,
    async close() {
      await sidecar.close();
      await sim.close();
    },
  };
}

async function router(endpoints: string[], extra: Record<string, unknown>, admin = false): Promise<Router> {
  const r = await startRouter({
    config: validateRouterConfig({
      listen: '127.0.0.1:0',
      admin: '127.0.0.1:0',
      discovery: { kind: 'static', endpoints },
      models: { [MODEL]: { versions: { v1: { weight: 1 } }, max_tokens_cap: 64 } },
      ...extra,
    }),
    logger: silentLogger,
    admin: admin ? '127.0.0.1:0' : false,
  });
  return r;
}

const ready = (r: Router, n = 1) =>
  waitUntil(
    r.endpoints.events,
    'change',
    () => r.endpoints.snapshot().endpoints.filter((e) => e.ready).length >= n,
    `${n} ready endpoint(s)`,
  );

describe('tenants, API keys and rate limits', () => {
  let pod: Stack;
  let r1: Router;
  let r2: Router;
  const suffix = randomUUID().slice(0, 8);
  const keys = { search: `search-key-${suffix}`, ads: `ads-key-${suffix}`, slow: `slow-key-${suffix}` };
  const clients: InferenceClient[] = [];
  const client = (r: Router, key?: string) => {
    const c = createInferenceClient(r.address, key ? { metadata: { authorization: `Bearer ${key}` } } : {});
    clients.push(c);
    return c;
  };

  before(async () => {
    pod = await startPod();
    const auth = {
      redis: 'redis://127.0.0.1:6379',
      replicas: 2,
      tenants: [
        {
          name: `search-${suffix}`,
          key_sha256: hashApiKey(keys.search),
          models: [MODEL],
          limits: { tokens_per_minute: 600 },
        },
        { name: `ads-${suffix}`, key_sha256: hashApiKey(keys.ads), models: ['other-model'] },
        {
          name: `slow-${suffix}`,
          key_sha256: hashApiKey(keys.slow),
          models: ['*'],
          limits: { requests_per_second: 0.01 },
        },
      ],
    };
    r1 = await router([pod.sidecar.address], { auth });
    r2 = await router([pod.sidecar.address], { auth });
    await Promise.all([ready(r1), ready(r2)]);
  });
  after(async () => {
    for (const c of clients) c.close();
    await r1?.close(0);
    await r2?.close(0);
    await pod?.close();
  });

  it('rejects missing, malformed and wrong keys with UNAUTHENTICATED', async () => {
    for (const [c, pattern] of [
      [client(r1), /missing credentials/],
      [createInferenceClient(r1.address, { metadata: { authorization: 'Basic abc' } }), /malformed/],
      [client(r1, 'not-a-key'), /invalid API key/],
    ] as const) {
      await assert.rejects(c.generate({ model: MODEL, prompt: 'hi' }), (e: MeshError) => {
        assert.equal(e.code, Status.UNAUTHENTICATED);
        assert.match(e.message, pattern);
        return true;
      });
      c.close();
    }
  });

  it('rejects a model outside the tenant with PERMISSION_DENIED, and serves its own', async () => {
    await assert.rejects(client(r1, keys.ads).generate({ model: MODEL, prompt: 'hi' }), (e: MeshError) => {
      assert.equal(e.code, Status.PERMISSION_DENIED);
      assert.match(e.message, new RegExp(`tenant "ads-${suffix}" may not use model "${MODEL}"`));
      return true;
    });
    const ok = await client(r1, keys.search).generate({
      model: MODEL,
      prompt: 'hi',
      sampling: { maxTokens: 4 },
    });
    assert.equal(ok.usage?.completionTokens, 4);
    const metric = await r1.metrics.registry.getSingleMetricAsString('llm_tenant_requests_total');
    assert.match(metric, new RegExp(`tenant="search-${suffix}",status="OK"`));
  });

  it('over requests per second: RESOURCE_EXHAUSTED with grpc-retry-pushback-ms', async () => {
    const c = client(r1, keys.slow);
    await c.generate({ model: MODEL, prompt: 'one', sampling: { maxTokens: 1 } });
    await assert.rejects(
      c.generate({ model: MODEL, prompt: 'two', sampling: { maxTokens: 1 } }),
      (e: MeshError) => {
        assert.equal(e.code, Status.RESOURCE_EXHAUSTED);
        assert.match(e.message, /requests_per_second/);
        assert.ok((e.retryPushbackMs ?? 0) > 1000, `pushback ${e.retryPushbackMs}`);
        return true;
      },
    );
  });

  it('two replicas enforce one tokens-per-minute budget through Redis', async () => {
    const a = client(r1, keys.search);
    const b = client(r2, keys.search);
    const prompt = 'x'.repeat(200); // ~50 prompt tokens as the router counts them
    let admittedTokens = 0;
    let refused = 0;
    const started = Date.now();
    for (let i = 0; i < 40 && refused < 4; i++) {
      try {
        const r = await (i % 2 === 0 ? a : b).generate({ model: MODEL, prompt, sampling: { maxTokens: 8 } });
        admittedTokens += 50 + (r.usage?.completionTokens ?? 0);
      } catch (e) {
        assert.equal((e as MeshError).code, Status.RESOURCE_EXHAUSTED);
        refused++;
      }
    }
    assert.ok(refused > 0, 'the budget ran out');
    // 600 per minute shared (not 600 per replica): beyond the budget, only what
    // refilled meanwhile (10 tokens/s) and one request's output may pass.
    const refilled = Math.ceil(((Date.now() - started) / 1000) * 10);
    assert.ok(
      admittedTokens <= 600 + 8 + refilled,
      `admitted ${admittedTokens} tokens (refilled ${refilled})`,
    );
    assert.ok(admittedTokens >= 450, `admitted only ${admittedTokens} tokens`);
  });
});

describe('input limits', () => {
  let pod: Stack;
  let r: Router;
  let c: InferenceClient;
  before(async () => {
    pod = await startPod();
    r = await router([pod.sidecar.address], {
      limits: { max_request_bytes: 65_536, max_prompt_chars: 50_000 },
    });
    await ready(r);
    c = createInferenceClient(r.address, { maxAttempts: 1 });
  });
  after(async () => {
    c?.close();
    await r?.close(0);
    await pod?.close();
  });

  it('caps max_tokens per model, naming the limit and the value', async () => {
    await assert.rejects(
      c.generate({ model: MODEL, prompt: 'hi', sampling: { maxTokens: 65 } }),
      (e: MeshError) => {
        assert.equal(e.code, Status.INVALID_ARGUMENT);
        assert.match(e.message, /^sampling\.max_tokens: 65 exceeds the limit of 64 for model/);
        return true;
      },
    );
  });

  it('rejects a prompt that cannot fit the engine context before it reaches the engine', async () => {
    const before = pod.sim.stats.started;
    await assert.rejects(
      c.generate({ model: MODEL, prompt: 'word '.repeat(8000), sampling: { maxTokens: 64 } }),
      (e: MeshError) => {
        assert.equal(e.code, Status.INVALID_ARGUMENT);
        assert.match(e.message, /exceeds the context length 4096 of model/);
        return true;
      },
    );
    assert.equal(pod.sim.stats.started, before, 'the engine never saw it');
  });

  it('rejects oversized prompts and messages', async () => {
    await assert.rejects(c.generate({ model: MODEL, prompt: 'y'.repeat(50_001) }), (e: MeshError) => {
      assert.equal(e.code, Status.INVALID_ARGUMENT);
      assert.match(e.message, /^prompt: 50001 characters exceeds the limit of 50000/);
      return true;
    });
    await assert.rejects(c.generate({ model: MODEL, prompt: 'z'.repeat(70_000) }), (e: MeshError) => {
      assert.equal(e.code, Status.RESOURCE_EXHAUSTED, 'gRPC refuses a message over max_request_bytes');
      return true;
    });
  });
});

describe('TLS', () => {
  const ca = createTestCa('llmmesh-mesh-ca');
  const sidecarCert = ca.issue('sidecar', 'server');
  const routerServerCert = ca.issue('router-api', 'server');
  const routerClientCert = ca.issue('router', 'client');
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('mTLS: a sidecar serves a router with a valid client certificate and refuses one without', async () => {
    const pod = await startPod({ ...sidecarCert, clientCaFile: ca.certFile });
    cleanups.push(() => pod.close());
    const good = await router([pod.sidecar.address], {
      upstream_tls: {
        ca_file: ca.certFile,
        cert_file: routerClientCert.certFile,
        key_file: routerClientCert.keyFile,
      },
    });
    cleanups.push(() => good.close(0));
    await ready(good);
    const c = createInferenceClient(good.address);
    cleanups.push(() => c.close());
    const ok = await c.generate({ model: MODEL, prompt: 'over mtls', sampling: { maxTokens: 3 } });
    assert.equal(ok.usage?.completionTokens, 3);

    const rogue = await router([pod.sidecar.address], { upstream_tls: { ca_file: ca.certFile } });
    cleanups.push(() => rogue.close(0));
    await waitUntil(
      rogue.endpoints.events,
      'change',
      () => rogue.endpoints.snapshot().endpoints.some((e) => e.reason.includes('load stream')),
      'the load stream to fail',
    );
    const c2 = createInferenceClient(rogue.address, { maxAttempts: 1 });
    cleanups.push(() => c2.close());
    await assert.rejects(
      c2.generate({ model: MODEL, prompt: 'x' }),
      (e: MeshError) => e.code === Status.UNAVAILABLE,
    );
  });

  it('the public API serves TLS to clients that trust its CA', async () => {
    const pod = await startPod();
    cleanups.push(() => pod.close());
    const r = await router([pod.sidecar.address], {
      tls: { cert_file: routerServerCert.certFile, key_file: routerServerCert.keyFile },
    });
    cleanups.push(() => r.close(0));
    await ready(r);
    const secure = createInferenceClient(r.address, {
      credentials: channelCredentials({ caFile: ca.certFile }),
    });
    cleanups.push(() => secure.close());
    assert.equal(
      (await secure.generate({ model: MODEL, prompt: 'tls', sampling: { maxTokens: 2 } })).text.length > 0,
      true,
    );
    const plain = createInferenceClient(r.address, { maxAttempts: 1 });
    cleanups.push(() => plain.close());
    await assert.rejects(
      plain.generate({ model: MODEL, prompt: 'x' }, { timeoutMs: 5000 }),
      (e: MeshError) => e.code === Status.UNAVAILABLE,
    );
  });
});

describe('admin surface', () => {
  it('requires the admin token except on probes, and serves the status page', async () => {
    const pod = await startPod();
    const token = `admin-${randomUUID()}`;
    const r = await router([pod.sidecar.address], { admin_token_sha256: hashApiKey(token) }, true);
    try {
      await ready(r);
      const base = r.adminUrl as string;
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      const denied = await fetch(`${base}/status.json`);
      assert.equal(denied.status, 401);
      assert.equal(
        (await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong' } })).status,
        401,
      );
      const auth = { authorization: `Bearer ${token}` };
      const status = (await (await fetch(`${base}/status.json`, { headers: auth })).json()) as {
        endpoints: Array<{ address: string; ready: boolean; breaker: string }>;
      };
      assert.deepEqual(
        status.endpoints.map((e) => [e.address, e.ready, e.breaker]),
        [[pod.sidecar.address, true, 'closed']],
      );
      const page = await fetch(`${base}/`, { headers: auth });
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      const html = await page.text();
      assert.match(html, /<title>llmmesh router<\/title>/);
      assert.match(html, /fetch\('\/status\.json'/);
      assert.doesNotMatch(html, /https?:\/\//, 'self-contained: no external assets');
    } finally {
      await r.close(0);
      await pod.close();
    }
  });
});
