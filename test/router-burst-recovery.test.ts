/**
 * Recovery after a burst, on real simulator pods: a shared-prefix workload
 * runs steadily (three tenants, each with its own long system prompt), then a
 * burst of long unique prompts fills every pod to its max_num_seqs and the
 * router's admission queue, then the steady workload goes on.
 * Once the burst is over, the prefix-cache hit rate and TTFT come back to
 * what they were before it, measured in the same test, within a few rounds
 * of requests, and stay there (no thrashing: a tenant sent where its prefix
 * is not cached is as rare as before the burst).
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import type { MeshError } from '../client/index.js';
import { Status } from '../common/errors.js';
import { MODEL } from './helpers/mesh.js';
import { type Pod, startPod } from './helpers/pods.js';
import { startRouterHarness } from './helpers/router-harness.js';
import { waitUntil } from './helpers/wait.js';

const PODS = 3;
const MAX_NUM_SEQS = 4;
const TENANTS = 3;
/** Steady requests in flight (one per tenant's turn), well below the pods' 12 slots. */
const STEADY = 3;
/** A round: one request of each tenant. */
const ROUND = TENANTS;
/**
 * As long as the phase after the burst: three tenants on three small pods
 * move now and then even without a burst (two requests of one tenant at
 * once leave its pod markedly busier than an idle one, and the prefix
 * spreads), so the level to come back to is measured over as many windows.
 */
const BEFORE_ROUNDS = 15;
const AFTER_ROUNDS = 15;
/** Rounds per window of the steady phase after the burst. */
const WINDOW_ROUNDS = 3;
/** Recovery must come within this many rounds after the burst. */
const RECOVERY_ROUNDS = 3 * WINDOW_ROUNDS;
const BURST = 24;

