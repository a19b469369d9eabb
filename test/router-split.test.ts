/**
 * Canary weights end to end: real simulators and sidecars, a real router
 * watching its routing file. The split lands on its weights, an edit applies
 * while traffic flows without failing a request, an invalid edit keeps the
 * old weights, sessions stay on their version (and pod), pins win, and a
 * version without pods falls back visibly.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { GenerateResult, MeshError } from '../client/index.js';
import { Status } from '../common/errors.js';
import { seeded } from './helpers/endpoint-view.js';
import { MODEL } from './helpers/mesh.js';
import { type Pod, startPod } from './helpers/pods.js';
import { type RouterHarness, startRouterHarness } from './helpers/router-harness.js';

const routes = (v1: number | string, v2: number | string, extra = '') =>
  `models:\n  ${MODEL}:\n    versions:\n      v1: { weight: ${v1} }\n      v2: { weight: ${v2} }\n${extra}`;

/** Runs `n` requests, `concurrency` at a time. */
async function load(
  h: RouterHarness,
  n: number,
  concurrency: number,
  input: (i: number) => Parameters<RouterHarness['client']['generate']>[0] = (i) => ({
    model: MODEL,
    prompt: `request ${i}`,
    sampling: { maxTokens: 1 },
  }),
): Promise<{ results: GenerateResult[]; errors: unknown[] }> {
  const results: GenerateResult[] = [];
  const errors: unknown[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        try {
          results.push(await h.client.generate(input(i)));
        } catch (err) {
          errors.push(err);
        }
      }
    }),
  );
  return { results, errors };
}
const share = (results: GenerateResult[], version: string) =>
  results.filter((r) => r.modelVersion === version).length / Math.max(1, results.length);

