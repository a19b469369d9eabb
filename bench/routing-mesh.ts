/**
 * A mesh on a virtual clock: the router's real scheduling profiles (filters,
 * scorers, picker from router/scheduling) picking among simulated vLLM engines
 * (sim/engine.ts with a preset's calibrated step costs, batching limits and
 * KV cache, prefix caching on), all in one process on one discrete-event clock.
 *
 * What the router would see is rebuilt as it would see it: each pod's sidecar
 * scrapes its engine's gauges every 500 ms and reports every 250 ms and on
 * every prefix-index change; the router keeps its own count of streams in
 * flight (exact) and learns from reports (router/scheduling/load.ts). The
 * prefix index is the sidecar's (sidecar/load/prefix-index.ts) mirrored by
 * deltas into the router's copy, as over gRPC. What is left out is the data
 * plane (gRPC, HTTP, sidecar CPU): the `overhead` and `throughput` scenarios
 * measure that. In exchange a minute of simulated traffic at a preset's full
 * scale takes seconds, the same seed gives the same result, and contenders
 * see exactly the same arrivals.
 */
import type { LoadReport__Output } from '../common/generated/llmmesh/v1/LoadReport.js';
import { prefixBlockHashes } from '../common/prefix-hash.js';
import type { ProfileConfig } from '../router/config/schema.js';
import { type LoadHistory, NO_HISTORY, observeReport } from '../router/scheduling/knee.js';
import { addRecent, type RecentAssignments } from '../router/scheduling/load.js';
import { createScheduler } from '../router/scheduling/profile.js';
import { createBuiltinRegistry } from '../router/scheduling/registry.js';
import type { PluginDeps, SchedulingEndpoint, SchedulingRequest } from '../router/scheduling/types.js';
import { createPrefixIndex as createRouterIndex } from '../router/upstream/prefix-index.js';
import {
  createPrefixIndex as createSidecarIndex,
  type PrefixIndexTracker,
  prefixIndexCapacity,
} from '../sidecar/load/prefix-index.js';
import type { CancelTimer, SimClock } from '../sim/clock.js';
import { createStepCostModel } from '../sim/cost-model.js';
import { createEngine, type Engine, type EngineHandle } from '../sim/engine.js';
import { createKvCacheManager, extendBlockHashes, type KvCacheManager } from '../sim/kv-cache.js';
import type { SimPreset } from '../sim/presets.js';
import { createOracle, type OracleRequest } from './routing-oracle.js';

/** One request of a mesh run. */
export interface MeshRequest {
  arrivalMs: number;
  /** The prompt as segments (e.g. a tenant's system prompt, then a question): shared segments are hashed to text once. */
  segments: ReadonlyArray<readonly number[]>;
  outputTokens: number;
  /** Routing session key ('' for none). */
  sessionKey: string;
  /** Output token ids (so a conversation's next turn can hold this turn's answer); default unique. */
  outputTokenIds?: (i: number) => number;
}

/** How one request ended. */
export interface MeshOutcome {
  /** When the router (or the oracle) saw the request, simulated ms. */
  arrivalMs: number;
  /** Time to first token (ms), NaN when none came. */
  ttftMs: number;
  /** Arrival to last token (ms), NaN when unfinished. */
  e2eMs: number;
  /** Pod index, -1 when shed. */
  pod: number;
  status: 'ok' | 'deadline' | 'shed';
  promptTokens: number;
  cachedTokens: number;
}

/** Options of {@link runMesh}. */
export interface MeshOptions {
  pods: number;
  preset: SimPreset;
  /** KV blocks per pod (16 tokens each); default the preset's full cache. */
  numGpuBlocks?: number;
  /** Engine `max_num_seqs`; default the preset's. */
  maxNumSeqs?: number;
  /** Whether sidecars learn and report `max_num_seqs` (vLLM publishes it only in dev mode); default false. */
  publishMaxNumSeqs?: boolean;
  /** The router's scheduling profile, or `'oracle'`: the clairvoyant reference policy (bench/routing-oracle.ts). */
  profile: ProfileConfig | 'oracle';
  random: () => number;
  requests: readonly MeshRequest[];
  /** A request not finished this long after arrival is aborted (DEADLINE_EXCEEDED). */
  timeoutMs: number;
  reportIntervalMs?: number;
  scrapeIntervalMs?: number;
  saturationQueueDepth?: number;
  /** The `prefix_balance` thresholds (default the router's). */
  prefixBalance?: PluginDeps['prefixBalance'];
  /** Called with each decision's duration in µs (wall clock), to check the scheduler's cost. */
  onDecision?: (us: number) => void;
}

