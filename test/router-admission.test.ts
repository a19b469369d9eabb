/**
 * Admission control: with every endpoint of a pool saturated (by reported
 * queue depth) requests wait in a priority queue, high priority first, for
 * a bounded time; beyond it, or beyond the queue's length, they are shed
 * with RESOURCE_EXHAUSTED and `grpc-retry-pushback-ms`.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import type { MeshError } from '../client/index.js';
import { Status } from '../common/errors.js';
import { startEngineStub } from './helpers/engine-stub.js';
import { MODEL } from './helpers/mesh.js';
import { startPod } from './helpers/pods.js';
import { startRouterHarness } from './helpers/router-harness.js';
import { nextEvent, waitUntil } from './helpers/wait.js';

describe('admission', () => {
  it('queues while the pool is saturated and admits high priority first', async () => {
    const stub = await startEngineStub({ model: 'm', version: 'v1' });
    stub.report({ queued: 10 });
    const h = await startRouterHarness({
      endpoints: [stub.address],
      yaml: 'models: { m: { versions: { v1: { weight: 1 } } } }\nadmission: { saturation_queue_depth: 4, max_queue_wait_ms: 30000 }\n',
    });
    try {
      await h.waitReady(1);
      await waitUntil(
        h.router.endpoints.events,
        'change',
        () => h.router.endpoints.snapshot().endpoints[0]?.report?.queued === 10,
        'saturated report',
      );
      const calls: Array<Promise<unknown>> = [];
      for (const priority of ['PRIORITY_LOW', 'PRIORITY_NORMAL', 'PRIORITY_HIGH'] as const) {
        const queued = nextEvent(h.router.admission.events, 'queued');
        calls.push(h.client.generate({ model: 'm', prompt: priority, routing: { priority } }));
        await queued;
      }
      assert.equal(h.router.admission.queued, 3);
      assert.equal(stub.requests.length, 0, 'nothing reached the saturated engine');
      assert.equal(h.router.status().admission.queued, 3);
      stub.report({ queued: 0 });
      await Promise.all(calls);
      assert.deepEqual(
        stub.requests.map((r) => r.request.prompt),
        ['PRIORITY_HIGH', 'PRIORITY_NORMAL', 'PRIORITY_LOW'],
      );
      assert.ok((h.traces.at(-1)?.queuedMs ?? 0) >= 0);
    } finally {
      await h.close();
      await stub.close();
    }
  });

  it('sheds with RESOURCE_EXHAUSTED and a pushback after the max wait, or at once when the queue is full', async () => {
    const stub = await startEngineStub({ model: 'm', version: 'v1' });
    stub.report({ engine: { numRequestsWaiting: 6, numRequestsRunning: 256, kvCacheUsagePerc: 0.9 } });
    const h = await startRouterHarness({
      endpoints: [stub.address],
      yaml: 'models: { m: { versions: { v1: { weight: 1 } } } }\nadmission: { saturation_queue_depth: 4, max_queue_wait_ms: 100, max_queue_length: 2, pushback_ms: 300 }\n',
    });
    try {
      await h.waitReady(1);
      await waitUntil(
        h.router.endpoints.events,
        'change',
        () => (h.router.endpoints.snapshot().endpoints[0]?.report?.engine?.numRequestsWaiting ?? 0) === 6,
        'saturated report',
      );
      const waiting = [0, 1].map((i) => h.client.generate({ model: 'm', prompt: `wait ${i}` }));
      await waitUntil(
        h.router.admission.events,
        'queued',
        () => h.router.admission.queued === 2,
        'two queued',
      );
      await assert.rejects(h.client.generate({ model: 'm', prompt: 'no room' }), (e: MeshError) => {
        assert.equal(e.code, Status.RESOURCE_EXHAUSTED);
        assert.match(e.message, /queue full/);
        assert.equal(e.retryPushbackMs, 300);
        return true;
      });
      for (const w of waiting) {
        await assert.rejects(
          w,
          (e: MeshError) =>
            e.code === Status.RESOURCE_EXHAUSTED && e.retryPushbackMs === 300 && /100 ms/.test(e.message),
        );
      }
      assert.equal(stub.requests.length, 0);
      const shed = await h.metric('llm_router_shed_total');
      assert.match(shed, /reason="queue_full"\} 1/);
      assert.match(shed, /reason="queue_timeout"\} 2/);
    } finally {
      await h.close();
      await stub.close();
    }
  });

  it('under overload beyond capacity, sheds with pushback while admitted requests complete (real simulator)', async (t) => {
    // One pod that runs 2 requests at a time (its sidecar queues the rest), 5 ms per token.
    const pod = await startPod({
      version: 'v1',
      sim: { timeScale: 1, interTokenLatencyMs: 5, timeToFirstTokenMs: 5 },
      maxInFlight: 2,
    });
    const h = await startRouterHarness({
      endpoints: [pod.sidecar.address],
      yaml: `models: { ${MODEL}: { versions: { v1: { weight: 1 } } } }\nadmission: { saturation_queue_depth: 2, max_queue_wait_ms: 300, max_queue_length: 4, pushback_ms: 500 }\n`,
    });
    try {
      await h.waitReady(1);
      const n = 30;
      const outcomes = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const started = performance.now();
          try {
            let firstAt = 0;
            for await (const _c of h.client.generateStream({
              model: MODEL,
              prompt: `overload ${i}`,
              sampling: { maxTokens: 20 },
            })) {
              firstAt ||= performance.now();
            }
            return { ok: true, ttftMs: firstAt - started };
          } catch (err) {
            return { ok: false, err: err as MeshError };
          }
        }),
      );
      const ok = outcomes.filter((o) => o.ok);
      const shed = outcomes.filter((o) => !o.ok);
      t.diagnostic(
        `admitted ${ok.length}, shed ${shed.length}; admitted TTFT ms: ${ok
          .map((o) => Math.round(o.ttftMs ?? 0))
          .sort((a, b) => a - b)
          .join(' ')}`,
      );
      assert.ok(ok.length >= 4, `admitted ${ok.length}`);
      assert.ok(shed.length > 0, 'overload was shed');
      for (const s of shed) {
        assert.equal(s.err?.code, Status.RESOURCE_EXHAUSTED, s.err?.message);
        // After the full wait: the configured pushback; at once (the pool's
        // drain says the wait would exceed 300 ms), or from a queue that has
        // stood for 300 ms: the backlog's drain time.
        const pushback = s.err?.retryPushbackMs ?? 0;
        if (/expected wait|queue stands/.test(s.err?.message ?? ''))
          assert.ok(pushback >= 50 && pushback <= 300, `${pushback}`);
        else assert.equal(pushback, 500);
      }
      // The pod never held more than its capacity plus the saturation depth of work from us.
      assert.ok(pod.sim.stats.finished >= ok.length);
    } finally {
      await h.close();
      await pod.close();
    }
  });
});
