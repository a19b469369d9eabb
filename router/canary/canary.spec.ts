import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { MeshError, Status } from '../../common/errors.js';
import { silentLogger } from '../../common/log.js';
import { validateRouterConfig } from '../config/load.js';
import { createRouterMetrics } from '../metrics.js';
import type { RequestTrace } from '../request-trace.js';
import { rendezvousOrder } from '../routing/version-split.js';
import { type CanaryEvent, createCanary, type FinishedRequest } from './controller.js';
import { requestCost } from './cost.js';
import { judge } from './judge.js';
import { applyAction, applyJudgement, effectiveWeights, startProgression } from './progression.js';
import { canarySchema } from './schema.js';
import { emptyStats, mergeStats, observe, quantile, statsFromJson, statsToJson, summarize } from './stats.js';
import { createVersionWindows } from './windows.js';

const cfg = canarySchema.parse({
  version: 'v2',
  baseline: 'v1',
  steps: [10, 50, 100],
  interval_ms: 1000,
  min_requests: 10,
});

const summary = (requests: number, faults: number, ttft: number, itl?: number) => {
  const s = emptyStats();
  s.requests = requests;
  s.faults = faults;
  for (let i = 0; i < requests; i++) observe(s.ttft, ttft);
  if (itl !== undefined) for (let i = 0; i < requests; i++) observe(s.itl, itl);
  return summarize(s);
};

describe('canary judge', () => {
  it('holds below min_requests, passes within bounds, and names the bound that failed', () => {
    assert.equal(judge(cfg, summary(9, 0, 0.1), summary(100, 0, 0.1)).verdict, 'hold');
    assert.equal(judge(cfg, summary(20, 0, 0.1, 0.01), summary(100, 0, 0.1, 0.01)).verdict, 'pass');
    const err = judge(cfg, summary(100, 5, 0.1), summary(100, 1, 0.1));
    assert.deepEqual([err.verdict, err.reason], ['fail', 'error_rate']);
    assert.match(err.detail, /5\.00 %.*1\.00 %/);
    const ttft = judge(cfg, summary(100, 0, 0.2), summary(100, 0, 0.1));
    assert.deepEqual([ttft.verdict, ttft.reason], ['fail', 'ttft_p90']);
    const itl = judge(cfg, summary(100, 0, 0.1, 0.05), summary(100, 0, 0.1, 0.02));
    assert.deepEqual([itl.verdict, itl.reason], ['fail', 'itl_p90']);
    // An increase exactly at the bound passes; a ratio without baseline samples is not judged.
    assert.equal(judge(cfg, summary(100, 1, 0.1), summary(100, 0, 0.1)).verdict, 'pass');
    assert.equal(
      judge(cfg, summary(100, 0, 0.5), summarize({ ...emptyStats(), requests: 100 })).verdict,
      'pass',
    );
  });
});

