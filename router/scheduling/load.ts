/**
 * Load arithmetic shared by scorers, filters and admission, in units that
 * matter: how far an endpoint is from its *knee*, the concurrency at which its
 * engine starts to queue and latency starts to grow.
 *
 * The knee is not `max_num_seqs` (vLLM's default is 256, presets run 1024, and
 * an engine with long prompts queues far earlier, on its token budget or KV
 * cache). It is learned from what the engine reports: the most requests it
 * ran while others waited, once they kept waiting with no more running,
 * bounded by what its KV cache can hold at the current mean sequence size,
 * and by `max_num_seqs` when the engine publishes it. Until the engine has
 * queued once, the bound is all there is. knee.ts learns it from the reports.
 *
 * Reports lag (a sidecar scrapes its engine every 500 ms and reports every
 * 250 ms). The router's own assignments do not: streams it opened since the
 * last report, and their prompt tokens, are added to every signal, so a burst
 * between two reports does not all see the same "best" endpoint.
 */
import { QUEUEING_MS } from './knee.js';
import type { SchedulingEndpoint } from './types.js';

/** KV cache usage at which an engine starts preempting or refusing new sequences. */
export const KV_FULL = 0.9;

/** Knee assumed for an endpoint whose engine has never queued for long (within its KV and max_num_seqs bounds). */
export const DEFAULT_KNEE = 32;

/**
 * Time constant (ms) of the recent-assignment count: a request just sent is
 * most likely still in its engine's front end or prefill, where the next one
 * would wait behind it, so it weighs more for about this long.
 */
export const RECENT_TAU_MS = 100;

/**
 * How many running requests one just-sent request weighs: a prompt in
 * prefill costs the engine's next steps far more than a sequence decoding.
 */
export const RECENT_WEIGHT = 4;

/** Characters per prompt token, to turn prompt text into KV cache tokens (as the sidecar's prefix index does). */
const CHARS_PER_TOKEN = 4;

/** An endpoint's load now, projected from its last report and this router's assignments since. */
export interface LoadEstimate {
  /** Requests at the endpoint: running, waiting in the engine or sidecar, and this router's newer ones. */
  readonly outstanding: number;
  /** Requests beyond what runs: reported waiting, or what the projection puts past the knee. */
  readonly queue: number;
  /** KV cache usage (0..1+) with the prompts this router sent since the report and may still run there. */
  readonly kvUsage: number;
  /** Concurrency at which the endpoint starts to queue. */
  readonly knee: number;
  /**
   * The engine's published `max_num_seqs` (0 when it does not publish it): a
   * hard limit, past which requests queue for sure, whatever knee ranks the
   * endpoint (a knee learned below it, from prompts that waited a step,
   * does not make the limit a guess).
   */
  readonly hardLimit: number;
  /** Load relative to the knee: max(outstanding / knee, kvUsage / KV_FULL); ≥ 1 once it queues. */
  readonly utilization: number;
  /** e^−utilization: the `least-request` score while nothing was sent to the endpoint lately. */
  readonly expNegUtilization: number;
}

/** Prompt characters this router sent to an endpoint since its report. */
interface Assigned {
  chars: number;
  /** Requests those characters came from. */
  count: number;
}

/** What was assigned since each report (keyed by the report object, shared by every view of it). */
const assignedChars = new WeakMap<object, Assigned>();

function assignedOf(r: object): Assigned {
  let a = assignedChars.get(r);
  if (!a) {
    a = { chars: 0, count: 0 };
    assignedChars.set(r, a);
  }
  return a;
}

/**
 * Counts a request just sent to `e` (its prompt, in characters) until the
 * endpoint's next report, which includes it. Keyed by the report object, so a
 * new report starts from nothing.
 */
export function noteAssignment(e: SchedulingEndpoint, promptChars: number): void {
  const r = e.report;
  if (!r) return;
  const a = assignedOf(r);
  a.chars += promptChars;
  a.count++;
  assignments++;
}

/** Assignments noted so far: estimates computed since the last one still hold. */
let assignments = 0;

/** Prompt characters assigned to `e` since its report. */
export function assignedSinceReport(e: SchedulingEndpoint): number {
  return e.report ? (assignedChars.get(e.report)?.chars ?? 0) : 0;
}

