/**
 * Late load reports: an endpoint whose last report said ready but is older
 * than the staleness limit is a fallback, taken when no endpoint with a fresh
 * report is left to try. A busy machine (the router included) delays
 * reports; that must make choices worse, never fail requests.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { MeshError } from '../client/index.js';
import { STALE_AFTER_MS, STALE_LIMIT_FACTOR } from '../router/upstream/endpoints.js';
import { type EngineStub, startEngineStub } from './helpers/engine-stub.js';
import { type RouterHarness, startRouterHarness } from './helpers/router-harness.js';

/** The router's view of the endpoint `s`. */
function viewOf(h: RouterHarness, s: EngineStub) {
  return h.router.endpoints.snapshot().endpoints.find((e) => e.address === s.address);
}

/** Sends a report from `s` and resolves once the router holds it as fresh. */
function reportFresh(h: RouterHarness, s: EngineStub): Promise<void> {
  const seen = h.waitEndpoints(() => viewOf(h, s)?.ready === true, `a fresh report from ${s.address}`);
  s.report({});
  return seen;
}

describe('late load reports', () => {
  it('serve from endpoints with late reports when none is fresh, and prefer a fresh one', async () => {
    // No heartbeat: an endpoint reports on connect and when the test says so.
    const stubs = await Promise.all(
      [0, 1].map(() => startEngineStub({ model: 'm', version: 'v1', reportIntervalMs: 3_600_000 })),
    );
    const [a, b] = stubs as [EngineStub, EngineStub];
    // The router's clock, moved forward to age every report at once.
    let skew = 0;
    const h = await startRouterHarness({
      endpoints: stubs.map((s) => s.address),
      yaml: `models: { m: { versions: { v1: { weight: 1 } } } }
upstream: { max_attempts: 2, retry_budget: { ratio: 1, min_retries: 100 } }
breaker: { volume_threshold: 1000000, consecutive_failures: 0 }
`,
      extra: { now: () => Date.now() + skew },
    });
    const view = (s: EngineStub) => viewOf(h, s);
    try {
      await h.waitReady(2);
      skew = STALE_AFTER_MS + 1_000;
      for (const s of stubs) {
        assert.equal(view(s)?.ready, false, 'a report older than the limit is not fresh');
        assert.equal(view(s)?.stale, true);
        assert.match(view(s)?.reason ?? '', /no load report for/);
      }
      const served = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const r = await h.client.generate({ model: 'm', prompt: `late ${i}`, sampling: { maxTokens: 2 } });
        served.add(r.endpoint);
      }
      assert.ok(served.size > 0, 'every request was served by an endpoint with a late report');

      // A fresh report from b: b is the choice, a stays a fallback.
      await reportFresh(h, b);
      assert.equal(view(a)?.stale, true);
      for (let i = 0; i < 6; i++) {
        const r = await h.client.generate({ model: 'm', prompt: `fresh ${i}`, sampling: { maxTokens: 2 } });
        assert.equal(r.endpoint, b.address, 'an endpoint with a fresh report beats one with a late report');
      }

      // b fails: the retry goes to a, late report or not.
      b.behave = () => ({ kind: 'fail', code: grpc.status.UNAVAILABLE, message: 'engine down' });
      const before = a.requests.length;
      const r = await h.client.generate({ model: 'm', prompt: 'retry', sampling: { maxTokens: 2 } });
      assert.equal(r.endpoint, a.address);
      assert.equal(a.requests.length, before + 1);
    } finally {
      await h.close();
      await Promise.all(stubs.map((s) => s.close()));
    }
  });

  it('a version whose pods all report late gives way to one with fresh reports, and a report past the limit makes no fallback', async () => {
    const stubs = await Promise.all(
      ['v1', 'v2'].map((version) => startEngineStub({ model: 'm', version, reportIntervalMs: 3_600_000 })),
    );
    const [v1, v2] = stubs as [EngineStub, EngineStub];
    let skew = 0;
    const h = await startRouterHarness({
      endpoints: stubs.map((s) => s.address),
      yaml: 'models: { m: { versions: { v1: { weight: 1 }, v2: { weight: 1 } } } }\n',
      extra: { now: () => Date.now() + skew },
    });
    const view = (s: EngineStub) => viewOf(h, s);
    try {
      await h.waitReady(2);
      skew = STALE_AFTER_MS + 1_000;
      await reportFresh(h, v1);
      assert.equal(view(v2)?.stale, true);
      for (let i = 0; i < 8; i++) {
        const r = await h.client.generate({ model: 'm', prompt: `split ${i}`, sampling: { maxTokens: 2 } });
        assert.equal(
          r.endpoint,
          v1.address,
          'the weighted pick of v2 falls back to v1, whose report is fresh',
        );
      }
      // Past the limit a late report is no fallback either: with v1 gone quiet too, nothing serves.
      skew = (STALE_LIMIT_FACTOR + 2) * STALE_AFTER_MS + 1_000;
      assert.equal(view(v2)?.stale, false);
      assert.equal(view(v2)?.ready, false);
      await assert.rejects(
        h.client.generate({ model: 'm', prompt: 'none', sampling: { maxTokens: 2 } }),
        (err: MeshError) => err.code === grpc.status.UNAVAILABLE && /no load report for/.test(err.message),
      );
    } finally {
      await h.close();
      await Promise.all(stubs.map((s) => s.close()));
    }
  });
});