describe('canary progression', () => {
  const pass = { verdict: 'pass', reason: 'healthy', detail: 'ok' } as const;
  it('walks every step to 100 % and completes', () => {
    let s = startProgression(cfg, 0);
    assert.deepEqual([s.phase, s.share, s.step], ['progressing', 10, 0]);
    const decisions: string[] = [];
    for (let t = 1000; s.phase === 'progressing'; t += 1000) {
      const r = applyJudgement(s, cfg, pass, t);
      decisions.push(r.decision);
      s = r.state;
    }
    assert.deepEqual(decisions, ['advance', 'complete']);
    assert.deepEqual([s.phase, s.share, s.step], ['completed', 100, 2]);
    assert.deepEqual(
      s.timeline.map((e) => [e.decision, e.share]),
      [
        ['start', 10],
        ['advance', 50],
        ['complete', 100],
      ],
    );
  });
  it('a last step below 100 completes at 100 %', () => {
    const c = canarySchema.parse({ ...cfg, steps: [20] });
    const { state, decision } = applyJudgement(startProgression(c, 0), c, pass, 1000);
    assert.deepEqual([decision, state.phase, state.share], ['complete', 'completed', 100]);
  });
  it('holds fold into one timeline entry; a failure rolls back (or pauses) with the reason', () => {
    let s = startProgression(cfg, 0);
    for (let i = 0; i < 3; i++) {
      s = applyJudgement(
        s,
        cfg,
        { verdict: 'hold', reason: 'too_few_requests', detail: 'few' },
        1000 * (i + 1),
      ).state;
    }
    assert.equal(s.timeline.length, 2);
    assert.equal(s.timeline[1]?.count, 3);
    assert.equal(s.judgeAt, 4000);
    const fail = { verdict: 'fail', reason: 'ttft_p90', detail: 'TTFT p90 ratio 3.00 > 1.25' } as const;
    const rb = applyJudgement(s, cfg, fail, 4000);
    assert.deepEqual(
      [rb.decision, rb.state.phase, rb.state.share, rb.state.reason],
      ['rollback', 'rolled_back', 0, fail.detail],
    );
    const pc = canarySchema.parse({ ...cfg, on_failure: 'pause' });
    const p = applyJudgement(s, pc, fail, 4000);
    assert.deepEqual([p.decision, p.state.phase, p.state.share], ['pause', 'paused', 10]);
  });
  it('operator actions: pause, resume, rollback, resume starts over, promote; refuses what makes no sense', () => {
    let s = startProgression(cfg, 0);
    s = applyAction(s, cfg, 'pause', 1).state;
    assert.throws(() => applyAction(s, cfg, 'pause', 2), /cannot pause: the canary is paused/);
    s = applyAction(s, cfg, 'resume', 2).state;
    assert.equal(s.judgeAt, 1002);
    s = applyAction(s, cfg, 'rollback', 3).state;
    assert.deepEqual([s.phase, s.share], ['rolled_back', 0]);
    s = applyAction(s, cfg, 'resume', 4).state;
    assert.deepEqual([s.phase, s.share, s.step], ['progressing', 10, 0]);
    s = applyAction(s, cfg, 'promote', 5).state;
    assert.deepEqual([s.phase, s.share], ['completed', 100]);
    assert.throws(() => applyAction(s, cfg, 'resume', 6), /complete/);
  });
  it('effective weights split the two versions’ combined weight; other versions keep theirs', () => {
    const model = { versions: { v1: { weight: 100 }, v2: { weight: 0 }, v3: { weight: 10 } } };
    assert.deepEqual(effectiveWeights(model as never, cfg, 25), { v1: 75, v2: 25, v3: 10 });
    assert.deepEqual(effectiveWeights(model as never, cfg, 0), { v1: 100, v2: 0, v3: 10 });
  });
});

describe('sessions under a progression', () => {
  it('each step moves sessions only from the baseline to the canary; a rollback moves the canary’s back', () => {
    // Canary and baseline are the only weighted versions (v3 is deployed at weight 0): the usual rollout.
    const model = { versions: { v1: { weight: 100 }, v2: { weight: 0 }, v3: { weight: 0 } } } as never;
    const keys = Array.from({ length: 2000 }, (_, i) => `session-${i}`);
    const assign = (share: number) => {
      const w = effectiveWeights(model, cfg, share);
      // What the router routes by: versions with a weight > 0 (version-split.ts filters the same way).
      const versions = Object.entries(w)
        .filter(([, x]) => x > 0)
        .map(([v, weight]) => [v, { weight }] as const);
      return keys.map((k) => rendezvousOrder(k, versions)[0]);
    };
    let before = assign(0);
    for (const share of [5, 25, 50, 100]) {
      const now = assign(share);
      for (let i = 0; i < keys.length; i++) {
        if (now[i] !== before[i])
          assert.deepEqual([before[i], now[i]], ['v1', 'v2'], `${keys[i]} at ${share} %`);
      }
      before = now;
    }
    assert.ok(
      before.every((v) => v === 'v2'),
      'all sessions on the canary at 100 %',
    );
    // Rolled back from 50 %: exactly the canary's sessions go back to the baseline.
    const at50 = assign(50);
    const rolledBack = assign(0);
    for (let i = 0; i < keys.length; i++) {
      if (rolledBack[i] !== at50[i]) assert.deepEqual([at50[i], rolledBack[i]], ['v2', 'v1']);
    }
    assert.ok(rolledBack.every((v) => v === 'v1'));
  });
});