/** An endpoint's estimate, what is assigned since its report, and how much of it the estimate counts. */
interface Memo {
  readonly assigned: Assigned | undefined;
  chars: number;
  est: LoadEstimate;
}

const estimates = new WeakMap<SchedulingEndpoint, Memo>();

/** Requests this router sent to `e` lately, each weighted exp(−age / {@link RECENT_TAU_MS}), at `now`. */
export function recentAssignments(e: SchedulingEndpoint, now: number): number {
  const r = e.recent;
  if (!r || r.count === 0) return 0;
  return r.count * Math.exp(-Math.max(0, now - r.at) / RECENT_TAU_MS);
}

/**
 * The recent assignments that can still be in the engine's front end or
 * prefill: no more than this router has open there. A request that already
 * finished is not in prefill, and counting it would make a pod that serves a
 * quick run of short requests look busy while it idles.
 */
function openRecent(e: SchedulingEndpoint, now: number): number {
  return Math.min(recentAssignments(e, now), e.routerInFlight);
}

/** Adds one assignment at `now` to a recent-assignment record. */
export function addRecent(r: RecentAssignments | undefined, now: number): RecentAssignments {
  const count = r ? r.count * Math.exp(-Math.max(0, now - r.at) / RECENT_TAU_MS) : 0;
  return { count: count + 1, at: now };
}

/** A decaying count of recent assignments: `count` as of time `at`. */
export interface RecentAssignments {
  readonly count: number;
  readonly at: number;
}

/**
 * The endpoint's utilization at `now` as {@link loadOf} estimates it, with requests
 * sent in the last moments weighing {@link RECENT_WEIGHT} more (see {@link RECENT_TAU_MS}): between
 * endpoints otherwise alike, the one that has just taken a request is the
 * worse choice, which spaces arrivals out the way round robin does.
 */
export function utilizationAt(e: SchedulingEndpoint, now: number): number {
  return utilizationWith(e, loadOf(e), now);
}

/** {@link utilizationAt} given the endpoint's {@link loadOf} estimate `l`. */
function utilizationWith(e: SchedulingEndpoint, l: LoadEstimate, now: number): number {
  const recent = openRecent(e, now);
  if (recent < 1e-3) return l.utilization;
  return Math.max(l.utilization, (l.outstanding + RECENT_WEIGHT * recent) / l.knee);
}

/** e^−{@link utilizationAt}, the `least-request` score, given the endpoint's {@link loadOf} estimate `l`. */
export function expNegUtilizationAt(e: SchedulingEndpoint, l: LoadEstimate, now: number): number {
  const recent = openRecent(e, now);
  if (recent < 1e-3) return l.expNegUtilization;
  return Math.exp(-Math.max(l.utilization, (l.outstanding + RECENT_WEIGHT * recent) / l.knee));
}

/**
 * The endpoint's load estimate. Memoized per view until something is next
 * assigned to it (views are immutable; assignments change the estimate).
 */