/** What a mesh run measured. */
export interface MeshResult {
  outcomes: MeshOutcome[];
  /** Requests each pod took. */
  perPod: number[];
  /** Simulated ms when the last request ended. */
  endMs: number;
}

/** A profile that is never asked (the oracle decides instead). */
const NO_PROFILE: ProfileConfig = { filters: [], scorers: [], picker: 'round-robin' };

/** Characters per token in the text the router hashes (the sidecar index assumes 4). */
const CHARS_PER_TOKEN = 4;

/** Text for token ids: 4 characters per token, so 64-character index blocks are 16-token KV blocks. */
export function tokensToText(ids: readonly number[]): string {
  const parts = new Array<string>(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number;
    parts[i] = String.fromCharCode(
      0x3000 + (id & 0xff),
      0x3000 + ((id >>> 8) & 0xff),
      0x3000 + ((id >>> 16) & 0xff),
      0x3000 + ((id >>> 24) & 0xff),
    );
  }
  return parts.join('');
}

const segmentTexts = new WeakMap<readonly number[], string>();
const segmentText = (ids: readonly number[]) => {
  let t = segmentTexts.get(ids);
  if (t === undefined) {
    t = tokensToText(ids);
    segmentTexts.set(ids, t);
  }
  return t;
};

/** A request's prompt tokens. */
export function promptTokens(r: MeshRequest): number[] {
  return r.segments.length === 1 ? (r.segments[0] as number[]) : ([] as number[]).concat(...r.segments);
}

/** A discrete-event clock with a binary heap (the sim's manual clock scans linearly). */
function createEventClock(): SimClock & { run(until?: number): void } {
  let now = 0;
  let seq = 0;
  type T = { at: number; seq: number; fn: () => void; dead: boolean };
  const heap: T[] = [];
  const less = (a: T, b: T) => a.at < b.at || (a.at === b.at && a.seq < b.seq);
  const push = (t: T) => {
    heap.push(t);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(heap[i] as T, heap[p] as T)) break;
      [heap[i], heap[p]] = [heap[p] as T, heap[i] as T];
      i = p;
    }
  };
  const pop = (): T | undefined => {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l] as T, heap[m] as T)) m = l;
        if (r < heap.length && less(heap[r] as T, heap[m] as T)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m] as T, heap[i] as T];
        i = m;
      }
    }
    return top;
  };
  return {
    now: () => now,
    schedule(delayMs, fn): CancelTimer {
      const t: T = { at: now + Math.max(0, delayMs), seq: seq++, fn, dead: false };
      push(t);
      return () => {
        t.dead = true;
      };
    },
    run(until = Number.POSITIVE_INFINITY) {
      for (let t = pop(); t; t = pop()) {
        if (t.dead) continue;
        if (t.at > until) {
          push(t);
          return;
        }
        now = Math.max(now, t.at);
        t.fn();
      }
    },
  };
}

interface Pod {
  index: number;
  address: string;
  engine: Engine;
  kvCache: KvCacheManager;
  /** Live requests, for the oracle. */
  oracleRequests: Map<string, OracleRequest>;
  sidecarIndex: ReturnType<typeof createSidecarIndex>;
  tracker: PrefixIndexTracker;
  routerIndex: ReturnType<typeof createRouterIndex>;
  sidecarInFlight: number;
  routerInFlight: number;
  routerInFlightAtReport: number;
  scrape: { numRequestsRunning: number; numRequestsWaiting: number; kvCacheUsagePerc: number };
  /** The sidecar's requests at the engine when it was last scraped (the report's `inFlightAtScrape`). */
  inFlightAtScrape: number;
  /** When it was last scraped (virtual clock), for the report's `engineScrapeAgeMs`. */
  scrapedAt: number;
  report: LoadReport__Output | undefined;
  history: LoadHistory;
  recent: RecentAssignments | undefined;
  view: SchedulingEndpoint | undefined;
  reportPending: boolean;
  sequence: number;
  taken: number;
}

