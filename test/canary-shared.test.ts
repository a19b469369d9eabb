/**
 * Two router replicas sharing a canary progression through a private Redis:
 * one holds the judging lease, both route by the same step, and both follow
 * a decision within one tick. Killing Redis (SIGKILL) pauses the progression
 * on both and fails no request; a restarted Redis lets it go on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CanaryEvent, CanaryTickEvent } from '../router/canary/controller.js';
import { canaryRoutes, drive, PROBE_MS } from './helpers/canary.js';
import { type Pod, startPod } from './helpers/pods.js';
import { type PrivateRedis, startPrivateRedis } from './helpers/redis.js';
import { type RouterHarness, startRouterHarness } from './helpers/router-harness.js';
import { nextEvent } from './helpers/wait.js';

const untilCanary = (h: RouterHarness, match: (e: CanaryEvent) => boolean, timeoutMs = 30_000) =>
  nextEvent<CanaryEvent>(h.router.events, 'canary', match, timeoutMs);

describe('canary shared by two router replicas through Redis', () => {
  let redis: PrivateRedis;
  let pods: Pod[];
  let a: RouterHarness;
  let b: RouterHarness;
  before(async () => {
    redis = await startPrivateRedis();
    pods = await Promise.all(
      ['v1', 'v1', 'v2', 'v2'].map((version) => startPod({ version, probeIntervalMs: PROBE_MS })),
    );
    const yaml = canaryRoutes(
      'steps: [20, 40, 60, 100], interval_ms: 700, min_requests: 15, max_ttft_p90_ratio: 50, max_itl_p90_ratio: 50',
      `analysis: { redis: "${redis.url}", redis_prefix: "test:canary:${process.pid}" }\n`,
    );
    const endpoints = pods.map((p) => p.sidecar.address);
    [a, b] = await Promise.all([
      startRouterHarness({ endpoints, yaml, admin: true }),
      startRouterHarness({ endpoints, yaml, admin: true }),
    ]);
    await a.waitReady(4);
    await b.waitReady(4);
  });
  after(async () => {
    await a?.close();
    await b?.close();
    for (const p of pods ?? []) await p.close();
    await redis?.close();
  });

  it('both replicas follow one judge step by step; killing Redis pauses the progression and fails no request', async () => {
    // Traffic through both replicas: the judge merges their statistics.
    const loadA = drive(a, 4);
    const loadB = drive(b, 4);
    try {
      // The first judged step: both replicas move to 40 %, one decided it.
      const [ea, eb] = await Promise.all([
        untilCanary(a, (e) => e.decision === 'advance' && e.share === 40),
        untilCanary(b, (e) => e.decision === 'advance' && e.share === 40),
      ]);
      assert.equal(Number(ea.local) + Number(eb.local), 1, 'exactly one replica judged');
      const [sa, sb] = [a.router.status().canary, b.router.status().canary];
      assert.deepEqual([sa?.redis, sb?.redis], ['up', 'up']);
      assert.deepEqual(
        [sa?.models[0]?.sharing, sa?.models[0]?.share, sb?.models[0]?.sharing, sb?.models[0]?.share],
        ['redis', 40, 'redis', 40],
      );
      assert.equal(Number(sa?.models[0]?.judge) + Number(sb?.models[0]?.judge), 1, 'one lease holder');
      assert.deepEqual(sa?.models[0]?.weights, sb?.models[0]?.weights);

      // Redis dies mid-progression: both replicas pause at their step.
      const paused = [a, b].map((h) =>
        untilCanary(h, (e) => e.decision === 'pause' && e.reason === 'redis_unavailable'),
      );
      await redis.kill();
      await Promise.all(paused);
      const step = a.router.status().canary?.models[0]?.share;
      // A judgement falls due during the outage and is not made.
      await Promise.all(
        [a, b].map((h) =>
          nextEvent<CanaryTickEvent>(h.router.events, 'canary-tick', (t) => t.due && t.shared === 'down'),
        ),
      );
      for (const h of [a, b]) {
        const c = h.router.status().canary?.models[0];
        assert.deepEqual([c?.phase, c?.sharing, c?.share], ['paused', 'redis-unavailable', step]);
        assert.match(c?.reason ?? '', /Redis\) unreachable/);
      }
      assert.match(await a.metric('llm_canary_shared_state_up'), /llm_canary_shared_state_up 0/);

      // Redis returns (empty): the progression goes on from its step, on both replicas.
      const resumed = [a, b].map((h) => untilCanary(h, (e) => e.decision === 'resume'));
      await redis.restart();
      await Promise.all(resumed);
      await Promise.all(
        [a, b].map((h) =>
          untilCanary(
            h,
            (e) => (e.decision === 'advance' || e.decision === 'complete') && e.share > (step ?? 0),
          ),
        ),
      );
    } finally {
      const ra = await loadA.stop();
      const rb = await loadB.stop();
      assert.deepEqual([...ra.errors, ...rb.errors], [], 'no request failed');
      assert.ok(ra.results.length > 0 && rb.results.length > 0);
    }
  });
});
