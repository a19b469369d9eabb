import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runMesh } from '../bench/routing-mesh.js';
import { type RoutingScenario, scenarioRequests } from '../bench/routing-workloads.js';
import { findKnee, loadRoutingConfig, profileConfig } from '../bench/scenarios/routing.js';
import { createRandom } from '../common/random.js';
import { DEFAULT_PROFILE } from '../router/config/schema.js';
import { getPreset } from '../sim/presets.js';

const hot: RoutingScenario = {
  name: 'hot',
  kind: 'skewed',
  description: '',
  pods: 4,
  num_gpu_blocks: 2250,
  groups: 24,
  system_prompt_len: 1500,
  question_len: 50,
  output_len: 32,
  hot_share: 0.5,
  start_rate: 150,
  rate_step: 1.3,
  warmup_s: 2,
  measure_s: 6,
};

describe('routing benchmark', () => {
  it('one seed gives every profile and every rate the same requests, arrivals scaled by the rate', () => {
    const a = scenarioRequests({ ...hot, kind: 'multi-turn', turns: 3 }, 7, 40);
    const b = scenarioRequests({ ...hot, kind: 'multi-turn', turns: 3 }, 7, 40);
    const fast = scenarioRequests({ ...hot, kind: 'multi-turn', turns: 3 }, 7, 80);
    assert.deepEqual(
      a.map((r) => [r.arrivalMs, r.segments.flat(), r.sessionKey]),
      b.map((r) => [r.arrivalMs, r.segments.flat(), r.sessionKey]),
    );
    for (let i = 0; i < a.length; i++) {
      assert.deepEqual(fast[i]?.segments.flat(), a[i]?.segments.flat(), `request ${i}'s content`);
      assert.ok(
        Math.abs((fast[i]?.arrivalMs ?? 0) * 2 - (a[i]?.arrivalMs ?? 0)) < 1e-6,
        `request ${i}'s arrival`,
      );
    }
    const other = scenarioRequests({ ...hot, kind: 'multi-turn', turns: 3 }, 8, 40);
    assert.notDeepEqual(
      other.map((r) => r.arrivalMs),
      a.map((r) => r.arrivalMs),
      'another seed, other arrivals',
    );
  });

  it('a hot tenant spreads over several pods instead of queueing on one (simulated engines, default profile)', () => {
    const preset = getPreset('llama-3.1-8b-h100');
    const requests = scenarioRequests(hot, 3, hot.start_rate);
    // The hot tenant's system prompt: the one most requests start with.
    const counts = new Map<unknown, number>();
    for (const r of requests) counts.set(r.segments[0], (counts.get(r.segments[0]) ?? 0) + 1);
    const hotPrompt = [...counts].sort((x, y) => y[1] - x[1])[0]?.[0];
    assert.ok((counts.get(hotPrompt) ?? 0) > requests.length / 3);
    const run = (abs: number) => {
      const r = runMesh({
        pods: hot.pods,
        preset,
        numGpuBlocks: hot.num_gpu_blocks,
        profile: DEFAULT_PROFILE,
        random: createRandom(5),
        requests,
        timeoutMs: 10_000,
        prefixBalance: { absThreshold: abs, relThreshold: 2 },
      });
      const hotPods = new Map<number, number>();
      requests.forEach((q, i) => {
        const pod = r.outcomes[i]?.pod ?? -1;
        if (q.segments[0] === hotPrompt) hotPods.set(pod, (hotPods.get(pod) ?? 0) + 1);
      });
      const mean = requests.length / hot.pods;
      return { hotPods: hotPods.size, busiest: Math.max(...r.perPod) / mean };
    };
    const spread = run(0.3);
    assert.ok(spread.hotPods >= 2, `hot tenant on ${spread.hotPods} pod(s)`);
    assert.ok(spread.busiest <= 1.5, `busiest pod took ${spread.busiest.toFixed(2)}× the mean`);
    // The same traffic without spreading pins the hot tenant: the check above can fail.
    const pinned = run(1e9);
    assert.ok(
      pinned.busiest > spread.busiest,
      `pinned ${pinned.busiest.toFixed(2)} vs spread ${spread.busiest.toFixed(2)}`,
    );
  });

  it('the oracle sees the same arrivals as the profiles, and every request is placed', () => {
    const preset = getPreset('llama-3.1-8b-h100');
    const requests = scenarioRequests(hot, 3, 60);
    const run = (profile: typeof DEFAULT_PROFILE | 'oracle') =>
      runMesh({
        pods: hot.pods,
        preset,
        numGpuBlocks: hot.num_gpu_blocks,
        profile,
        random: createRandom(5),
        requests,
        timeoutMs: 10_000,
      });
    const oracle = run('oracle');
    const router = run(DEFAULT_PROFILE);
    assert.deepEqual(
      oracle.outcomes.map((o) => o.arrivalMs),
      requests.map((r) => r.arrivalMs),
    );
    assert.deepEqual(
      router.outcomes.map((o) => o.arrivalMs),
      oracle.outcomes.map((o) => o.arrivalMs),
    );
    assert.equal(
      oracle.outcomes.filter((o) => o.status === 'ok').length,
      requests.length,
      'every request completes at a rate the pods sustain',
    );
    assert.ok(
      oracle.perPod.every((n) => n > 0),
      `requests per pod ${oracle.perPod.join(', ')}`,
    );
  });

  it('the oracle reaches at least round robin’s goodput on a small shared-prefix run', () => {
    const cfg = loadRoutingConfig();
    const preset = getPreset(cfg.preset);
    const small: RoutingScenario = { ...hot, pods: 2, start_rate: 60, warmup_s: 1, measure_s: 3 };
    const knee = (name: string) =>
      findKnee(small, preset, profileConfig(cfg.profiles[name] ?? null), 11, { ...cfg, bisect_steps: 0 });
    const oracle = knee('oracle');
    const rr = knee('round-robin');
    assert.ok(rr.best, 'round robin met the SLO at some rate');
    assert.ok(
      (oracle.best?.goodput ?? 0) >= rr.best.goodput,
      `oracle ${oracle.best?.goodput} vs round robin ${rr.best.goodput} req/s`,
    );
  });
});
