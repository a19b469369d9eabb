/**
 * Overload on real simulator pods: two pods that run 4 requests at once,
 * driven at 4× that. The router keeps its in-flight per pod at the pods'
 * knee (so engine queues stay near empty), admits waiting requests as
 * requests finish, highest priority first, and sheds what the pool cannot
 * start within the queue budget at once, with RESOURCE_EXHAUSTED and a
 * pushback computed from how fast the pool drains. Engines that do not
 * publish their limit are held the same way once the router has learned it
 * from a queue in them (the same count running at two scrapes while
 * requests waited), and that queue drains.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import type { MeshError } from '../client/index.js';
import { Status } from '../common/errors.js';
import { MODEL } from './helpers/mesh.js';
import { type Pod, startPod } from './helpers/pods.js';
import { startRouterHarness } from './helpers/router-harness.js';
import { nextEvent, waitUntil } from './helpers/wait.js';

const MAX_NUM_SEQS = 4;
const MAX_QUEUE_WAIT_MS = 300;

describe('overload', () => {
  // The priority phase is about order, not shedding: its queue budget is wide
  // enough that a slow machine does not shed it, even once its queue stands;
  // the overload phase then reloads the tight budget (and the default
  // standing-queue budget).
  const PRIORITY_QUEUE_WAIT_MS = 20_000;
  const routes = (queueWaitMs: number, standingMs?: number) =>
    `models: { ${MODEL}: { versions: { v1: { weight: 1 } } } }\n` +
    `admission: { saturation_queue_depth: 1, max_queue_wait_ms: ${queueWaitMs}, pushback_ms: ${MAX_QUEUE_WAIT_MS}, min_pushback_ms: 20${standingMs === undefined ? '' : `, standing_queue_wait_ms: ${standingMs}`} }\n`;

  it('sheds early with a drain-rate pushback, admits by priority, and keeps engine queues near empty', async (t) => {
    const pods: Pod[] = [];
    for (let i = 0; i < 2; i++)
      pods.push(
        await startPod({
          version: 'v1',
          sim: {
            timeScale: 1,
            maxNumSeqs: MAX_NUM_SEQS,
            interTokenLatencyMs: 10,
            timeToFirstTokenMs: 10,
            serverInfo: true,
          },
        }),
      );
    const h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: routes(PRIORITY_QUEUE_WAIT_MS, PRIORITY_QUEUE_WAIT_MS),
    });
    // The most requests seen waiting in any engine, sampled on every streamed chunk.
    let maxWaiting = 0;
    const sample = () => {
      for (const p of pods) maxWaiting = Math.max(maxWaiting, p.sim.stats.waiting);
    };
    const run = async (prompt: string, maxTokens = 20, priority?: 'PRIORITY_LOW' | 'PRIORITY_HIGH') => {
      const started = performance.now();
      try {
        let firstAt = 0;
        for await (const _c of h.client.generateStream(
          { model: MODEL, prompt, sampling: { maxTokens }, routing: priority ? { priority } : undefined },
          { timeoutMs: 30_000 },
        )) {
          firstAt ||= performance.now();
          sample();
        }
        return { ok: true as const, ttftMs: firstAt - started };
      } catch (err) {
        return { ok: false as const, err: err as MeshError };
      }
    };
    try {
      await h.waitReady(2);
      await h.waitEndpoints(
        (endpoints) => endpoints.every((e) => e.report?.capacity?.maxNumSeqs === MAX_NUM_SEQS),
        'published max_num_seqs',
      );
      const unloaded = await run('unloaded');
      assert.ok(unloaded.ok);

      // Priority: with the pool full and others waiting, a high-priority
      // request is admitted before them all, a low-priority one after them.
      // (Short requests: the queue drains well within its budget.)
      const fillers = Array.from({ length: 12 }, (_, i) => run(`filler ${i}`, 4));
      await waitUntil(
        h.router.admission.events,
        'queued',
        () => h.router.admission.queued >= 2,
        'fillers queued',
      );
      const lowQueued = nextEvent(
        h.router.admission.events,
        'queued',
        (e: { priority: number }) => e.priority === 1,
      );
      const low = run('low', 4, 'PRIORITY_LOW');
      await lowQueued;
      const highQueued = nextEvent(
        h.router.admission.events,
        'queued',
        (e: { priority: number }) => e.priority === 3,
      );
      const high = run('high', 4, 'PRIORITY_HIGH');
      await highQueued;
      const waitingNormal = h.router.admission.queued - 2;
      const admittedOrder: number[] = [];
      const onAdmitted = (e: { priority: number }) => admittedOrder.push(e.priority);
      h.router.admission.events.on('admitted', onAdmitted);
      const phase1 = await Promise.all([...fillers, low, high]);
      h.router.admission.events.off('admitted', onAdmitted);
      assert.ok(
        phase1.every((o) => o.ok),
        `nothing shed while the queue fits the budget: ${phase1.map((o) => (o.ok ? 'ok' : o.err.message)).join('; ')}`,
      );
      assert.deepEqual(admittedOrder, [3, ...Array(waitingNormal).fill(2), 1]);
      const phase1Waiting = maxWaiting;
      maxWaiting = 0;
      const reload = await h.rewrite(routes(MAX_QUEUE_WAIT_MS));
      assert.equal(reload.result, 'applied', 'the tight queue budget is applied');

      // Overload: 32 closed-loop clients (4× what the pods run), 4 requests each.
      const outcomes = (
        await Promise.all(
          Array.from({ length: 32 }, async (_, c) => {
            const mine = [];
            for (let i = 0; i < 4; i++) mine.push(await run(`load ${c}.${i}`));
            return mine;
          }),
        )
      ).flat();
      const ok = outcomes.filter((o) => o.ok);
      const shed = outcomes.flatMap((o) => (o.ok ? [] : [o.err]));
      const early = shed.filter((e) => /expected wait/.test(e.message));
      const ttfts = ok.map((o) => Math.round(o.ttftMs)).sort((a, b) => a - b);
      t.diagnostic(
        `unloaded TTFT ${Math.round(unloaded.ttftMs)} ms; completed ${ok.length}, shed ${shed.length} (${early.length} early); ` +
          `max engine waiting ${phase1Waiting} then ${maxWaiting}; completed TTFT p50 ${ttfts[Math.floor(ttfts.length / 2)]} max ${ttfts.at(-1)} ms; ` +
          `pushbacks ${[...new Set(shed.map((e) => e.retryPushbackMs))].sort((a, b) => (a ?? 0) - (b ?? 0)).join(' ')}`,
      );
      assert.ok(ok.length > 0, 'the pods keep completing requests');
      assert.ok(early.length > 0, 'overload is shed at once, not after the full wait');
      for (const e of shed) {
        assert.equal(e.code, Status.RESOURCE_EXHAUSTED, e.message);
        const pushback = e.retryPushbackMs ?? 0;
        assert.ok(pushback > 0 && pushback <= MAX_QUEUE_WAIT_MS, `pushback ${pushback}`);
      }
      assert.match(early[0]?.message ?? '', new RegExp(`pool "${MODEL}" version "v1" overloaded`));
      assert.match(await h.metric('llm_router_shed_total'), /reason="expected_wait"\} [1-9]/);
      // No request sat in an engine queue: the router holds each pod at its
      // knee plus one (the saturation depth), give or take requests in
      // transit between a finish and the pick that fills its slot; fewer
      // than max_num_seqs waiting means each starts within one generation.
      for (const w of [phase1Waiting, maxWaiting]) assert.ok(w < MAX_NUM_SEQS, `engine waiting reached ${w}`);
      assert.ok(
        shed.every((e) => e.code !== Status.DEADLINE_EXCEEDED),
        'no request ran out of time in a queue',
      );
    } finally {
      await h.close();
      for (const p of pods) await p.close();
    }
  });

  it('engines that do not publish max_num_seqs: the router learns their limit from the queue, drains it, then holds each pod at it', async (t) => {
    const pods: Pod[] = [];
    for (let i = 0; i < 2; i++)
      pods.push(
        await startPod({
          version: 'v1',
          // vLLM outside dev mode: no /server_info, so the sidecar forwards everything.
          sim: { timeScale: 1, maxNumSeqs: MAX_NUM_SEQS, interTokenLatencyMs: 10, timeToFirstTokenMs: 10 },
          probeIntervalMs: 500,
        }),
      );
    // Default saturation depth; a queue budget that a slow machine does not hit before the knee is learned.
    const h = await startRouterHarness({
      endpoints: pods.map((p) => p.sidecar.address),
      yaml: `models: { ${MODEL}: { versions: { v1: { weight: 1 } } } }\nadmission: { max_queue_wait_ms: ${MAX_QUEUE_WAIT_MS}, min_pushback_ms: 20 }\n`,
    });
    const snapshot = () => h.router.endpoints.snapshot().endpoints;
    // While measuring: each admission while the router holds every pod at
    // the limit it learned (not while one probes one past it), and whether
    // it let a request in with every pod at that limit by the router's
    // count; and the most requests waiting in an engine, sampled on every
    // streamed chunk.
    let measuring = false;
    let admissions = 0;
    let admittedAtLimit = 0;
    let maxWaiting = 0;
    h.router.admission.events.on('admitted', () => {
      if (!measuring) return;
      const held = snapshot();
      if (!held.every((e) => e.history?.atLimit === true)) return;
      admissions++;
      if (held.every((e) => e.routerInFlight >= MAX_NUM_SEQS)) admittedAtLimit++;
    });
    let stop = false;
    const outcomes: Array<{ ok: true } | { ok: false; err: MeshError }> = [];
    const client = async (c: number) => {
      for (let i = 0; !stop; i++) {
        try {
          for await (const _c of h.client.generateStream(
            { model: MODEL, prompt: `load ${c}.${i}`, sampling: { maxTokens: 20 } },
            { timeoutMs: 10_000 },
          )) {
            if (measuring) for (const p of pods) maxWaiting = Math.max(maxWaiting, p.sim.stats.waiting);
          }
          if (measuring) outcomes.push({ ok: true });
        } catch (err) {
          const e = err as MeshError;
          if (measuring) outcomes.push({ ok: false, err: e });
          // A shed client comes back when the pushback says.
          if (e.retryPushbackMs) await new Promise((r) => setTimeout(r, e.retryPushbackMs));
        }
      }
    };
    try {
      await h.waitReady(2);
      assert.ok(
        snapshot().every((e) => (e.report?.capacity?.maxNumSeqs ?? 0) === 0),
        'the engines do not publish max_num_seqs',
      );
      // 3× what the pods run, closed loop.
      const clients = Array.from({ length: 6 * MAX_NUM_SEQS }, (_, c) => client(c));
      // The engines queue at their limit; the router learns it from the
      // count that ran, the same at two scrapes, while requests waited...
      await waitUntil(
        h.router.endpoints.events,
        'change',
        () => snapshot().every((e) => e.history?.learnedKnee === MAX_NUM_SEQS && e.history.atLimit),
        'the limit of both pods learned',
      );
      // ...and lets the queue in the engines drain while the overload goes
      // on: no freed slot is refilled while every pod has its limit or more.
      await waitUntil(
        h.router.endpoints.events,
        'change',
        () => snapshot().every((e) => e.routerInFlight <= MAX_NUM_SEQS),
        'the engine queues drained',
      );
      measuring = true;
      await waitUntil(
        h.router.admission.events,
        'admitted',
        () => admissions >= 40,
        '40 requests admitted at held limits',
      );
      measuring = false;
      stop = true;
      await Promise.all(clients);
      const ok = outcomes.filter((o) => o.ok);
      const shed = outcomes.flatMap((o) => (o.ok ? [] : [o.err]));
      t.diagnostic(
        `learned knees ${snapshot().map((e) => e.history?.learnedKnee)}; after the drain: ${ok.length} completed, ${shed.length} shed, ` +
          `${admissions} admitted at held limits (${admittedAtLimit} with every pod at its limit), max engine waiting ${maxWaiting}`,
      );
      assert.ok(ok.length > 0, 'the pods keep completing requests');
      for (const e of shed) {
        assert.equal(e.code, Status.RESOURCE_EXHAUSTED, e.message);
        assert.ok((e.retryPushbackMs ?? 0) > 0, `pushback ${e.retryPushbackMs}`);
      }
      // Held at their limit, the pods are sent a request only while one of
      // them has a free slot, as with a published max_num_seqs. Before, each
      // pod was held one past it, and that request waited in its engine for
      // the pod's next finish.
      assert.ok(admissions > 0, 'requests admitted while the router held the pods at their limit');
      assert.equal(
        admittedAtLimit,
        0,
        `${admittedAtLimit} of ${admissions} admitted with every pod at its limit`,
      );
      // What waits in an engine is what was sent to fill slots freed at the
      // same step, until the next step; never more than a pod runs.
      assert.ok(maxWaiting <= MAX_NUM_SEQS, `engine waiting reached ${maxWaiting}`);
    } finally {
      stop = true;
      await h.close();
      for (const p of pods) await p.close();
    }
  });
});
