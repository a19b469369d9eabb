import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LoadReport__Output } from '../../../../common/generated/llmmesh/v1/LoadReport.js';
import { canonicalPrompt, prefixBlockHashes } from '../../../../common/prefix-hash.js';
import {
  KNEE_CONFIRM_MS,
  KNEE_GROWTH,
  KNEE_MEMORY_MS,
  KNEE_PROBE_MS,
  LIMIT_LOWER_SCRAPES,
  type LoadHistory,
  NO_HISTORY,
  observeReport,
  QUEUEING_MS,
} from '../../../../router/scheduling/knee.js';
import {
  addRecent,
  isSaturated,
  KV_FULL,
  loadOf,
  noteAssignment,
  pastLimit,
  RECENT_TAU_MS,
} from '../../../../router/scheduling/load.js';
import { createBuiltinRegistry } from '../../../../router/scheduling/registry.js';
import { createSchedulingRequest } from '../../../../router/scheduling/request.js';
import type { PluginDeps } from '../../../../router/scheduling/types.js';
import { endpointView, type FakeEndpoint, seeded } from '../../../helpers/endpoint-view.js';

const registry = createBuiltinRegistry();
const deps = (over: Partial<PluginDeps> = {}): PluginDeps => ({
  random: seeded(11),
  saturationQueueDepth: 8,
  maxEjectionPercent: 50,
  now: () => 10_000,
  ...over,
});
const request = (prompt = 'hello') =>
  createSchedulingRequest(
    {
      model: 'm',
      prompt,
      messages: [],
      routing: { version: '', sessionKey: '', priority: 'PRIORITY_UNSPECIFIED' },
    },
    'r',
    'v1',
    new Set(),
  );
const score = (type: string, pool: FakeEndpoint[], prompt?: string, d?: Partial<PluginDeps>) =>
  Array.from(registry.scorer(type, deps(d)).score(request(prompt), pool.map(endpointView)));

// An H100 pod of the llama-3.1-8b preset: max_num_seqs 1024, 26,300 KV blocks.
const h100 = { maxNumSeqs: 1024, numGpuBlocks: 26_300 };

function report(
  over: Partial<LoadReport__Output['engine'] & { queued: number; engineScrapeAgeMs: number }>,
): LoadReport__Output {
  const r = endpointView({
    address: 'x',
    running: over?.numRequestsRunning,
    waiting: over?.numRequestsWaiting,
    kv: over?.kvCacheUsagePerc,
    queued: over?.queued,
  }).report as LoadReport__Output;
  return { ...r, engineScrapeAgeMs: over?.engineScrapeAgeMs ?? 0 };
}