describe('canary statistics', () => {
  it('percentiles are within 2.5 % and survive merging and JSON', () => {
    const a = emptyStats();
    const b = emptyStats();
    for (let i = 1; i <= 1000; i++) observe(i % 2 ? a.ttft : b.ttft, i / 1000);
    const m = mergeStats(
      statsFromJson(statsToJson(a)),
      statsFromJson(JSON.parse(JSON.stringify(statsToJson(b)))),
    );
    for (const [q, want] of [
      [0.5, 0.5],
      [0.9, 0.9],
      [0.99, 0.99],
    ] as const) {
      const got = quantile(m.ttft, q) ?? 0;
      assert.ok(Math.abs(got / want - 1) <= 0.025, `p${q * 100} ${got} vs ${want}`);
    }
  });
  it('windows slide with the clock', () => {
    let t = 0;
    const w = createVersionWindows(1000, 60_000, () => t);
    w.current('m', 'v1').requests += 5;
    t = 30_000;
    w.current('m', 'v1').requests += 2;
    assert.equal(w.window('m', 'v1', 60_000).requests, 7);
    assert.equal(w.window('m', 'v1', 10_000).requests, 2);
    t = 75_000;
    assert.equal(w.window('m', 'v1', 60_000).requests, 2);
    const series = w.series('m', 'v1', 30);
    assert.equal(series.length, 30);
    assert.equal(
      series.reduce((s, p) => s + p.requests, 0),
      2,
    );
  });
  it('prices requests by tokens or by GPU time', () => {
    assert.equal(
      requestCost(
        { input_per_1k: 0.5, output_per_1k: 1.5 },
        { promptTokens: 2000, completionTokens: 1000 },
        9,
      ),
      2.5,
    );
    const gpu = { gpu_hour: 3.6, gpus_per_pod: 2, pods: 4, slots_per_pod: 10 };
    assert.ok(Math.abs(requestCost(gpu, { promptTokens: 1, completionTokens: 1 }, 10) - 0.002) < 1e-12);
  });
});