export function loadOf(e: SchedulingEndpoint): LoadEstimate {
  const cached = estimates.get(e);
  if (cached && (cached.assigned?.chars ?? 0) === cached.chars) return cached.est;
  const r = e.report;
  const assigned = cached ? cached.assigned : r ? assignedOf(r) : undefined;
  const chars = assigned?.chars ?? 0;
  const engine = r?.engine;
  const running = engine?.numRequestsRunning ?? 0;
  const engineWaiting = engine?.numRequestsWaiting ?? 0;
  const queued = r?.queued ?? 0;
  const sinceReport = e.routerInFlight - (e.routerInFlightAtReport ?? e.routerInFlight);
  // The sidecar's count is exact when it reports; the engine's gauges are a
  // scrape up to a probe interval older, so they count only when the sidecar
  // has none, and only beyond the sidecar's own requests at the scrape
  // (traffic that bypasses it). Those have finished since, as the sidecar's
  // count says: a pod whose requests fail fast, or that just served a burst,
  // is not busy for a probe interval on a scrape that caught them.
  const sidecar = (r?.inFlight ?? 0) + queued;
  const bypass = Math.max(0, running + engineWaiting - (r?.inFlightAtScrape ?? 0));
  const reported = sidecar > 0 ? sidecar : bypass;
  const outstanding = Math.max(0, reported + sinceReport, e.routerInFlight);

  const blocks = r?.capacity?.numGpuBlocks ?? 0;
  const blockSize = r?.capacity?.blockSize ?? 0;
  const kvTokens = blocks * blockSize;
  const kvReported = engine?.kvCacheUsagePerc ?? 0;
  // The scrape is older than the counts: scale its usage by the requests
  // running now over those running then (same mean size), then add the
  // prompts sent since the report.
  const kvScaled = running > 0 ? (kvReported * Math.min(outstanding, running * 4)) / running : kvReported;
  // Only prompts still running hold KV blocks: of those sent since the
  // report, at most as many as this router has open there now (short
  // requests finish long before the next report; counting them all would
  // make a pod that served a quick burst look full).
  const sent = assigned?.count ?? 0;
  const open = sent > 0 ? Math.min(1, e.routerInFlight / sent) : 0;
  const kvUsage = kvTokens > 0 ? kvScaled + (chars * open) / CHARS_PER_TOKEN / kvTokens : kvScaled;

  const knee = kneeOf(e, running, kvReported);
  const hardLimit = r?.capacity?.maxNumSeqs ?? 0;
  const queue = Math.max(engineWaiting + queued, outstanding - knee);
  // Requests queued in the sidecar mean its limit is reached: past the knee.
  const utilization = Math.max(outstanding / knee, kvUsage / KV_FULL, queued > 0 ? 1 + queued / knee : 0);
  const est: LoadEstimate = {
    outstanding,
    queue,
    kvUsage,
    knee,
    hardLimit,
    utilization,
    expNegUtilization: Math.exp(-utilization),
  };
  if (cached) {
    cached.chars = chars;
    cached.est = est;
  } else estimates.set(e, { assigned, chars, est });
  return est;
}

/** The load estimates of a candidate list, aligned with it, and their lowest utilization. */
export interface PoolLoad {
  readonly loads: readonly LoadEstimate[];
  /** The lowest {@link LoadEstimate.utilization} among them (+∞ for none). */
  readonly minUtilization: number;
  /** The fewest {@link LoadEstimate.outstanding} requests among them (+∞ for none). */
  readonly minOutstanding: number;
}

/** The last candidate list {@link poolLoad} was asked about, and what it answered. */
let lastList: readonly SchedulingEndpoint[] | undefined;
let lastLength = -1;
let lastAssignments = -1;
const lastLoads: LoadEstimate[] = [];
const lastPool = {
  loads: lastLoads,
  minUtilization: Number.POSITIVE_INFINITY,
  minOutstanding: Number.POSITIVE_INFINITY,
};

/**
 * {@link loadOf} for each endpoint of a candidate list. The scorers of one
 * decision are given the same list, and nothing is assigned between them, so
 * the estimates are looked up once per decision rather than once per scorer.
 * The answer is reused by the next call: read it before calling again.
 */
export function poolLoad(endpoints: readonly SchedulingEndpoint[]): PoolLoad {
  if (endpoints === lastList && endpoints.length === lastLength && assignments === lastAssignments)
    return lastPool;
  const n = endpoints.length;
  lastLoads.length = n;
  let min = Number.POSITIVE_INFINITY;
  let minOutstanding = Number.POSITIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const l = loadOf(endpoints[i] as SchedulingEndpoint);
    lastLoads[i] = l;
    min = Math.min(min, l.utilization);
    minOutstanding = Math.min(minOutstanding, l.outstanding);
  }
  lastPool.minUtilization = min;
  lastPool.minOutstanding = minOutstanding;
  lastList = endpoints;
  lastLength = n;
  lastAssignments = assignments;
  return lastPool;
}

/** The endpoint's knee: learned, else bounded by KV capacity and `max_num_seqs`. */
function kneeOf(e: SchedulingEndpoint, running: number, kvUsage: number): number {
  const maxSeqs = e.report?.capacity?.maxNumSeqs ?? 0;
  // Sequences the KV cache holds at the current mean size of a running sequence.
  const kvBound = running > 0 && kvUsage > 0 ? (running * KV_FULL) / kvUsage : 0;
  let bound = Number.POSITIVE_INFINITY;
  if (maxSeqs > 0) bound = maxSeqs;
  if (kvBound > 0) bound = Math.min(bound, kvBound);
  const learned = e.history?.learnedKnee ?? 0;
  if (learned > 0) return Math.max(1, Math.min(learned, bound));
  // Nothing learned (the engine never queued for long): a fixed guess within
  // the bounds. Not one that grows with what runs, which would keep every
  // busy pod at the same fraction of its "knee" and hide a hot one.
  return Math.max(1, Math.min(bound, DEFAULT_KNEE));
}