describe('load against the knee', () => {
  it('a pod at 70 % of its knee scores clearly worse than one at 10 %, at a real pod’s capacity', () => {
    // The knee was learned at 40 running requests (the engine queued there),
    // far below max_num_seqs 1024.
    const [at10, at70] = score('least-request', [
      { address: 'a', ...h100, learnedKnee: 40, inFlight: 4, running: 4, kv: 0.02 },
      { address: 'b', ...h100, learnedKnee: 40, inFlight: 28, running: 28, kv: 0.14 },
    ]);
    assert.ok((at10 as number) - (at70 as number) >= 0.35, `10 %: ${at10}, 70 %: ${at70}`);
    assert.ok(Math.abs((at10 as number) - Math.exp(-0.1)) < 1e-9);
  });

  it('one stream moves the load by a share of the knee, not of max_num_seqs', () => {
    const idle = loadOf(endpointView({ address: 'a', ...h100, learnedKnee: 20 }));
    const one = loadOf(endpointView({ address: 'b', ...h100, learnedKnee: 20, routerInFlight: 1 }));
    assert.ok(Math.abs(one.utilization - idle.utilization - 1 / 20) < 1e-9);
  });

  it('past the knee, pods still rank by how far past they are (no clamp to a tie)', () => {
    const [past, farPast] = score('least-request', [
      { address: 'a', ...h100, learnedKnee: 20, inFlight: 30 },
      { address: 'b', ...h100, learnedKnee: 20, inFlight: 60 },
    ]);
    assert.ok((past as number) > (farPast as number) && (farPast as number) > 0);
  });

  it('without a learned knee, the KV cache bounds it at the current sequence size', () => {
    // 10 running sequences hold 60 % of the cache: 15 fit below KV_FULL.
    const l = loadOf(endpointView({ address: 'a', ...h100, running: 10, inFlight: 10, kv: 0.6 }));
    assert.equal(l.knee, (10 * KV_FULL) / 0.6);
    assert.ok(Math.abs(l.utilization - 10 / 15) < 1e-9);
  });

  it('learns the knee where the engine queued, and raises it when more runs without queueing', () => {
    let h = observeReport(NO_HISTORY, report({ numRequestsRunning: 30, numRequestsWaiting: 0 }), 0);
    assert.equal(h.learnedKnee, 0, 'nothing learned before the engine queues');
    h = observeReport(h, report({ numRequestsRunning: 30, numRequestsWaiting: 4 }), 250);
    assert.equal(h.learnedKnee, 0, 'a passing wait teaches nothing');
    h = observeReport(h, report({ numRequestsRunning: 30, numRequestsWaiting: 4 }), 250 + KNEE_CONFIRM_MS);
    assert.equal(h.learnedKnee, 0, 'nor does the same scrape, reported again');
    h = observeReport(
      h,
      report({ numRequestsRunning: 30, numRequestsWaiting: 5, kvCacheUsagePerc: 0.1 }),
      500 + KNEE_CONFIRM_MS,
    );
    assert.equal(h.learnedKnee, 30, 'a wait that a second scrape saw persist, with no more running, does');
    h = observeReport(h, report({ numRequestsRunning: 24, numRequestsWaiting: 2 }), 1_000);
    assert.equal(h.learnedKnee, 30, 'fewer running in the same spell: 30 could run');
    h = observeReport(h, report({ numRequestsRunning: 45, numRequestsWaiting: 0 }), 1_250);
    assert.equal(h.learnedKnee, 45, 'ran more without queueing: the knee was too low');
    h = observeReport(h, report({ numRequestsRunning: 46, numRequestsWaiting: 0 }), 1_500);
    assert.equal(h.learnedKnee, 45 * KNEE_GROWTH, 'one more ran: up by a quarter, not by one');
    assert.equal(h.queueingMs, 0);
    // A later spell that peaks lower moves the knee a third of the way there...
    const before = h.learnedKnee;
    h = observeReport(h, report({ numRequestsRunning: 24, numRequestsWaiting: 2 }), 2_000);
    h = observeReport(h, report({ numRequestsRunning: 24, numRequestsWaiting: 3 }), 2_000 + KNEE_CONFIRM_MS);
    assert.equal(h.learnedKnee, before + (24 - before) / 3);
    // ...one that peaks higher raises it there at once.
    h = observeReport(h, report({ numRequestsRunning: 70, numRequestsWaiting: 0 }), 3_000);
    h = observeReport(h, report({ numRequestsRunning: 80, numRequestsWaiting: 2 }), 3_250);
    h = observeReport(
      h,
      report({ numRequestsRunning: 80, numRequestsWaiting: 3, kvCacheUsagePerc: 0.2 }),
      3_250 + KNEE_CONFIRM_MS,
    );
    assert.equal(h.learnedKnee, 80);
  });

  it('learns nothing from a queue while more and more run: the engine is admitting them', () => {
    // An engine far below its limit, scraped while requests arrive faster than one step admits them.
    let h = NO_HISTORY;
    for (let t = 0, running = 5; t < QUEUEING_MS; t += KNEE_CONFIRM_MS / 2, running += 3)
      h = observeReport(h, report({ numRequestsRunning: running, numRequestsWaiting: 2 }), t);
    assert.equal(h.learnedKnee, 0);
    // ...unless the queue lasts QUEUEING_MS: the most that ran is then what it takes.
    h = observeReport(h, report({ numRequestsRunning: 12, numRequestsWaiting: 2 }), QUEUEING_MS);
    assert.equal(h.learnedKnee, 14);
  });

  it('learns the most that ran while requests waited, not the fewest: a scrape between two steps caught a finish', () => {
    // A concurrency limit of 8: a finished request's slot stays free until the next step.
    let h = observeReport(NO_HISTORY, report({ numRequestsRunning: 7, numRequestsWaiting: 5 }), 0);
    h = observeReport(h, report({ numRequestsRunning: 8, numRequestsWaiting: 9 }), 250);
    h = observeReport(h, report({ numRequestsRunning: 7, numRequestsWaiting: 12 }), 250 + KNEE_CONFIRM_MS);
    assert.equal(h.learnedKnee, 8);
  });

  it('dates the engine gauges by their scrape: one scrape repeated by reports is no lasting queue', () => {
    // One scrape (at t = 0) caught a request between two engine steps; the
    // reports repeat it for 3 s until the next scrape (a slow probe).
    let h = NO_HISTORY;
    for (let t = 0; t <= 3_000; t += 250) {
      h = observeReport(h, report({ numRequestsRunning: 2, numRequestsWaiting: 1, engineScrapeAgeMs: t }), t);
    }
    assert.equal(h.queueingMs, 0, 'a single sample lasts no time');
    assert.equal(h.learnedKnee, 0, 'and teaches no knee');
    const pod = (history: typeof h) =>
      endpointView({
        address: 'a',
        running: 2,
        waiting: 1,
        inFlight: 2,
        learnedKnee: history.learnedKnee,
        queueingMs: history.queueingMs,
      });
    assert.equal(isSaturated(pod(h), 1), false);
    // The next scrape, 3 s after the first, still shows one waiting: the queue lasted.
    h = observeReport(
      h,
      report({ numRequestsRunning: 2, numRequestsWaiting: 1, engineScrapeAgeMs: 0 }),
      3_100,
    );
    assert.equal(h.queueingMs, 3_100);
    assert.equal(h.learnedKnee, 2);
    assert.equal(isSaturated(pod(h), 1), true);
    // The sidecar's own queue is as of the report, whatever the scrape's age.
    let q = observeReport(NO_HISTORY, report({ queued: 1, engineScrapeAgeMs: 400 }), 0);
    q = observeReport(q, report({ queued: 1, engineScrapeAgeMs: 1_400 }), 1_000);
    assert.equal(q.queueingMs, 1_000);
  });

  it('keeps a knee the router holds the engine at: running near the knee with nothing waiting is no quiet', () => {
    let h = observeReport(NO_HISTORY, report({ numRequestsRunning: 8, numRequestsWaiting: 3 }), 0);
    h = observeReport(h, report({ numRequestsRunning: 8, numRequestsWaiting: 3 }), 1_000);
    assert.equal(h.learnedKnee, 8);
    for (let t = 1_250; t <= 1_250 + 3 * KNEE_MEMORY_MS; t += 250)
      h = observeReport(h, report({ numRequestsRunning: 7, numRequestsWaiting: 0 }), t);
    assert.equal(h.learnedKnee, 8, 'held at the knee, it binds');
    const t0 = 1_500 + 3 * KNEE_MEMORY_MS;
    h = observeReport(h, report({ numRequestsRunning: 2, numRequestsWaiting: 0 }), t0);
    h = observeReport(h, report({ numRequestsRunning: 2, numRequestsWaiting: 0 }), t0 + KNEE_MEMORY_MS);
    assert.equal(h.learnedKnee, 0, 'well below it, quiet: forgotten');
  });

  it('forgets a knee no queue has confirmed for KNEE_MEMORY_MS, and learns it again when the engine queues', () => {
    // A burst of cold long prompts: prompts wait for the token budget at 15 running.
    let h = observeReport(NO_HISTORY, report({ numRequestsRunning: 15, numRequestsWaiting: 6 }), 0);
    h = observeReport(h, report({ numRequestsRunning: 15, numRequestsWaiting: 6 }), 1_000);
    assert.equal(h.learnedKnee, 15);
    // The prefixes are cached now: a few run, nothing waits.
    h = observeReport(h, report({ numRequestsRunning: 6, numRequestsWaiting: 0 }), 1_250);
    assert.equal(h.learnedKnee, 15, 'a quiet moment keeps it');
    h = observeReport(
      h,
      report({ numRequestsRunning: 6, numRequestsWaiting: 0 }),
      1_250 + KNEE_MEMORY_MS - 1,
    );
    assert.equal(h.learnedKnee, 15, 'kept until KNEE_MEMORY_MS of quiet');
    h = observeReport(h, report({ numRequestsRunning: 6, numRequestsWaiting: 0 }), 1_250 + KNEE_MEMORY_MS);
    assert.equal(h.learnedKnee, 0, 'forgotten: the default knee applies again');
    assert.equal(loadOf(endpointView({ address: 'a', ...h100, learnedKnee: h.learnedKnee })).knee, 32);
    // A real limit queues again and is learned again.
    const t = 1_250 + KNEE_MEMORY_MS + 250;
    h = observeReport(h, report({ numRequestsRunning: 20, numRequestsWaiting: 3 }), t);
    h = observeReport(h, report({ numRequestsRunning: 20, numRequestsWaiting: 3 }), t + 1_000);
    assert.equal(h.learnedKnee, 20);
    // A wait, however short, restarts the quiet period.
    h = observeReport(h, report({ numRequestsRunning: 20, numRequestsWaiting: 0 }), t + 1_250);
    h = observeReport(
      h,
      report({ numRequestsRunning: 20, numRequestsWaiting: 1 }),
      t + 1_250 + KNEE_MEMORY_MS - 10,
    );
    h = observeReport(
      h,
      report({ numRequestsRunning: 20, numRequestsWaiting: 0 }),
      t + 1_250 + KNEE_MEMORY_MS,
    );
    assert.equal(h.learnedKnee, 20);
  });

  it('a queue that plateaus is the engine’s limit: the router holds the pod at it, not one past it', () => {
    // max_num_seqs 8, not published: two scrapes 500 ms apart show 8 running and requests waiting.
    let h = observeReport(NO_HISTORY, report({ numRequestsRunning: 8, numRequestsWaiting: 3 }), 0);
    h = observeReport(
      h,
      report({ numRequestsRunning: 8, numRequestsWaiting: 9, kvCacheUsagePerc: 0.1 }),
      250,
    );
    assert.equal(h.atLimit, false, 'one scrape may be a moment between two steps');
    h = observeReport(
      h,
      report({ numRequestsRunning: 8, numRequestsWaiting: 5, kvCacheUsagePerc: 0.2 }),
      KNEE_CONFIRM_MS,
    );
    assert.equal(h.learnedKnee, 8);
    assert.equal(h.limit, 8);
    assert.equal(h.atLimit, true);
    // As with a published max_num_seqs: the 9th request would wait in the engine for a finish.
    const pod = (history: LoadHistory, routerInFlight: number) => ({
      ...endpointView({ address: 'a', maxNumSeqs: 0, routerInFlight }),
      history,
    });
    assert.equal(pastLimit(pod(h, 8), 0), true);
    assert.equal(pastLimit(pod(h, 7), 0), false);
    assert.equal(isSaturated(pod(h, 8), 0), true);
    assert.equal(isSaturated(pod(h, 7), 0), false);
    // Held there, nothing waits; the limit holds for KNEE_PROBE_MS.
    let t = KNEE_CONFIRM_MS;
    for (let kv = 0.3; t + 250 < KNEE_CONFIRM_MS + KNEE_PROBE_MS; kv += 0.001) {
      t += 250;
      h = observeReport(h, report({ numRequestsRunning: 8, numRequestsWaiting: 0, kvCacheUsagePerc: kv }), t);
      assert.equal(h.atLimit, true, `held at ${t}`);
    }
    h = observeReport(
      h,
      report({ numRequestsRunning: 8, numRequestsWaiting: 0, kvCacheUsagePerc: 0.5 }),
      KNEE_CONFIRM_MS + KNEE_PROBE_MS,
    );
    assert.equal(h.atLimit, false, 'then one more may probe for headroom');
    assert.equal(pastLimit(pod(h, 8), 0), false);
    assert.equal(pastLimit(pod(h, 9), 0), true);
    assert.equal(h.learnedKnee, 8, 'the knee itself is kept');
    // The probe waits: one scrape that shows the limit again holds it again.
    const probed = observeReport(
      h,
      report({ numRequestsRunning: 8, numRequestsWaiting: 1, kvCacheUsagePerc: 0.6 }),
      KNEE_CONFIRM_MS + KNEE_PROBE_MS + 250,
    );
    assert.equal(probed.atLimit, true);
    assert.equal(pastLimit(pod(probed, 8), 0), true);
    // Or the probe runs: the pod has headroom, the knee rises and is no limit until a queue plateaus again.
    let grown = observeReport(
      h,
      report({ numRequestsRunning: 9, numRequestsWaiting: 0, kvCacheUsagePerc: 0.6 }),
      KNEE_CONFIRM_MS + KNEE_PROBE_MS + 250,
    );
    assert.equal(grown.learnedKnee, 8 * KNEE_GROWTH);
    assert.equal(grown.atLimit, false);
    assert.equal(pastLimit(pod(grown, 10), 0), false);
    assert.equal(pastLimit(pod(grown, 11), 0), true);
    // A limit of 9: the engine queues at 9 with 11 sent, which shows the limit.
    const t1 = KNEE_CONFIRM_MS + KNEE_PROBE_MS + 500;
    grown = observeReport(
      grown,
      report({ numRequestsRunning: 9, numRequestsWaiting: 2, kvCacheUsagePerc: 0.7 }),
      t1,
    );
    grown = observeReport(
      grown,
      report({ numRequestsRunning: 9, numRequestsWaiting: 1, kvCacheUsagePerc: 0.8 }),
      t1 + KNEE_CONFIRM_MS,
    );
    assert.equal(
      grown.learnedKnee,
      8 * KNEE_GROWTH + (9 - 8 * KNEE_GROWTH) / 3,
      'the knee moves a third of the way',
    );
    assert.equal(grown.limit, 9, 'the limit is what ran');
    assert.equal(grown.atLimit, true);
    assert.equal(pastLimit(pod(grown, 9), 0), true);
    assert.equal(pastLimit(pod(grown, 8), 0), false);
  });

  it('held at its limit, a replacement caught waiting for the next step does not lower the limit; a limit that fell does', () => {
    // Limit 8 learned from a plateau.
    let h = observeReport(NO_HISTORY, report({ numRequestsRunning: 8, numRequestsWaiting: 3 }), 0);
    h = observeReport(
      h,
      report({ numRequestsRunning: 8, numRequestsWaiting: 2, kvCacheUsagePerc: 0.1 }),
      500,
    );
    assert.equal(h.limit, 8);
    // Held at 8, nothing waits.
    h = observeReport(
      h,
      report({ numRequestsRunning: 8, numRequestsWaiting: 0, kvCacheUsagePerc: 0.15 }),
      750,
    );
    assert.equal(h.queueingSince, -1);
    // The router holds the pod at 8: a request finishes, its replacement waits one step, and two
    // scrapes in a row happen to catch that moment (7 running, 1 waiting).
    const caught = (from: LoadHistory, t0: number, scrapes: number) => {
      let x = from;
      for (let k = 0; k < scrapes; k++)
        x = observeReport(
          x,
          report({ numRequestsRunning: 7, numRequestsWaiting: 1, kvCacheUsagePerc: 0.2 + k / 100 }),
          t0 + k * KNEE_CONFIRM_MS,
        );
      return x;
    };
    const twice = caught(h, 1_000, 2);
    assert.equal(twice.limit, 8, 'two chance catches keep the limit');
    assert.equal(twice.learnedKnee, 8);
    assert.equal(twice.atLimit, true);
    // The next scrape shows the slot refilled: the spell ends, nothing learned.
    const refilled = observeReport(twice, report({ numRequestsRunning: 8, numRequestsWaiting: 0 }), 2_000);
    assert.equal(refilled.limit, 8);
    assert.equal(refilled.learnedKnee, 8);
    // A limit that really fell (7 run while requests wait) shows at every scrape and is learned.
    const fell = caught(h, 1_000, LIMIT_LOWER_SCRAPES);
    assert.equal(fell.limit, 7);
    assert.equal(fell.atLimit, true);
  });

  it('a queue at a count that moves (a token budget, not a limit) teaches a knee with room for one more past it', () => {
    // Cold long prompts wait for the token budget while the running count moves.
    let h = observeReport(NO_HISTORY, report({ numRequestsRunning: 15, numRequestsWaiting: 6 }), 0);
    h = observeReport(h, report({ numRequestsRunning: 12, numRequestsWaiting: 6 }), KNEE_CONFIRM_MS);
    h = observeReport(h, report({ numRequestsRunning: 13, numRequestsWaiting: 5 }), 2 * KNEE_CONFIRM_MS);
    assert.equal(h.learnedKnee, 15);
    assert.equal(h.atLimit, false);
    const pod = (routerInFlight: number) => ({
      ...endpointView({ address: 'a', maxNumSeqs: 0, routerInFlight }),
      history: h,
    });
    assert.equal(pastLimit(pod(15), 0), false, 'one more shows whether the pod runs more');
    assert.equal(pastLimit(pod(16), 0), true);
    // A knee far above a plateau moves down a third of the way, and is no limit yet.
    let far = observeReport(NO_HISTORY, report({ numRequestsRunning: 30, numRequestsWaiting: 2 }), 0);
    far = observeReport(far, report({ numRequestsRunning: 30, numRequestsWaiting: 3 }), KNEE_CONFIRM_MS);
    assert.equal(far.atLimit, true);
    far = observeReport(far, report({ numRequestsRunning: 12, numRequestsWaiting: 0 }), 2 * KNEE_CONFIRM_MS);
    far = observeReport(far, report({ numRequestsRunning: 21, numRequestsWaiting: 1 }), 3 * KNEE_CONFIRM_MS);
    far = observeReport(far, report({ numRequestsRunning: 21, numRequestsWaiting: 2 }), 4 * KNEE_CONFIRM_MS);
    // Below a held limit, a plateau teaches once it is seen at LIMIT_LOWER_SCRAPES scrapes in a row.
    assert.equal(far.learnedKnee, 30);
    far = observeReport(far, report({ numRequestsRunning: 21, numRequestsWaiting: 1 }), 5 * KNEE_CONFIRM_MS);
    assert.equal(LIMIT_LOWER_SCRAPES, 3);
    assert.equal(far.learnedKnee, 27);
    assert.equal(far.atLimit, false);
  });

  it('counts this router’s streams and prompts since the last report', () => {
    const base: FakeEndpoint = { address: 'a', ...h100, learnedKnee: 40, inFlight: 10, routerInFlight: 10 };
    const before = loadOf(endpointView(base));
    const after = endpointView({ ...base, routerInFlight: 14, routerInFlightAtReport: 10 });
    assert.equal(loadOf(after).outstanding, before.outstanding + 4);
    // 4,000-token prompts (16,000 characters) sent since the report take KV blocks the report cannot show.
    const kv0 = loadOf(after).kvUsage;
    for (let i = 0; i < 4; i++) noteAssignment(after, 16_000);
    assert.ok(Math.abs(loadOf(after).kvUsage - kv0 - 16_000 / (26_300 * 16)) < 1e-9);
  });

  it('counts only the prompts since the report that can still be running', () => {
    // 40 quick requests sent and finished since the last report; 2 streams still open.
    const e = endpointView({
      address: 'a',
      ...h100,
      numGpuBlocks: 1_000,
      routerInFlight: 2,
      routerInFlightAtReport: 0,
    });
    for (let i = 0; i < 40; i++) noteAssignment(e, 800);
    const l = loadOf(e);
    // Two 200-token prompts at most hold KV blocks, not forty.
    assert.ok(Math.abs(l.kvUsage - 400 / 16_000) < 1e-9, `kv ${l.kvUsage}`);
    assert.ok(l.utilization < 0.1, `utilization ${l.utilization}`);
  });

  it('scorers given the same candidate list again see what was assigned in between', () => {
    const pool = [
      // `a`'s stream for the request assigned below is open (the router counts it as it sends).
      endpointView({ address: 'a', ...h100, inFlight: 2, routerInFlight: 1 }),
      endpointView({ address: 'b', ...h100, inFlight: 2 }),
    ];
    const kv = registry.scorer('kv-cache', deps());
    assert.deepEqual(Array.from(kv.score(request(), pool)), [1, 1]);
    // 300,000-token prompts: past KV_COMFORTABLE on a cache of 420,800 tokens.
    noteAssignment(pool[0] as (typeof pool)[number], 1_200_000);
    const after = Array.from(kv.score(request(), pool));
    assert.ok((after[0] as number) < 1 && after[1] === 1, `scores ${after}`);
  });

  it('a request just sent weighs more for a moment, so equal pods take turns', () => {
    const now = 10_000;
    const pool: FakeEndpoint[] = [
      // The request a just took is still open there (this router's stream).
      {
        address: 'a',
        ...h100,
        learnedKnee: 40,
        inFlight: 5,
        routerInFlight: 1,
        recent: addRecent(undefined, now - 5),
      },
      { address: 'b', ...h100, learnedKnee: 40, inFlight: 5 },
      {
        address: 'c',
        ...h100,
        learnedKnee: 40,
        inFlight: 5,
        recent: addRecent(undefined, now - 10 * RECENT_TAU_MS),
      },
    ];
    const [a, b, c] = score('least-request', pool);
    assert.ok((a as number) < (b as number), 'just sent loses');
    assert.ok((b as number) - (c as number) < 1e-4, 'long ago no longer counts');
  });

  it('a just-sent request that already finished weighs nothing: a pod serving a quick run of short requests is not busy', () => {
    const now = 10_000;
    let quick: ReturnType<typeof addRecent> | undefined;
    for (let i = 0; i < 20; i++) quick = addRecent(quick, now - 20 + i); // 20 sent and finished in the last 20 ms
    const pool: FakeEndpoint[] = [
      { address: 'a', ...h100, learnedKnee: 32, routerInFlight: 0, recent: quick },
      { address: 'b', ...h100, learnedKnee: 32, routerInFlight: 0 },
      { address: 'c', ...h100, learnedKnee: 32, routerInFlight: 2, recent: quick },
    ];
    const [a, b, c] = score('least-request', pool);
    assert.ok(Math.abs((a as number) - (b as number)) < 1e-9, `finished requests do not count: ${a} vs ${b}`);
    // Open ones do, each at the just-sent weight: (2 + 4 × 2) / 32.
    assert.ok(Math.abs((c as number) - Math.exp(-10 / 32)) < 1e-3, `two open requests just sent: ${c}`);
  });

  it('a scrape that caught the sidecar’s own requests, all finished since, is no load; traffic bypassing the sidecar is', () => {
    // The engine was scraped while 3 of the sidecar's requests ran there; the
    // sidecar has none in flight now (they failed fast, or finished). With a
    // small learned knee the stale scrape alone would rank the idle pod as
    // overloaded and starve it until the next scrape.
    const idle = loadOf(
      endpointView({ address: 'a', ...h100, learnedKnee: 1, running: 3, inFlight: 0, inFlightAtScrape: 3 }),
    );
    assert.equal(idle.outstanding, 0);
    assert.equal(idle.utilization, 0);
    // One of the 3 was not the sidecar's: a client calling the engine directly.
    const bypassed = loadOf(
      endpointView({ address: 'b', ...h100, learnedKnee: 1, running: 3, inFlight: 0, inFlightAtScrape: 2 }),
    );
    assert.equal(bypassed.outstanding, 1);
    // The sidecar's count, when it has requests, is exact and decides.
    const busy = loadOf(
      endpointView({ address: 'c', ...h100, learnedKnee: 4, running: 3, inFlight: 2, inFlightAtScrape: 3 }),
    );
    assert.equal(busy.outstanding, 2);
  });

  it('saturation: a lasting engine queue, a full KV cache, or streams past max_num_seqs; not one passing wait', () => {
    const sat = (f: Omit<FakeEndpoint, 'address'>) =>
      isSaturated(endpointView({ address: 'a', ...h100, ...f }), 8);
    assert.equal(sat({ running: 20, waiting: 3 }), false, 'a scrape between two steps');
    assert.equal(sat({ running: 20, waiting: 3, queueingMs: 1_200 }), true);
    assert.equal(sat({ running: 20, inFlight: 20, kv: 0.95 }), true);
    // Past a hard limit (max_num_seqs published) requests queue for sure...
    assert.equal(sat({ maxNumSeqs: 16, routerInFlight: 24 }), true);
    assert.equal(sat({ maxNumSeqs: 16, routerInFlight: 20 }), false);
    // ...past a learned knee they only rank the pod lower here (the knee moves with the workload).
    assert.equal(sat({ learnedKnee: 16, routerInFlight: 24 }), false);
    // A knee learned below max_num_seqs (prompts caught waiting a step) does not make the limit a guess.
    assert.equal(sat({ maxNumSeqs: 16, learnedKnee: 14, routerInFlight: 24 }), true);
    // Depth 0: at the limit is saturated; any sidecar queue is.
    const sat0 = (f: Omit<FakeEndpoint, 'address'>) =>
      isSaturated(endpointView({ address: 'a', ...h100, ...f }), 0);
    assert.equal(sat0({ maxNumSeqs: 16, routerInFlight: 16 }), true);
    assert.equal(sat0({ maxNumSeqs: 16, routerInFlight: 15 }), false);
    assert.equal(sat0({ maxNumSeqs: 0, inFlight: 3, queued: 1 }), true);
    assert.equal(sat0({ maxNumSeqs: 0, inFlight: 3 }), false);
  });

  it('past its limit: the published max_num_seqs, else a learned knee by at least one; nothing while neither is known', () => {
    const past = (f: Omit<FakeEndpoint, 'address'>, depth: number) =>
      pastLimit(endpointView({ address: 'a', ...f }), depth);
    assert.equal(past({ maxNumSeqs: 8, routerInFlight: 8 }, 0), true);
    assert.equal(past({ maxNumSeqs: 8, routerInFlight: 7 }, 0), false);
    assert.equal(past({ maxNumSeqs: 8, routerInFlight: 8 }, 1), false);
    assert.equal(past({ maxNumSeqs: 8, routerInFlight: 9 }, 1), true);
    // Not published: a learned knee the engine has not shown to be its limit, with room for one more to show a higher one.
    assert.equal(past({ maxNumSeqs: 0, learnedKnee: 8, routerInFlight: 8 }, 0), false);
    assert.equal(past({ maxNumSeqs: 0, learnedKnee: 8, routerInFlight: 9 }, 0), true);
    assert.equal(past({ maxNumSeqs: 0, learnedKnee: 8, routerInFlight: 10 }, 2), true);
    assert.equal(past({ maxNumSeqs: 0, learnedKnee: 8, routerInFlight: 9 }, 2), false);
    // Nothing learned: the default knee is a guess, never a limit.
    assert.equal(past({ maxNumSeqs: 0, routerInFlight: 500 }, 0), false);
  });
});