const words = (seed: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${seed}${(i * 7919) % 997}`).join(' ');
const SYSTEM = Array.from(
  { length: TENANTS },
  (_, t) => `System prompt of tenant ${t}: ${words(`t${t}w`, 500)}.`,
);

interface Outcome {
  phase: 'before' | 'burst' | 'after';
  tenant: number;
  ok: boolean;
  code?: number;
  endpoint: string;
  ttftMs: number;
  promptTokens: number;
  cachedTokens: number;
  startedAt: number;
  endedAt: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor(s.length / 2)] as number);
};
const hitRate = (os: Outcome[]) =>
  os.reduce((a, o) => a + o.cachedTokens, 0) /
  Math.max(
    1,
    os.reduce((a, o) => a + o.promptTokens, 0),
  );

describe('recovery after a burst', () => {
  it('returns to the pre-burst prefix-cache hit rate and TTFT, and does not thrash', async (t) => {
    const pods: Pod[] = [];
    for (let i = 0; i < PODS; i++)
      pods.push(
        await startPod({
          version: 'v1',
          sim: {
            timeScale: 1,
            maxNumSeqs: MAX_NUM_SEQS,
            serverInfo: true,
            timeToFirstTokenMs: 5,
            interTokenLatencyMs: 5,
            // Uncached prompt tokens cost prefill time: a hit shows in TTFT.
            prefillTimePerTokenMs: 0.2,
          },
        }),
      );
    const h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: `models: { ${MODEL}: { versions: { v1: { weight: 1 } } } }\n`,
    });
    const outcomes: Outcome[] = [];
    const events = new EventEmitter();
    let phase: Outcome['phase'] = 'before';
    let stopped = false;
    let seq = 0;
    // The most requests each pod's engine held at once (running or in prefill) during the burst.
    const burstRunning = new Array<number>(PODS).fill(0);
    const send = async (prompt: string, tenant: number, maxTokens: number, tag: Outcome['phase']) => {
      const startedAt = performance.now();
      let first = 0;
      let usage = { promptTokens: 0, cachedTokens: 0 };
      try {
        const call = h.client.generateStream(
          { model: MODEL, prompt, sampling: { maxTokens } },
          { timeoutMs: 60_000 },
        );
        for await (const chunk of call) {
          first ||= performance.now();
          if (chunk.usage) usage = chunk.usage;
          if (phase === 'burst')
            pods.forEach((p, i) => {
              const { running, waiting } = p.sim.stats;
              burstRunning[i] = Math.max(burstRunning[i] ?? 0, running + waiting);
            });
        }
        const served = await call.servedBy;
        return {
          phase: tag,
          tenant,
          ok: true,
          endpoint: served.endpoint,
          ttftMs: first - startedAt,
          promptTokens: usage.promptTokens,
          cachedTokens: usage.cachedTokens,
          startedAt,
          endedAt: performance.now(),
        } satisfies Outcome;
      } catch (err) {
        return {
          phase: tag,
          tenant,
          ok: false,
          code: (err as MeshError).code,
          endpoint: '',
          ttftMs: Number.NaN,
          promptTokens: 0,
          cachedTokens: 0,
          startedAt,
          endedAt: performance.now(),
        } satisfies Outcome;
      }
    };
    const steady = async () => {
      while (!stopped) {
        const i = seq++;
        const tenant = i % TENANTS;
        const o = await send(
          `${SYSTEM[tenant]} Question ${i}: what is the status of order ${i}?`,
          tenant,
          4,
          phase,
        );
        outcomes.push(o);
        events.emit('outcome');
      }
    };
    const count = (p: Outcome['phase']) => outcomes.filter((o) => o.phase === p && o.ok).length;
    try {
      await h.waitReady(PODS);
      await h.waitEndpoints(
        (endpoints) => endpoints.every((e) => e.report?.capacity?.maxNumSeqs === MAX_NUM_SEQS),
        'published max_num_seqs',
      );
      const loops = Array.from({ length: STEADY }, steady);
      // Before: a round to place each tenant, then the baseline.
      await waitUntil(events, 'outcome', () => count('before') >= (BEFORE_ROUNDS + 1) * ROUND, 'baseline');
      const baseline = outcomes.filter((o) => o.phase === 'before' && o.ok).slice(ROUND);
      const baseHit = hitRate(baseline);
      const baseTtft = median(baseline.map((o) => o.ttftMs));
      const holders = new Map<number, Set<string>>();
      for (const o of baseline) {
        const s = holders.get(o.tenant) ?? new Set();
        s.add(o.endpoint);
        holders.set(o.tenant, s);
      }

      // The burst: long unique prompts, more at once than the pods run.
      phase = 'burst';
      const burst = await Promise.all(
        Array.from({ length: BURST }, (_, i) => send(`Burst ${i}: ${words(`b${i}x`, 600)}`, -1, 16, 'burst')),
      );
      const burstEnd = performance.now();
      phase = 'after';
      await waitUntil(
        events,
        'outcome',
        () => count('after') >= AFTER_ROUNDS * ROUND,
        'the steady phase after',
      );
      stopped = true;
      await Promise.all(loops);

      const after = outcomes.filter((o) => o.phase === 'after');
      const size = WINDOW_ROUNDS * ROUND;
      const window = (k: number) => after.slice(k * size, (k + 1) * size);
      const missed = (o: Outcome) => o.cachedTokens < 0.8 * o.promptTokens;
      const level = (os: Outcome[]) => ({
        hit: hitRate(os),
        misses: os.filter(missed).length,
        ttft: median(os.map((o) => o.ttftMs)),
      });
      const windows = Array.from({ length: AFTER_ROUNDS / WINDOW_ROUNDS }, (_, k) => level(window(k)));
      // The baseline's level: misses in a window no more than in its worst window (one at least), its hit rate and TTFT.
      const baseWindows = Array.from({ length: BEFORE_ROUNDS / WINDOW_ROUNDS }, (_, k) =>
        level(baseline.slice(k * size, (k + 1) * size)),
      );
      const baseMisses = Math.max(1, ...baseWindows.map((w) => w.misses));
      const recovered = (l: { hit: number; misses: number; ttft: number }) =>
        l.misses <= baseMisses && l.hit >= baseHit - 0.15 && l.ttft <= Math.max(2 * baseTtft, baseTtft + 50);
      // Recovered: from this window on, every window is at the baseline's level.
      let firstRecovered = windows.length;
      while (firstRecovered > 0 && recovered(windows[firstRecovered - 1] as (typeof windows)[number]))
        firstRecovered--;
      if (firstRecovered === windows.length) firstRecovered = -1;
      const recoveredAt =
        firstRecovered >= 0 ? (window(firstRecovered).at(-1)?.endedAt ?? burstEnd) - burstEnd : Number.NaN;
      const baselineSpan = (baseline.at(-1)?.endedAt ?? 0) - (baseline[0]?.startedAt ?? 0);
      const shed = burst.filter((o) => !o.ok);
      const podOf = (endpoint: string) => pods.findIndex((p) => p.sidecar.address === endpoint);
      t.diagnostic(
        `baseline: hit ${(baseHit * 100).toFixed(1)} %, TTFT median ${baseTtft.toFixed(1)} ms over ${baseline.length} requests (${baselineSpan.toFixed(0)} ms), at most ${baseMisses} missed by ${size}; ` +
          `burst: ${BURST - shed.length} served, ${shed.length} shed, pods held at most ${burstRunning.join(' / ')}; ` +
          `after, by ${size} requests: ${windows.map((w) => `${(w.hit * 100).toFixed(0)} % (${w.misses} missed) / ${w.ttft.toFixed(0)} ms`).join(', ')}; ` +
          `recovered ${recoveredAt.toFixed(0)} ms after the burst; ` +
          `pods by tenant before ${[...holders].map(([k, v]) => `${k}:${[...v].map(podOf).join('')}`).join(' ')}, ` +
          `after ${after.map((o) => `${o.tenant}:${podOf(o.endpoint)}${o.cachedTokens > 0 ? '' : '*'}`).join(' ')}`,
      );

      assert.ok(
        burstRunning.every((n) => n >= MAX_NUM_SEQS),
        'the burst filled every pod to its max_num_seqs',
      );
      assert.ok(
        shed.every((o) => o.code === Status.RESOURCE_EXHAUSTED),
        `what the burst lost was shed, not failed: ${shed.map((o) => o.code).join(' ')}`,
      );
      assert.ok(baseHit > 0.8, `the steady workload hits the prefix cache before the burst (${baseHit})`);
      assert.ok(
        after.every((o) => o.ok),
        `nothing fails after the burst: ${after.filter((o) => !o.ok).map((o) => o.code)}`,
      );
      assert.ok(
        firstRecovered >= 0 && (firstRecovered + 1) * WINDOW_ROUNDS <= RECOVERY_ROUNDS,
        `hit rate and TTFT back to the baseline within ${RECOVERY_ROUNDS} rounds`,
      );
    } finally {
      stopped = true;
      await h.close();
      for (const p of pods) await p.close();
    }
  });
});