/** Requests waiting at the endpoint, now (reported, or projected past the knee). */
export function queueDepth(e: SchedulingEndpoint): number {
  return loadOf(e).queue;
}

/**
 * True when the endpoint cannot take more without making it wait: its engine
 * or sidecar has had requests waiting for {@link QUEUEING_MS}, its KV cache is
 * (projected) full, or its sidecar's queue or this router's streams past its
 * limit (published, or a knee its engine showed to be one) reached
 * `saturationQueueDepth`.
 */
export function isSaturated(e: SchedulingEndpoint, saturationQueueDepth: number): boolean {
  if ((e.history?.queueingMs ?? 0) >= QUEUEING_MS) return true;
  const l = loadOf(e);
  // The engine's waiting count alone may be a scrape that caught requests
  // between two steps: it counts once it lasts (above). The sidecar's queue
  // and this router's excess over the knee are queues now.
  // Only a hard limit makes the excess a queue for sure: a published
  // max_num_seqs, or a knee the engine lately showed to be its limit.
  const limit =
    l.hardLimit > 0 ? l.hardLimit : e.history?.atLimit ? Math.min(e.history.limit ?? 0, l.knee) : 0;
  const excess = limit > 0 ? l.outstanding - limit : Number.NEGATIVE_INFINITY;
  return (
    l.kvUsage >= KV_FULL ||
    (e.report?.queued ?? 0) >= Math.max(1, saturationQueueDepth) ||
    excess >= saturationQueueDepth
  );
}

/**
 * True when this router's count (which shows a finish at once) puts the
 * endpoint `depth` requests or more past the most it runs at once: its
 * published `max_num_seqs`; else the limit its engine showed (the history's
 * `limit`), as the published one while it was seen lately (`atLimit`) and
 * one past it after, to probe for headroom; else the knee learned from a
 * queue in its engine, past which by at least one (room for a pod that can
 * run more to show it, and the learned knee then rises). False while none
 * is known. Admission holds requests in the router, not in an engine
 * queue, once every pod of a pool is past it.
 */
export function pastLimit(e: SchedulingEndpoint, depth: number): boolean {
  const l = loadOf(e);
  if (l.hardLimit > 0) return l.outstanding - l.hardLimit >= depth;
  const h = e.history;
  if (!h || h.learnedKnee <= 0) return false;
  const limit = h.limit ?? 0;
  if (limit > 0) return l.outstanding - Math.min(limit, l.knee) >= (h.atLimit ? depth : Math.max(1, depth));
  return l.outstanding - l.knee >= Math.max(1, depth);
}

/**
 * True when the endpoint is at a limit it is known to have, by this router's
 * count: its published `max_num_seqs`, or the limit its engine showed (one
 * past it while the router probes for headroom), as {@link pastLimit} counts
 * them with no queue allowed. One more request would wait in its engine for
 * a slot. A knee with no limit shown (a queue that may have been prefill
 * work) does not make an endpoint full.
 */
export function atKnownLimit(e: SchedulingEndpoint): boolean {
  if (loadOf(e).hardLimit <= 0 && (e.history?.limit ?? 0) <= 0) return false;
  return pastLimit(e, 0);
}

/** Outstanding work of an endpoint (requests), as {@link loadOf} projects it. */
export function endpointLoad(e: SchedulingEndpoint): number {
  return loadOf(e).outstanding;
}

/**
 * True when the endpoint can take new work: ready and not draining, or so by
 * a report that is late ({@link SchedulingEndpoint.stale}; the `ready` filter
 * then takes it only when no endpoint with a fresh report is left).
 */
export function usable(e: SchedulingEndpoint): boolean {
  return (e.ready || e.stale === true) && !e.draining;
}

/** True when the endpoint can take new work by a fresh report (not a late one). */
export function freshlyUsable(e: SchedulingEndpoint): boolean {
  return e.ready && !e.draining;
}