/** Runs `options.requests` through the mesh to completion (or their deadline). */
export function runMesh(o: MeshOptions): MeshResult {
  const clock = createEventClock();
  const blockSize = 16;
  const numGpuBlocks = o.numGpuBlocks ?? Math.floor(o.preset.kvCacheTokens / blockSize);
  const maxNumSeqs = o.maxNumSeqs ?? o.preset.maxNumSeqs;
  const reportIntervalMs = o.reportIntervalMs ?? 250;
  const scrapeIntervalMs = o.scrapeIntervalMs ?? 500;
  const oracleMode = o.profile === 'oracle';
  const scheduler = createScheduler(
    'bench',
    oracleMode ? NO_PROFILE : (o.profile as ProfileConfig),
    createBuiltinRegistry(),
    {
      random: o.random,
      saturationQueueDepth: o.saturationQueueDepth ?? 8,
      maxEjectionPercent: 50,
      now: clock.now,
      prefixBalance: o.prefixBalance,
    },
  );
  const costModel = createStepCostModel(o.preset.stepCost);
  const pods: Pod[] = [];
  for (let i = 0; i < o.pods; i++) {
    const sidecarIndex = createSidecarIndex({
      capacity: prefixIndexCapacity(numGpuBlocks, blockSize, CHARS_PER_TOKEN),
    });
    const kvCache = createKvCacheManager({ numBlocks: numGpuBlocks, blockSize, enablePrefixCaching: true });
    const pod: Pod = {
      index: i,
      address: `10.0.0.${i + 1}:50051`,
      kvCache,
      oracleRequests: new Map(),
      engine: createEngine({
        clock,
        kvCache,
        costModel,
        maxNumSeqs,
        maxNumBatchedTokens: o.preset.maxNumBatchedTokens,
        timeScale: 1,
        frontEnd: o.preset.frontEnd,
      }),
      sidecarIndex,
      tracker: sidecarIndex.track(),
      routerIndex: createRouterIndex(),
      sidecarInFlight: 0,
      routerInFlight: 0,
      routerInFlightAtReport: 0,
      scrape: { numRequestsRunning: 0, numRequestsWaiting: 0, kvCacheUsagePerc: 0 },
      inFlightAtScrape: 0,
      scrapedAt: 0,
      report: undefined,
      history: NO_HISTORY,
      recent: undefined,
      view: undefined,
      reportPending: false,
      sequence: 0,
      taken: 0,
    };
    pods.push(pod);
  }

  const oracle = oracleMode
    ? createOracle(
        pods.map((p) => ({
          inspect: () => p.engine.inspect(),
          kvCache: p.kvCache,
          requests: p.oracleRequests,
        })),
        {
          stepCost: o.preset.stepCost,
          frontEndRequestMs: o.preset.frontEnd?.requestMs ?? 0,
          maxNumBatchedTokens: o.preset.maxNumBatchedTokens,
          maxNumSeqs,
        },
        o.random,
      )
    : undefined;

  const publish = (p: Pod) => {
    p.reportPending = false;
    const delta = p.tracker.take();
    if (delta) p.routerIndex.apply(delta);
    const r: LoadReport__Output = {
      model: 'm',
      version: 'v1',
      ready: true,
      draining: false,
      inFlight: p.sidecarInFlight,
      queued: 0,
      engine: { ...p.scrape },
      inFlightAtScrape: p.inFlightAtScrape,
      engineScrapeAgeMs: Math.max(0, clock.now() - p.scrapedAt),
      capacity: {
        maxNumSeqs: o.publishMaxNumSeqs ? maxNumSeqs : 0,
        numGpuBlocks,
        blockSize,
        maxModelLen: 131_072,
      },
      sequence: ++p.sequence,
      reason: '',
      servedModelName: 'm',
      prefixIndex: null,
    };
    p.report = r;
    p.history = observeReport(p.history, r, clock.now());
    p.routerInFlightAtReport = p.routerInFlight;
    p.view = undefined;
  };
  // A prefix-index change is reported at once (next turn of the event loop, ~1 ms on the wire).
  const changed = (p: Pod) => {
    if (p.reportPending) return;
    p.reportPending = true;
    clock.schedule(1, () => publish(p));
  };
  let live = o.requests.length;
  for (const p of pods) {
    const scrapePhase = o.random() * scrapeIntervalMs;
    const reportPhase = o.random() * reportIntervalMs;
    const scrape = () => {
      const s = p.engine.snapshot();
      p.scrape = {
        numRequestsRunning: s.running,
        numRequestsWaiting: s.waiting,
        kvCacheUsagePerc: s.kvCacheUsage,
      };
      p.inFlightAtScrape = p.sidecarInFlight;
      p.scrapedAt = clock.now();
      if (live > 0) clock.schedule(scrapeIntervalMs, scrape);
    };
    const tick = () => {
      publish(p);
      if (live > 0) clock.schedule(reportIntervalMs, tick);
    };
    clock.schedule(scrapePhase, scrape);
    clock.schedule(reportPhase, tick);
    publish(p);
  }

  const view = (p: Pod): SchedulingEndpoint => {
    p.view ??= {
      address: p.address,
      ready: true,
      draining: false,
      routerInFlight: p.routerInFlight,
      routerInFlightAtReport: p.routerInFlightAtReport,
      report: p.report,
      history: p.history,
      recent: p.recent,
      breaker: 'closed',
      failureRatio: 0,
      consecutiveFailures: 0,
      prefixIndex: p.routerIndex,
    };
    return p.view;
  };

  const outcomes: MeshOutcome[] = new Array(o.requests.length);
  const podByAddress = new Map(pods.map((p) => [p.address, p]));
  let seq = 0;
  const start = (i: number) => {
    const spec = o.requests[i] as MeshRequest;
    const promptIds = promptTokens(spec);
    const arrival = clock.now();
    let text: string | undefined;
    const memo = new Map<number, number[]>();
    const sreq: SchedulingRequest = {
      requestId: `r${i}`,
      model: 'm',
      version: 'v1',
      sessionKey: spec.sessionKey,
      exclude: new Set(),
      promptChars: promptIds.length * CHARS_PER_TOKEN,
      prefixHashes(blockChars) {
        let h = memo.get(blockChars);
        if (!h) {
          text ??= spec.segments.map(segmentText).join('');
          h = prefixBlockHashes(text, blockChars);
          memo.set(blockChars, h);
        }
        return h;
      },
    };
    let picked: Pod | undefined;
    let oracleRequest: OracleRequest | undefined;
    const t0 = performance.now();
    if (oracle) {
      const blockHashes: number[] = [];
      extendBlockHashes(blockHashes, promptIds, blockSize);
      oracleRequest = { blockHashes, promptTokens: promptIds.length, maxTokens: spec.outputTokens };
      picked = pods[oracle.pick(oracleRequest)];
    } else {
      const decision = scheduler.schedule(sreq, pods.map(view));
      picked = decision.picked ? podByAddress.get(decision.picked.address) : undefined;
    }
    o.onDecision?.((performance.now() - t0) * 1000);
    if (!picked) {
      outcomes[i] = {
        arrivalMs: arrival,
        ttftMs: Number.NaN,
        e2eMs: Number.NaN,
        pod: -1,
        status: 'shed',
        promptTokens: promptIds.length,
        cachedTokens: 0,
      };
      live--;
      return;
    }
    const p = picked;
    if (oracleRequest) p.oracleRequests.set(sreq.requestId, oracleRequest);
    p.taken++;
    p.routerInFlight++;
    p.recent = addRecent(p.recent, clock.now());
    p.view = undefined;
    p.sidecarInFlight++;
    p.sidecarIndex.record(sreq.prefixHashes(p.sidecarIndex.blockChars));
    changed(p);
    let ttft = Number.NaN;
    let cached = 0;
    let done = false;
    let prefilled = false;
    const prefill = () => {
      if (prefilled) return;
      prefilled = true;
      if (oracle && oracleRequest) oracle.prefilled(oracleRequest, p.index);
    };
    const finish = (status: MeshOutcome['status']) => {
      if (done) return;
      done = true;
      cancelDeadline();
      prefill();
      p.oracleRequests.delete(sreq.requestId);
      p.routerInFlight--;
      p.sidecarInFlight--;
      p.view = undefined;
      live--;
      outcomes[i] = {
        arrivalMs: arrival,
        ttftMs: status === 'ok' ? ttft : Number.NaN,
        e2eMs: status === 'ok' ? clock.now() - arrival : Number.NaN,
        pod: p.index,
        status,
        promptTokens: promptIds.length,
        cachedTokens: cached,
      };
    };
    const outputIds = spec.outputTokenIds ?? ((k: number) => 2_000_000_000 - seq * 4096 - k);
    seq++;
    const handle: EngineHandle = p.engine.submit(
      { id: `r${i}`, promptTokenIds: promptIds, maxTokens: spec.outputTokens, nextToken: outputIds },
      {
        onToken(out) {
          if (out.index === 0) {
            prefill();
            ttft = clock.now() - arrival;
            cached = out.numCachedTokens;
          }
          if (out.finishReason !== null) finish('ok');
        },
      },
    );
    const cancelDeadline = clock.schedule(o.timeoutMs, () => {
      if (done) return;
      handle.abort();
      finish('deadline');
    });
  };

  // Arrivals are scheduled one at a time (the heap stays small).
  let next = 0;
  const arrive = () => {
    const i = next++;
    start(i);
    if (next < o.requests.length) {
      const at = (o.requests[next] as MeshRequest).arrivalMs;
      clock.schedule(at - clock.now(), arrive);
    }
  };
  if (o.requests.length > 0) clock.schedule((o.requests[0] as MeshRequest).arrivalMs, arrive);
  clock.run();
  const endMs = clock.now();
  for (const p of pods) p.engine.shutdown();
  return { outcomes, perPod: pods.map((p) => p.taken), endMs };
}
