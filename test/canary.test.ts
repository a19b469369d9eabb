/**
 * Canary analysis end to end: real simulators behind real sidecars, a real
 * router watching its routing file. A healthy canary walks every step to
 * 100 %; a slow or failing one is rolled back with the reason in status and
 * metrics while clients see no error; a bad canary section is rejected with
 * the field named and the last good config keeps serving; the cost metric
 * and the cost trailer match the usage of the requests sent.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createInferenceClient } from '../client/index.js';
import type { CanaryEvent } from '../router/canary/controller.js';
import { canaryRoutes, drive, PRICES, PROBE_MS, recordCanary } from './helpers/canary.js';
import { MODEL } from './helpers/mesh.js';
import { type Pod, startPod } from './helpers/pods.js';
import { type RouterHarness, startRouterHarness } from './helpers/router-harness.js';
import { nextEvent } from './helpers/wait.js';

/** An operator action on the model's canary through the admin API. */
async function control(h: RouterHarness, action: 'pause' | 'resume'): Promise<void> {
  const res = await fetch(`${h.router.adminUrl}/canary/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL }),
  });
  assert.equal(res.status, 200, `${action}: ${await res.text()}`);
}

/**
 * The next canary event matching `match`; a timeout names the decisions seen
 * meanwhile. The bound only ends a wait for a decision that never comes: at
 * load 25 the 20 % step, which judges after 30 canary requests (150 in all),
 * took over a minute at two or three requests a second.
 */
async function untilCanary(h: RouterHarness, match: (e: CanaryEvent) => boolean, timeoutMs = 240_000) {
  const seen: CanaryEvent[] = [];
  const record = (e: CanaryEvent) => seen.push(e);
  h.router.events.on('canary', record);
  try {
    return await nextEvent<CanaryEvent>(h.router.events, 'canary', match, timeoutMs);
  } catch (err) {
    const story = seen.map((e) => `${e.decision} ${e.share} % (${e.reason}: ${e.detail})`).join('; ');
    // The attempts that did not succeed (the faults an error-rate judgement counted).
    const faults = h.traces.flatMap((t) =>
      t.attempts
        .filter((a) => a.outcome !== 'ok')
        .map((a) => `${t.version?.version} ${a.kind} ${a.outcome} @${a.startMs}ms: ${a.error}`),
    );
    throw new Error(
      `${(err as Error).message}; decisions meanwhile: ${story || 'none'}; attempts that failed: ${faults.join('; ') || 'none'}`,
    );
  } finally {
    h.router.events.off('canary', record);
  }
}

async function setFaults(pod: Pod, faults: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${pod.simUrl}/sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  });
  assert.equal(res.status, 200, await res.text());
}

// 30 requests of each version per interval keep p90 steady on a busy machine.
const STEPS = 'steps: [20, 50, 100], interval_ms: 700, min_requests: 30';
// A starved CPU adds the same delays to both versions' latencies: between
// two healthy versions the p90 ratio then wanders (2.2 was seen at load 20
// with the preset's 7 ms steps), while a slow version's excess is diluted.
// So the engine steps take a fixed 20 ms (40 ms to the first token), which
// the delays dilute less; healthy versions stay within 3x, and a slow factor
// of 30 (600 ms a token) stays beyond 3x unless a starved CPU adds more than
// a quarter of a second to a healthy token's p90.
const SIM = { timeScale: 1, interTokenLatencyMs: 20, timeToFirstTokenMs: 40 };
const LATENCY_BOUNDS = 'max_ttft_p90_ratio: 3, max_itl_p90_ratio: 3';
const SLOW_FACTOR = 30;

describe('canary progression', () => {
  let pods: Pod[];
  let h: RouterHarness;
  let seen: CanaryEvent[];
  before(async () => {
    // Real-time simulators (timeScale 1): latency comes from the engine model,
    // so a slow factor shows in TTFT and inter-token latency as on a GPU.
    pods = await Promise.all(
      ['v1', 'v1', 'v2', 'v2'].map((version) => startPod({ version, sim: SIM, probeIntervalMs: PROBE_MS })),
    );
    h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: canaryRoutes(`${STEPS}, ${LATENCY_BOUNDS}`),
      admin: true,
    });
    seen = recordCanary(h);
    await h.waitReady(4);
  });
  after(async () => {
    await h.close();
    for (const p of pods) await p.close();
  });

  it('a healthy canary walks every step to 100 %, and the cost metric matches the usage sent', async () => {
    const complete = untilCanary(h, (e) => e.decision === 'complete');
    const load = drive(h);
    const done = await complete.finally(() => load.stop());
    const { results, errors } = await load.stop();
    assert.deepEqual(errors, []);
    assert.equal(done.share, 100);
    const advances = seen.filter((e) => e.decision === 'advance' || e.decision === 'complete');
    assert.deepEqual(
      advances.map((e) => e.share),
      [50, 100],
    );
    const st = h.router.status();
    const c = st.canary?.models[0];
    assert.equal(c?.phase, 'completed');
    assert.deepEqual(c?.weights, { v1: 0, v2: 100 });
    assert.deepEqual(c?.fileWeights, { v1: 100, v2: 0 });
    assert.deepEqual(
      st.models[0]?.versions.map((v) => [v.name, v.weight, v.fileWeight]),
      [
        ['v1', 0, 100],
        ['v2', 100, 0],
      ],
    );
    // New requests all go to the canary now.
    const after = await h.client.generate({ model: MODEL, prompt: 'after', sampling: { maxTokens: 1 } });
    assert.equal(after.modelVersion, 'v2');
    results.push(after);
    // The decisions are counted.
    const decisions = await h.metric('llm_canary_decisions_total');
    assert.match(decisions, /decision="advance",reason="healthy"\} 1/);
    assert.match(decisions, /decision="complete",reason="healthy"\} 1/);
    assert.match(await h.metric('llm_route_weight'), /model_version="v2"\} 100/);
    // llm_cost_total equals the usage of the requests sent at the configured prices.
    const want = { v1: 0, v2: 0 };
    for (const r of results) {
      const p = PRICES[r.modelVersion as 'v1' | 'v2'];
      want[r.modelVersion as 'v1' | 'v2'] +=
        ((r.usage?.promptTokens ?? 0) * p.input + (r.usage?.completionTokens ?? 0) * p.output) / 1000;
    }
    const text = await h.metric('llm_cost_total');
    for (const v of ['v1', 'v2'] as const) {
      const m = new RegExp(
        `llm_cost_total\\{model="${MODEL}",model_version="${v}",tenant=""\\} ([\\d.e-]+)`,
      ).exec(text);
      assert.ok(m, `no cost for ${v}: ${text}`);
      assert.ok(
        Math.abs(Number(m[1]) - want[v]) < 1e-9 * Math.max(1, want[v]),
        `${v}: ${m[1]} vs ${want[v]}`,
      );
    }
    // The per-version comparison is in /status.json and the metrics.
    const v2 = st.analysis?.models[0]?.versions.find((v) => v.name === 'v2');
    assert.ok((v2?.windows['1m']?.requests ?? 0) > 0);
    assert.ok((v2?.windows['1m']?.ttftP90 ?? 0) > 0);
    assert.match(
      await h.metric('llm_version_ttft_seconds'),
      /model_version="v2",window="1m",quantile="0.9"\}/,
    );
  });

  it('the request cost is a trailer, read by the client for unary and streaming calls', async () => {
    const client = createInferenceClient(h.router.address);
    try {
      const unary = await client.generate(
        {
          model: MODEL,
          prompt: 'what does this cost',
          sampling: { maxTokens: 3 },
          routing: { version: 'v1' },
        },
        { timeoutMs: 10_000 },
      );
      assert.ok(unary.usage, 'usage');
      const want = (u: { promptTokens: number; completionTokens: number }) =>
        (u.promptTokens * PRICES.v1.input + u.completionTokens * PRICES.v1.output) / 1000;
      assert.ok(
        unary.cost !== null && Math.abs(unary.cost - want(unary.usage)) < 1e-9,
        `trailer ${unary.cost}`,
      );

      const stream = client.generateStream(
        {
          model: MODEL,
          prompt: 'and what does this cost',
          sampling: { maxTokens: 5 },
          routing: { version: 'v1' },
        },
        { timeoutMs: 10_000 },
      );
      let usage: { promptTokens: number; completionTokens: number } | null = null;
      for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
      assert.ok(usage, 'usage on the last chunk');
      const cost = await stream.cost;
      assert.ok(
        cost !== null && Math.abs(cost - want(usage)) < 1e-9,
        `stream trailer ${cost} vs ${want(usage)}`,
      );
    } finally {
      client.close();
    }
  });
});

describe('canary rollback', () => {
  let pods: Pod[];
  let h: RouterHarness;
  let seen: CanaryEvent[];
  before(async () => {
    pods = await Promise.all(
      ['v1', 'v1', 'v2', 'v2'].map((version) => startPod({ version, sim: SIM, probeIntervalMs: PROBE_MS })),
    );
    h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: canaryRoutes(STEPS),
      admin: true,
    });
    seen = recordCanary(h);
    await h.waitReady(4);
  });
  after(async () => {
    await h.close();
    for (const p of pods) await p.close();
  });

  /** Restarts the progression (a changed canary section) with no faults. */
  async function restart(variant: string, extra = ''): Promise<void> {
    for (const p of pods) await setFaults(p, { error_rate: 0, slow_factor: 1 });
    const started = untilCanary(h, (e) => e.decision === 'start');
    const ev = await h.rewrite(canaryRoutes(`${STEPS}, ${variant}`, extra));
    assert.equal(ev.result, 'applied');
    await started;
  }

  /**
   * Breaks the canary, drives traffic, and returns the judgements from the
   * breach to the rollback. Holds (fewer than min_requests so far: a slow
   * machine serves fewer requests per interval) are not judgements of the
   * canary's health; "within two intervals of the breach" counts the
   * intervals that had the data to judge.
   */
  async function breachUntilRollback(breach: () => Promise<void>) {
    const load = drive(h);
    // Let the first step pass healthy, then break the canary at its 50 % step.
    await untilCanary(h, (e) => e.decision === 'advance' && e.share === 50).catch(async (err) => {
      await load.stop();
      throw err;
    });
    // Paused while the faults are set, resumed after: the judged data starts
    // over at the resume, so the step's judgement sees only the broken canary
    // however long setting the faults takes on a loaded machine.
    await control(h, 'pause');
    const from = seen.length;
    await breach();
    const rolled = untilCanary(h, (e) => e.decision === 'rollback');
    await control(h, 'resume');
    const rb = await rolled.finally(() => load.stop());
    const { errors } = await load.stop();
    const judgements = seen
      .slice(from)
      .filter((e) => e.local && ['advance', 'rollback', 'complete'].includes(e.decision));
    return { rb, errors, judgements };
  }

  it('a slow canary is rolled back within two intervals, with the reason in status and the metric', async () => {
    await restart(LATENCY_BOUNDS);
    const { rb, errors, judgements } = await breachUntilRollback(async () => {
      for (const p of pods.filter((x) => x.version === 'v2'))
        await setFaults(p, { slow_factor: SLOW_FACTOR });
    });
    assert.deepEqual(errors, [], 'clients see no error');
    assert.ok(['ttft_p90', 'itl_p90'].includes(rb.reason), rb.reason);
    assert.ok(judgements.length <= 2, `judgements until rollback: ${judgements.map((j) => j.decision)}`);
    assert.ok(!judgements.some((j) => j.decision === 'advance' || j.decision === 'complete'));
    const c = h.router.status().canary?.models[0];
    assert.equal(c?.phase, 'rolled_back');
    assert.equal(c?.share, 0);
    assert.match(c?.reason ?? '', /p90 .* ratio \d+\.\d+ > max_/);
    assert.equal(c?.timeline.at(-1)?.decision, 'rollback');
    assert.match(
      await h.metric('llm_canary_decisions_total'),
      new RegExp(`decision="rollback",reason="${rb.reason}"\\} 1`),
    );
    // Rolled back: new requests go to the baseline only.
    const r = await h.client.generate({ model: MODEL, prompt: 'after', sampling: { maxTokens: 1 } });
    assert.equal(r.modelVersion, 'v1');
  });

  it('a failing canary is rolled back on its error rate; retries keep every client request whole', async () => {
    // A quarter of the requests fail once at the 50 % step: more than the
    // default retry budget's 20 % once a slow machine takes long enough to
    // judge for the window to fill. The budget is not what this test is about.
    await restart(
      'max_ttft_p90_ratio: 50, max_itl_p90_ratio: 50',
      'upstream: { retry_budget: { ratio: 0.5 } }\n',
    );
    const canaryPods = pods.filter((x) => x.version === 'v2');
    const { rb, errors, judgements } = await breachUntilRollback(async () => {
      // One of the two canary pods answers every request with a 500: each is retried on the other.
      await setFaults(canaryPods[0] as Pod, { error_rate: 1, error_status: 500 });
    });
    assert.deepEqual(errors, [], 'retries hide every canary failure');
    assert.equal(rb.reason, 'error_rate');
    assert.ok(judgements.length <= 2, `judgements until rollback: ${judgements.map((j) => j.decision)}`);
    const c = h.router.status().canary?.models[0];
    assert.equal(c?.phase, 'rolled_back');
    assert.match(c?.reason ?? '', /error rate .* > max_error_rate_increase/);
    assert.match(await h.metric('llm_canary_decisions_total'), /decision="rollback",reason="error_rate"\} 1/);
  });
});

describe('bad canary config', () => {
  let pods: Pod[];
  let h: RouterHarness;
  const good = canaryRoutes('steps: [10, 100], interval_ms: 600000');
  before(async () => {
    pods = await Promise.all(['v1', 'v2'].map((version) => startPod({ version, probeIntervalMs: PROBE_MS })));
    h = await startRouterHarness({ endpoints: pods.map((p) => p.sidecar.address), yaml: good });
    await h.waitReady(2);
  });
  after(async () => {
    await h.close();
    for (const p of pods) await p.close();
  });

  it('is rejected on hot reload with the field named; the last good config keeps serving', async () => {
    const field = `models.${MODEL}.canary`;
    const cases: Array<[string, string]> = [
      ['version: v3, baseline: v1', `${field}.version: unknown version "v3" (versions: v1, v2)`],
      ['version: v2, baseline: v2', `${field}.baseline: must differ from canary.version ("v2")`],
      [
        'version: v2, baseline: v1, steps: [10, 10, 100]',
        `${field}.steps[1]: steps must increase (10 after 10)`,
      ],
      ['version: v2, baseline: v1, steps: [10, 120]', `${field}.steps[1]: each step must be <= 100`],
      ['version: v2, baseline: v1, steps: [0, 100]', `${field}.steps[0]: each step must be > 0`],
      ['version: v2, baseline: v1, max_ttft_p90_ratio: 0', `${field}.max_ttft_p90_ratio: must be > 0`],
      ['version: v2, baseline: v1, max_itl_p90_ratio: -1', `${field}.max_itl_p90_ratio: must be > 0`],
      ['version: v2, baseline: v1, on_failure: explode', `${field}.on_failure`],
    ];
    const before = h.router.status().canary?.models[0];
    assert.deepEqual([before?.steps, before?.share], [[10, 100], 10]);
    for (const [section, problem] of cases) {
      const text = `models:\n  ${MODEL}:\n    versions: { v1: { weight: 100 }, v2: { weight: 0 } }\n    canary: { ${section} }\n`;
      const ev = await h.rewrite(text);
      assert.equal(ev.result, 'rejected', section);
      assert.ok(
        ev.result === 'rejected' && ev.problems.some((p) => p.includes(problem)),
        `${section}: ${ev.result === 'rejected' ? ev.problems.join('; ') : ''}`,
      );
      // The last good config serves on, its progression untouched.
      const c = h.router.status().canary?.models[0];
      assert.deepEqual([c?.steps, c?.share, c?.phase], [[10, 100], 10, 'progressing']);
      const r = await h.client.generate({ model: MODEL, prompt: section, sampling: { maxTokens: 1 } });
      assert.ok(['v1', 'v2'].includes(r.modelVersion));
    }
    assert.match(h.router.status().config.lastError, /canary\.on_failure/);
    // A good file again clears the rejection; the same canary section keeps its progression.
    const ev = await h.rewrite(`${good}# touched\n`);
    assert.equal(ev.result, 'applied');
    assert.equal(h.router.status().canary?.models[0]?.timeline.length, 1);
  });
});