describe('hot prefixes spread', () => {
  const system = 'You are the support assistant of a large retailer. '.repeat(20);
  const prompt = `${system}Where is my parcel?`;
  const hashes = prefixBlockHashes(canonicalPrompt({ prompt, messages: [] }));
  const pod = (address: string, inFlight: number, cached: boolean): FakeEndpoint => ({
    address,
    ...h100,
    learnedKnee: 20,
    inFlight,
    ...(cached ? { prefix: hashes } : {}),
  });

  it('a cold prefix goes where its cache is', () => {
    const s = score('prefix-cache', [pod('holder', 4, true), pod('idle', 0, false)], prompt);
    assert.deepEqual(s, [1, 0]);
  });

  it('the cache of a markedly busier pod stops counting: the prefix gets a second pod', () => {
    const s = score('prefix-cache', [pod('holder', 14, true), pod('idle', 2, false)], prompt);
    assert.deepEqual(s, [0, 0]);
  });

  it('a second replica that is not busy keeps it, the overloaded first does not', () => {
    const s = score(
      'prefix-cache',
      [pod('first', 16, true), pod('second', 3, true), pod('idle', 1, false)],
      prompt,
    );
    assert.deepEqual(s, [0, 1, 0]);
  });

  it('a pod whose knee was learned in a cold burst gets its prefixes back once it has run quiet', () => {
    // The holder queued at 15 running while it prefilled cold prompts; now 7 run, nothing waits.
    let h = observeReport(NO_HISTORY, report({ numRequestsRunning: 15, numRequestsWaiting: 6 }), 0);
    h = observeReport(h, report({ numRequestsRunning: 15, numRequestsWaiting: 6 }), 1_000);
    const holder = (history: typeof h) => ({ ...pod('holder', 7, true), learnedKnee: history.learnedKnee });
    const idle = { ...pod('idle', 2, false), learnedKnee: 0 };
    assert.deepEqual(
      score('prefix-cache', [holder(h), idle], prompt),
      [0, 0],
      'against a knee of 15 it looks busy',
    );
    h = observeReport(h, report({ numRequestsRunning: 7, numRequestsWaiting: 0 }), 1_250);
    h = observeReport(h, report({ numRequestsRunning: 7, numRequestsWaiting: 0 }), 1_250 + KNEE_MEMORY_MS);
    assert.deepEqual(score('prefix-cache', [holder(h), idle], prompt), [1, 0]);
  });

  it('on small pods a request or two more is noise, not a hot prefix: the prefix stays until the holder is more than 2 requests busier', () => {
    const small = (address: string, inFlight: number, cached: boolean): FakeEndpoint => ({
      ...pod(address, inFlight, cached),
      learnedKnee: 0,
      maxNumSeqs: 4,
    });
    // 2 of 4 against an idle pod: half a knee apart, but no wait to save a prefill for.
    assert.deepEqual(
      score('prefix-cache', [small('holder', 2, true), small('idle', 0, false)], prompt),
      [1, 0],
    );
    assert.deepEqual(
      score('prefix-cache', [small('holder', 3, true), small('idle', 0, false)], prompt),
      [0, 0],
    );
    assert.deepEqual(
      score('prefix-cache', [small('holder', 2, true), small('idle', 0, false)], prompt, {
        prefixBalance: { absThreshold: 0.3, relThreshold: 2, minRequests: 1 },
      }),
      [0, 0],
      'the floor comes from the deps',
    );
  });

  it('thresholds come from the deps', () => {
    const s = score('prefix-cache', [pod('holder', 14, true), pod('idle', 2, false)], prompt, {
      prefixBalance: { absThreshold: 0.9, relThreshold: 1.5 },
    });
    assert.deepEqual(s, [1, 0]);
  });
});

