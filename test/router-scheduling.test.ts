/**
 * Cache-aware scheduling end to end: the router keeps a copy of each
 * sidecar's prefix index from load-report deltas and sends a shared-prefix
 * workload to the pod that holds the prefix, unless that pod is saturated.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalPrompt, prefixBlockHashes } from '../common/prefix-hash.js';
import { type EngineStub, startEngineStub } from './helpers/engine-stub.js';
import { MODEL } from './helpers/mesh.js';
import { startPod } from './helpers/pods.js';
import { startRouterHarness } from './helpers/router-harness.js';
import { waitUntil } from './helpers/wait.js';

const SYSTEM = 'You are the support assistant of a large online shop. Answer briefly and politely. '.repeat(
  8,
);
const ask = (i: number) => `${SYSTEM}Customer question number ${i}: where is my parcel?`;

describe('prefix-cache scheduling', () => {
  it('sends a shared-prefix workload to the pod holding the prefix, follows index deltas, and spares a saturated pod', async () => {
    const stubs = await Promise.all([0, 1, 2].map(() => startEngineStub({ model: 'm', version: 'v1' })));
    const [a, b, c] = stubs as [EngineStub, EngineStub, EngineStub];
    const h = await startRouterHarness({
      endpoints: stubs.map((s) => s.address),
      yaml: 'models: { m: { versions: { v1: { weight: 1 } } } }\n',
    });
    const copyOf = (s: EngineStub) =>
      h.router.endpoints.snapshot().endpoints.find((e) => e.address === s.address)?.prefixIndex;
    const systemBlocks = prefixBlockHashes(canonicalPrompt({ prompt: SYSTEM, messages: [] }));
    const servedBy = async (n: number, concurrency: number) => {
      const out: string[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < n) {
            const r = await h.client.generate({
              model: 'm',
              prompt: ask(next++),
              sampling: { maxTokens: 2 },
            });
            out.push(r.endpoint);
          }
        }),
      );
      return out;
    };
    // The decisions that sent a request away from b, with every candidate's scores.
    const strays = () =>
      JSON.stringify(
        h.traces
          .map((t) => t.attempts[0])
          .filter((a) => a !== undefined && a.endpoint !== b.address)
          .map((a) => a?.decision?.candidates().map((c) => ({ address: c.address, scores: c.scores }))),
      );
    try {
      await h.waitReady(3);
      assert.ok(systemBlocks.length >= 10);
      b.prefix({ reset: true, added: systemBlocks });
      await waitUntil(
        h.router.endpoints.events,
        'change',
        () => copyOf(b)?.size === systemBlocks.length,
        'b’s index copied',
      );
      const first = await servedBy(30, 4);
      assert.deepEqual(
        new Set(first),
        new Set([b.address]),
        `every request went to the prefix holder ${b.address}: ${first.join(' ')}; elsewhere: ${strays()}`,
      );
      const decision = h.traces.at(-1)?.attempts[0]?.decision;
      const scores = decision?.candidates().find((x) => x.address === b.address)?.scores['prefix-cache'];
      assert.ok(scores !== undefined && scores > 0.9, `b's prefix score ${scores}`);

      // Deltas apply in order: b evicts, a gains the prefix.
      b.prefix({ removed: systemBlocks.slice(0, 1) });
      a.prefix({ added: systemBlocks });
      await waitUntil(
        h.router.endpoints.events,
        'change',
        () => copyOf(a)?.size === systemBlocks.length && copyOf(b)?.matchLength(systemBlocks) === 0,
        'deltas applied',
      );
      assert.deepEqual(new Set(await servedBy(10, 2)), new Set([a.address]));

      // The holder saturates: its queue reached the saturation depth, so the work spreads elsewhere.
      a.report({ queued: 8 });
      await h.waitEndpoints(
        (endpoints) => endpoints.some((e) => e.address === a.address && e.report?.queued === 8),
        'a saturated',
      );
      const spread = await servedBy(20, 4);
      assert.ok(!spread.includes(a.address), 'nothing piled onto the saturated holder');
      assert.ok(spread.includes(b.address) && spread.includes(c.address), 'load went to the other pods');
    } finally {
      await h.close();
      for (const s of stubs) await s.close();
    }
  });

  it('learns from real sidecars: after one pod served a prompt, requests sharing its prefix follow it', async () => {
    const pods = await Promise.all([0, 1, 2].map(() => startPod({ version: 'v1' })));
    const h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: `models: { ${MODEL}: { versions: { v1: { weight: 1 } } } }\n`,
    });
    try {
      await h.waitReady(3);
      const first = await h.client.generate({ model: MODEL, prompt: ask(0), sampling: { maxTokens: 2 } });
      const holder = first.endpoint;
      const blocks = prefixBlockHashes(canonicalPrompt({ prompt: SYSTEM, messages: [] }));
      await waitUntil(
        h.router.endpoints.events,
        'change',
        () =>
          (h.router.endpoints
            .snapshot()
            .endpoints.find((e) => e.address === holder)
            ?.prefixIndex.matchLength(blocks) ?? 0) === blocks.length,
        'the holder’s prefix index reached the router',
      );
      for (let i = 1; i <= 10; i++) {
        const r = await h.client.generate({ model: MODEL, prompt: ask(i), sampling: { maxTokens: 2 } });
        assert.equal(r.endpoint, holder, `request ${i}`);
      }
    } finally {
      await h.close();
      for (const p of pods) await p.close();
    }
  });
});