describe('canary controller (manual clock)', () => {
  const config = validateRouterConfig({
    models: {
      m: {
        versions: {
          v1: { weight: 100, price: { input_per_1k: 1, output_per_1k: 2 } },
          v2: { weight: 0, price: { input_per_1k: 1, output_per_1k: 2 } },
        },
        canary: { version: 'v2', baseline: 'v1', steps: [10, 50, 100], interval_ms: 1000, min_requests: 5 },
      },
    },
  });
  const trace = (version: string, attempts: RequestTrace['attempts'] = []): RequestTrace => ({
    requestId: 'r',
    traceId: 't',
    receivedAt: 0,
    model: 'm',
    version: { version, reason: 'weighted' },
    priority: 2,
    queuedMs: 0,
    deadline: 0,
    deadlineFromClient: false,
    attempts,
    status: 'OK',
  });
  const setup = () => {
    let t = 1_000_000;
    const events = new EventEmitter();
    const seen: CanaryEvent[] = [];
    events.on('canary', (e: CanaryEvent) => seen.push(e));
    const metrics = createRouterMetrics();
    const canary = createCanary(config, {
      metrics,
      log: silentLogger,
      now: () => t,
      events,
      replicaId: 'r1',
      timer: false,
    });
    const serve = (version: string, n: number, ttft: number, fault = false) => {
      for (let i = 0; i < n; i++) {
        canary.firstToken('m', version, ttft);
        const f: FinishedRequest = {
          rt: trace(
            version,
            fault
              ? [
                  {
                    endpoint: 'e',
                    kind: 'internal',
                    outcome: 'retried',
                    chunks: 0,
                    startMs: 0,
                    forced: false,
                    decision: {} as never,
                  },
                ]
              : [],
          ),
          version,
          usage: { promptTokens: 100, completionTokens: 50 },
          streamSeconds: 0.5,
          durationSeconds: 0.6,
          cancelled: false,
        };
        canary.finish(f);
      }
    };
    return { canary, serve, seen, metrics, advance: (ms: number) => (t += ms) };
  };

  it('overlays weights, advances a healthy canary, and completes at 100 %', async () => {
    const { canary, serve, seen, advance, metrics } = setup();
    const m = config.models.m!;
    assert.deepEqual(
      Object.fromEntries(Object.entries(canary.effective('m', m).versions).map(([v, c]) => [v, c.weight])),
      { v1: 90, v2: 10 },
    );
    serve('v1', 20, 0.1);
    serve('v2', 3, 0.1);
    advance(1000);
    await canary.tick();
    assert.equal(seen.at(-1)?.decision, 'hold', 'too few canary requests');
    serve('v2', 3, 0.1);
    advance(1000);
    await canary.tick();
    assert.deepEqual([seen.at(-1)?.decision, seen.at(-1)?.share], ['advance', 50]);
    serve('v1', 10, 0.1);
    serve('v2', 10, 0.105);
    advance(1000);
    await canary.tick();
    assert.deepEqual([seen.at(-1)?.decision, seen.at(-1)?.phase], ['complete', 'completed']);
    assert.equal(canary.effective('m', m).versions.v2?.weight, 100);
    const text = await metrics.registry.getSingleMetricAsString('llm_canary_decisions_total');
    assert.match(text, /decision="advance",reason="healthy"\} 1/);
    assert.match(text, /decision="hold",reason="too_few_requests"\} 1/);
    const costText = await metrics.registry.getSingleMetricAsString('llm_cost_total');
    // 46 requests × (100 × 1 + 50 × 2) / 1000 = 9.2
    const total = [...costText.matchAll(/llm_cost_total\{[^}]*\} ([\d.e-]+)/g)].reduce(
      (s, x) => s + Number(x[1]),
      0,
    );
    assert.ok(Math.abs(total - 9.2) < 1e-9, `cost ${total}`);
  });

  it('rolls back a slow or failing canary with the reason, and resets when the canary section changes', async () => {
    const { canary, serve, seen, advance } = setup();
    serve('v1', 20, 0.1);
    serve('v2', 20, 0.1, true);
    advance(1000);
    await canary.tick();
    assert.deepEqual(
      [seen.at(-1)?.decision, seen.at(-1)?.reason, seen.at(-1)?.share],
      ['rollback', 'error_rate', 0],
    );
    const st = canary.status().models[0]!;
    assert.equal(st.phase, 'rolled_back');
    assert.match(st.reason, /error rate 100\.00 %/);
    assert.equal(canary.effective('m', config.models.m!).versions.v2?.weight, 0);
    // The same section again keeps the rollback; a changed one starts over.
    canary.configure(config);
    assert.equal(canary.status().models[0]?.phase, 'rolled_back');
    const changed = validateRouterConfig({
      models: { m: { ...config.models.m!, canary: { ...config.models.m!.canary!, interval_ms: 2000 } } },
    });
    canary.configure(changed);
    assert.deepEqual(
      [canary.status().models[0]?.phase, canary.status().models[0]?.share],
      ['progressing', 10],
    );
    serve('v1', 20, 0.1);
    serve('v2', 20, 0.5);
    advance(2000);
    await canary.tick();
    assert.deepEqual([seen.at(-1)?.decision, seen.at(-1)?.reason], ['rollback', 'ttft_p90']);
  });

  it('a config put back within the same apply keeps its progression; an edit back later starts over', async () => {
    const { canary, serve, advance } = setup();
    serve('v1', 20, 0.1);
    serve('v2', 20, 0.1);
    advance(1000);
    await canary.tick();
    assert.equal(canary.status().models[0]?.share, 50);
    const changed = validateRouterConfig({
      models: { m: { ...config.models.m!, canary: { ...config.models.m!.canary!, min_requests: 7 } } },
    });
    // The datastore applies `changed`, fails, and restores `config` synchronously.
    canary.configure(changed);
    canary.configure(config);
    assert.equal(canary.status().models[0]?.share, 50);
    await Promise.resolve();
    canary.configure(changed);
    await Promise.resolve();
    canary.configure(config);
    assert.deepEqual([canary.status().models[0]?.share, canary.status().models[0]?.step], [10, 0]);
  });

  it('client faults and cancellations are not counted against a version', () => {
    const { canary } = setup();
    const base = { version: 'v2', streamSeconds: 0, durationSeconds: 0.1 };
    const bad = new MeshError(Status.INVALID_ARGUMENT, 'bad');
    canary.finish({ ...base, rt: trace('v2'), error: bad, cancelled: false });
    canary.finish({ ...base, rt: trace('v2'), error: new Error('x'), cancelled: true });
    assert.equal(canary.status().models[0]?.current.canary.requests, 0);
    canary.finish({
      ...base,
      rt: trace('v2'),
      error: new MeshError(Status.UNAVAILABLE, 'down'),
      cancelled: false,
    });
    assert.equal(canary.status().models[0]?.current.canary.errorRate, 1);
  });
});