describe('canary split', () => {
  let pods: Pod[];
  let h: RouterHarness;
  before(async () => {
    // These simulators share this process with the router, the sidecars and
    // 24 clients: on a loaded machine a /health answer can take over a second
    // (measured at load 20), which is this process being slow, not the engine
    // being down. The sidecar excuses a probe that timed out while its event
    // loop stood still, but a process starved of CPU keeps ticking, only
    // slowly, so that is not excused. A 10 s probe timeout (it follows the
    // interval; the first probe runs at once) keeps the pods ready; what is
    // asserted here is routing, not probing.
    const probeIntervalMs = 10_000;
    pods = await Promise.all([
      startPod({ version: 'v1', probeIntervalMs }),
      startPod({ version: 'v1', probeIntervalMs }),
      startPod({ version: 'v2', probeIntervalMs }),
    ]);
    h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: routes(90, 10),
      random: seeded(2024),
      admin: true,
    });
    await h.waitReady(3);
  });
  // Each phase starts with every pod ready: a share or a session's pod is
  // only meaningful over the whole pool.
  beforeEach(() => h.waitReady(3));
  after(async () => {
    await h.close();
    for (const p of pods) await p.close();
  });

  it('2,000 requests at 90/10 land within ±2.5 points, and the observed split is exported', async (t) => {
    const { results, errors } = await load(h, 2000, 16);
    assert.deepEqual(errors, []);
    const v2 = share(results, 'v2');
    t.diagnostic(`observed v2 share ${(v2 * 100).toFixed(2)} % (configured 10 %)`);
    assert.ok(Math.abs(v2 - 0.1) <= 0.025, `v2 share ${v2}`);
    const observed = await h.metric('llm_route_observed_share');
    assert.match(observed, /llm_route_observed_share\{model="llama-3-8b-chat",model_version="v2"\} 0\.\d+/);
    const configured = await h.metric('llm_route_configured_share');
    assert.match(configured, /model_version="v2"\} 0\.1\b/);
    const status = h.router.status();
    const versions = status.models[0]?.versions ?? [];
    assert.equal(versions.find((v) => v.name === 'v2')?.configuredShare, 0.1);
    assert.ok(Math.abs((versions.find((v) => v.name === 'v2')?.observedShare ?? 0) - v2) < 0.01);
  });

  it('sticky sessions never switch version while weights stand, and keep their pod', async () => {
    const keys = Array.from({ length: 100 }, (_, i) => `user-${i}`);
    const first = new Map<string, GenerateResult>();
    for (let round = 0; round < 3; round++) {
      const { results, errors } = await load(h, keys.length, 8, (i) => ({
        model: MODEL,
        prompt: `turn ${round}`,
        sampling: { maxTokens: 1 },
        routing: { sessionKey: keys[i] },
        requestId: keys[i],
      }));
      assert.deepEqual(errors, []);
      for (const r of results) {
        const before = first.get(r.requestId);
        if (!before) {
          first.set(r.requestId, r);
          continue;
        }
        assert.equal(r.modelVersion, before.modelVersion, `${r.requestId} switched version`);
        assert.equal(r.endpoint, before.endpoint, `${r.requestId} switched pod`);
      }
    }
    const v2 = [...first.values()].filter((r) => r.modelVersion === 'v2').length;
    assert.ok(v2 > 0 && v2 < 30, `sessions on v2: ${v2}`);
    const podsUsed = new Set(
      [...first.values()].filter((r) => r.modelVersion === 'v1').map((r) => r.endpoint),
    );
    assert.equal(podsUsed.size, 2, 'sessions spread over both v1 pods');
  });

  it('pins a version, and an unknown pin is NOT_FOUND', async () => {
    const { results, errors } = await load(h, 50, 8, () => ({
      model: MODEL,
      prompt: 'pinned',
      sampling: { maxTokens: 1 },
      routing: { version: 'v2' },
    }));
    assert.deepEqual(errors, []);
    assert.ok(results.every((r) => r.modelVersion === 'v2'));
    await assert.rejects(
      h.client.generate({ model: MODEL, prompt: 'x', routing: { version: 'v9' } }),
      (e: MeshError) => e.code === Status.NOT_FOUND && /no version "v9"/.test(e.message),
    );
  });

  it('a weight edit applies while traffic flows, with zero failed requests; an invalid edit keeps the old weights', async (t) => {
    let stop = false;
    const during: GenerateResult[] = [];
    const failures: unknown[] = [];
    let i = 0;
    const traffic = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (!stop) {
          try {
            during.push(
              await h.client.generate({ model: MODEL, prompt: `flow ${i++}`, sampling: { maxTokens: 2 } }),
            );
          } catch (err) {
            failures.push(err);
          }
        }
      }),
    );
    try {
      const written = performance.now();
      const event = await h.rewrite(routes(50, 50));
      const appliedMs = performance.now() - written;
      t.diagnostic(`weight edit applied ${appliedMs.toFixed(0)} ms after the file was written`);
      assert.equal(event.result, 'applied');
      assert.equal(h.router.config().models[MODEL]?.versions.v2?.weight, 50);
      const mark = during.length;
      const afterEdit = await load(h, 1000, 16);
      assert.deepEqual(afterEdit.errors, []);
      const v2 = share(afterEdit.results, 'v2');
      t.diagnostic(`v2 share after the edit ${(v2 * 100).toFixed(1)} %`);
      assert.ok(Math.abs(v2 - 0.5) < 0.06, `v2 share after edit ${v2}`);
      assert.ok(during.length > mark || afterEdit.results.length === 1000);

      const rejected = await h.rewrite(routes(50, '"lots"'));
      assert.equal(rejected.result, 'rejected');
      assert.ok(
        rejected.result === 'rejected' && rejected.problems.some((p) => /versions\.v2\.weight/.test(p)),
        JSON.stringify(rejected),
      );
      assert.equal(h.router.config().models[MODEL]?.versions.v2?.weight, 50, 'last good config kept');
      assert.match(await h.metric('llm_router_config_reloads_total'), /result="rejected"\} 1/);
      assert.match(await h.metric('llm_router_config_last_reload_successful'), / 0$/m);
      const stillServing = await load(h, 200, 8);
      assert.deepEqual(stillServing.errors, []);
      assert.ok(Math.abs(share(stillServing.results, 'v2') - 0.5) < 0.12);
    } finally {
      stop = true;
      await traffic;
    }
    t.diagnostic(`${during.length} requests in flight across the edits, ${failures.length} failed`);
    assert.deepEqual(failures, [], 'no request failed during the reloads');
    assert.ok(during.length > 0);

    // Back to 90/10 for whatever runs next; and a valid file recovers from the rejected one.
    const restored = await h.rewrite(routes(90, 10));
    assert.equal(restored.result, 'applied');
    assert.equal(h.router.status().config.rejected, 1);
  });
});

describe('version fallback', () => {
  it('a version without ready pods falls back to another, visibly (metric, trace); off → UNAVAILABLE', async () => {
    const pods = await Promise.all([startPod({ version: 'v1' }), startPod({ version: 'v2' })]);
    const h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: routes(0, 100),
    });
    try {
      await h.waitReady(2);
      await pods[1]?.sim.close();
      await h.waitReady(0);
      await waitNotReady(h, pods[1]?.sidecar.address ?? '');
      const r = await h.client.generate({ model: MODEL, prompt: 'fallback', sampling: { maxTokens: 1 } });
      assert.equal(r.modelVersion, 'v1');
      const trace = h.traces.at(-1);
      assert.deepEqual(trace?.version, { version: 'v1', reason: 'fallback', fallbackFrom: 'v2' });
      assert.match(await h.metric('llm_router_version_fallbacks_total'), /from="v2",to="v1"\} 1/);

      const off = await h.rewrite(routes(0, 100, '    fallback: false\n'));
      assert.equal(off.result, 'applied');
      await assert.rejects(
        h.client.generate({ model: MODEL, prompt: 'no fallback' }),
        (e: MeshError) => e.code === Status.UNAVAILABLE && /fallback is off/.test(e.message),
      );
    } finally {
      await h.close();
      for (const p of pods) await p.close();
    }
  });
});

async function waitNotReady(h: RouterHarness, address: string) {
  const { waitUntil } = await import('./helpers/wait.js');
  await waitUntil(
    h.router.endpoints.events,
    'change',
    () => h.router.endpoints.snapshot().endpoints.some((e) => e.address === address && !e.ready),
    `${address} not ready`,
  );
}