describe('a long prefix moves only when the wait it saves outweighs its prefill', () => {
  // A tenant's 4,000-token system prompt (16,000 characters: 250 blocks of 64).
  const system = 'You answer questions about the travel policy of our company. '.repeat(263).slice(0, 16_000);
  const prompt = `${system}Can I book business class to Tokyo?`;
  const hashes = prefixBlockHashes(canonicalPrompt({ prompt, messages: [] }));
  const pod = (address: string, inFlight: number, cached: boolean, learnedKnee = 0): FakeEndpoint => ({
    address,
    ...h100,
    learnedKnee,
    inFlight,
    ...(cached ? { prefix: hashes } : {}),
  });

  it('busy pods keep their tenants: 90 requests more do not pay for prefilling 4,000 tokens among 60 requests', () => {
    // 150 against 60 in flight: past the knee-unit thresholds (4.7 vs 1.9 knees of 32), yet the move
    // would cost 4 requests' worth of prefill for itself and for half of each of the 60 there.
    assert.equal(hashes.length, 250);
    assert.deepEqual(
      score('prefix-cache', [pod('holder', 150, true), pod('other', 60, false)], prompt),
      [1, 0],
    );
    assert.deepEqual(
      score('prefix-cache', [pod('holder', 150, true), pod('other', 60, false)], prompt, {
        prefixBalance: { absThreshold: 0.3, relThreshold: 2, minRequests: 2, prefillTokensPerRequest: 0 },
      }),
      [0, 0],
      'with moves counted free (prefill_tokens_per_request 0), the knee thresholds alone decide',
    );
  });

  it('near an idle pod the same prefix moves once its pod is more than 4 requests ahead', () => {
    assert.deepEqual(
      score('prefix-cache', [pod('holder', 4, true, 10), pod('idle', 0, false, 10)], prompt),
      [1, 0],
    );
    assert.deepEqual(
      score('prefix-cache', [pod('holder', 5, true, 10), pod('idle', 0, false, 10)], prompt),
      [0, 0],
    );
  });

  it('a short prefix is cheap to move and spreads at the loads where a long one stays', () => {
    const short = `${'Be brief. '.repeat(40)}Can I book business class to Tokyo?`; // 100 tokens
    const shortHashes = prefixBlockHashes(canonicalPrompt({ prompt: short, messages: [] }));
    const s = score(
      'prefix-cache',
      [{ ...pod('holder', 150, false), prefix: shortHashes }, pod('other', 60, false)],
      short,
    );
    assert.deepEqual(s, [0, 0]);
  });

  it('the cost of a move comes from the deps', () => {
    assert.deepEqual(
      score('prefix-cache', [pod('holder', 150, true), pod('other', 60, false)], prompt, {
        prefixBalance: {
          absThreshold: 0.3,
          relThreshold: 2,
          minRequests: 2,
          prefillTokensPerRequest: 16_000,
        },
      }),
      [0, 0],
    );
  });
});
