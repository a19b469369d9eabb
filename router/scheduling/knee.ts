/**
 * What the router learns from a pod's load reports over time: how long its
 * engine (or sidecar) has had requests waiting, and the *knee*, the most
 * requests the engine ran while others waited, once a queue persisted with
 * no more running, and whether that knee is the engine's concurrency limit
 * (the same count ran at two scrapes while requests waited). load.ts scores
 * and admits against them; this file only learns them, one report at a
 * time, as a pure function of the history.
 */
import type { LoadReport__Output } from '../../common/generated/llmmesh/v1/LoadReport.js';

/** How long requests must have been waiting in the engine (or sidecar) for it to count as saturated. */
export const QUEUEING_MS = 1_000;

/**
 * How long requests must have kept waiting in the engine with no more of
 * them running for what runs to teach the knee (ms; the sidecar's default
 * scrape interval), and seen so by two scrapes of the engine at least. One
 * scrape that catches requests waiting may be a moment between two steps
 * while the engine admits more; a queue that persists while what runs does
 * not grow is a limit (a concurrency limit shows the same running count at
 * every scrape).
 */
export const KNEE_CONFIRM_MS = 500;

/**
 * How long a learned knee lasts once nothing waits (ms). A lasting queue can
 * come from prefill work, not concurrency: a burst of cold long prompts keeps
 * prompts waiting for the token budget at a few running requests, and once
 * the prefixes are cached the same engine runs many more without queueing.
 * A knee that no queue confirms for this long, while fewer than
 * {@link KNEE_BINDING_SHARE} of it run, is forgotten; a real limit queues
 * again and is learned again within {@link QUEUEING_MS}.
 */
export const KNEE_MEMORY_MS = 5_000;

/**
 * How far a learned knee rises when more ran than it says with nothing
 * waiting: at least to what ran, and at least by this factor. A router that
 * holds a pod at its knee lets one more run (see `pastLimit` in load.ts), so a
 * knee learned too low, from a burst of cold prompts that waited for the
 * token budget, would climb one request per scrape; it gets back to a large
 * pod's limit in seconds this way, and overshooting a real limit only
 * queues a few requests until the next queue teaches it again.
 */
export const KNEE_GROWTH = 1.25;

/** Share of a learned knee that, running, counts as the knee binding (not quiet). */
export const KNEE_BINDING_SHARE = 0.8;

/**
 * How long a knee the engine showed to be its concurrency limit holds (ms)
 * before the router tries one request past it again. A limit shows as a
 * plateau: requests waiting at two scrapes with the same count running and
 * never more (a token budget or a filling KV cache lets the count move).
 * While it holds, the router sends a pod no more than the limit, as it does
 * with a published `max_num_seqs`, and nothing waits in the engine for a
 * slot; past it, one more request probes whether the pod can run more (the
 * knee then rises) or queues, and the first scrape that shows the same
 * count running with a request waiting holds the limit again. A probe costs
 * the requests that wait in the engine until that report: each finish in
 * the scrape interval lets one more wait for the next, and when requests
 * finish in clumps one can wait a whole request's time. A pod with 8 slots
 * serving 12 requests a second sees a few such requests per probe, so a
 * probe every minute keeps them well under 1 % of its requests (under the
 * TTFT p99); a limit learned too low costs a pod's headroom under overload
 * for this long at most.
 */
export const KNEE_PROBE_MS = 60_000;

/**
 * Scrapes in a row (each new) that must show a plateau below a held limit
 * before the router lowers the limit; see {@link observeReport}.
 */
export const LIMIT_LOWER_SCRAPES = 3;

/** What an endpoint's past reports taught (kept per endpoint by whoever receives the reports). */
export interface LoadHistory {
  /** Requests the engine ran when it last had some waiting (0: never seen queueing). */
  readonly learnedKnee: number;
  /**
   * Since when (report clock) reports have shown requests waiting in the
   * engine or sidecar, dated by the engine scrape that showed them; -1 when none.
   */
  readonly queueingSince: number;
  /** How long they had been waiting as of the newest sample that showed them (ms). */
  readonly queueingMs: number;
  /** Since when (report clock) reports have shown nothing waiting; -1 while something waits (absent: -1). */
  readonly quietSince?: number;
  /** The most requests the engine ran during the current waiting spell (absent: 0). */
  readonly spellPeak?: number;
  /** Since when (report clock) that many have run, no more; -1 outside a spell (absent: -1). */
  readonly peakSince?: number;
  /** Distinct engine scrapes seen since then, that one included (absent: 0). */
  readonly peakScrapes?: number;
  /** Of those, the scrapes that showed that many running with requests waiting in the engine (absent: 0). */
  readonly plateauScrapes?: number;
  /**
   * The engine's concurrency limit, as a plateau that the knee has come to
   * (within one) showed it; 0 when none has, or the knee has moved since
   * (absent: 0).
   */
  readonly limit?: number;
  /** When (report clock) the engine last showed that limit; -1 while there is none (absent: -1). */
  readonly limitSeenAt?: number;
  /**
   * True while the limit was seen within {@link KNEE_PROBE_MS}: the router
   * sends the pod no more than it (absent: false); after, one more, to probe.
   */
  readonly atLimit?: boolean;
  /** The last report's engine gauges, to tell a new scrape from a repeated one (absent: none). */
  readonly lastScrape?: string;
}

/** The history before any report. */
export const NO_HISTORY: LoadHistory = Object.freeze({
  learnedKnee: 0,
  queueingSince: -1,
  queueingMs: 0,
  quietSince: -1,
  spellPeak: 0,
  peakSince: -1,
  peakScrapes: 0,
  plateauScrapes: 0,
  limit: 0,
  limitSeenAt: -1,
  atLimit: false,
  lastScrape: '',
});

/**
 * Folds one report into an endpoint's history. When requests have kept
 * waiting for {@link KNEE_CONFIRM_MS} and two scrapes with no more running
 * than the most that ran while they waited (the spell's peak), or have waited for
 * {@link QUEUEING_MS} at all, that peak is what the engine could take: the
 * knee rises to it, or moves a third of the way down to it (a knee too high
 * lets a few more in; one too low holds back work a pod could run). When
 * more runs without waiting than the knee says, the knee was too low: it
 * rises to what ran, by {@link KNEE_GROWTH} at least. When two scrapes of
 * the spell showed that peak running with requests waiting in the engine (a
 * plateau) and the knee is within one of it, the peak is the engine's
 * concurrency limit ({@link LoadHistory.limit}), held for
 * {@link KNEE_PROBE_MS} (see {@link LoadHistory.atLimit}); a later scrape
 * that shows that many running with requests waiting holds it again. The
 * limit lasts while the knee does not move.
 */
export function observeReport(h: LoadHistory, r: LoadReport__Output | undefined, now: number): LoadHistory {
  if (!r) return h;
  const running = r.engine?.numRequestsRunning ?? 0;
  const waiting = (r.engine?.numRequestsWaiting ?? 0) + r.queued;
  // The sidecar's queue is as of the report; the engine's gauges are as of
  // its last scrape, which every report repeats until the next one. A queue
  // lasts as long as the samples that show it are apart: one scrape that
  // caught a request between two engine steps, repeated for a probe
  // interval (longer on a busy machine), is no lasting queue.
  const seenAt = r.queued > 0 ? now : now - (r.engineScrapeAgeMs ?? 0);
  const queueingSince = waiting > 0 ? (h.queueingSince >= 0 ? h.queueingSince : seenAt) : -1;
  const queueingMs =
    queueingSince < 0 ? 0 : Math.max(h.queueingSince >= 0 ? h.queueingMs : 0, seenAt - queueingSince);
  // The spell's peak, since when no more have run, and how many scrapes
  // of the engine said so (a sidecar repeats its last scrape in every
  // report until the next one).
  const e = r.engine;
  const lastScrape = e ? `${e.numRequestsRunning}/${e.numRequestsWaiting}/${e.kvCacheUsagePerc}` : '';
  const newScrape = lastScrape !== h.lastScrape;
  // The engine's own queue, beside a count that is all it runs.
  const engineQueued = (e?.numRequestsWaiting ?? 0) > 0;
  let spellPeak = 0;
  let peakSince = -1;
  let peakScrapes = 0;
  let plateauScrapes = 0;
  if (waiting > 0) {
    const inSpell = h.queueingSince >= 0;
    spellPeak = inSpell ? (h.spellPeak ?? 0) : 0;
    peakSince = inSpell ? (h.peakSince ?? -1) : -1;
    peakScrapes = inSpell ? (h.peakScrapes ?? 0) + (newScrape ? 1 : 0) : 1;
    plateauScrapes = inSpell ? (h.plateauScrapes ?? 0) : 0;
    if (running > spellPeak || peakSince < 0) {
      spellPeak = Math.max(spellPeak, running);
      peakSince = now;
      peakScrapes = 1;
      plateauScrapes = running === spellPeak && engineQueued ? 1 : 0;
    } else if (newScrape && running === spellPeak && engineQueued) plateauScrapes++;
  }
  // Quiet: nothing waits and the knee does not bind (a router holding the
  // pod at its knee keeps it from queueing; that confirms the knee).
  const binding = h.learnedKnee > 0 && running >= KNEE_BINDING_SHARE * h.learnedKnee;
  const quietSince = waiting > 0 || binding ? -1 : (h.quietSince ?? -1) >= 0 ? (h.quietSince as number) : now;
  let knee = h.learnedKnee;
  let limit = h.limit ?? 0;
  let limitSeenAt = h.limitSeenAt ?? -1;
  // Held at its limit, a pod shows one fewer running and one waiting
  // whenever a scrape falls between a finish and the engine's next step
  // (the router's replacement waits for that step), and two scrapes in a
  // row may both catch it. A limit that really fell shows at every scrape:
  // a spell below a held limit teaches only once {@link LIMIT_LOWER_SCRAPES}
  // scrapes in a row showed it.
  const belowHeldLimit = limit > 0 && now - limitSeenAt < KNEE_PROBE_MS && spellPeak < limit;
  // Only a queue that persists teaches: a scrape between two steps, or
  // prompts waiting a step for the token budget, say nothing about capacity.
  const confirmed =
    spellPeak > 0 &&
    (belowHeldLimit
      ? plateauScrapes >= LIMIT_LOWER_SCRAPES
      : (peakScrapes >= 2 && now - peakSince >= KNEE_CONFIRM_MS) || queueingMs >= QUEUEING_MS);
  if (confirmed) knee = knee > 0 && spellPeak < knee ? knee + (spellPeak - knee) / 3 : spellPeak;
  else if (waiting === 0 && knee > 0 && running > knee) knee = Math.max(running, KNEE_GROWTH * knee);
  if (quietSince >= 0 && now - quietSince >= KNEE_MEMORY_MS) knee = 0;
  // A plateau the knee has come to (within one) is the engine's limit; the
  // limit seen again, from one scrape, holds it again (a router that holds
  // the pod at its limit sends one past it only to probe). A knee that
  // moves otherwise (it grew, or a queue at fewer running pulled it down)
  // leaves no limit.
  const plateau = confirmed && plateauScrapes >= 2 && now - peakSince >= KNEE_CONFIRM_MS;
  if (plateau && knee > 0 && Math.abs(knee - spellPeak) < 1) {
    limit = spellPeak;
    limitSeenAt = now;
  } else if (knee !== h.learnedKnee) {
    limit = 0;
    limitSeenAt = -1;
  } else if (limit > 0 && newScrape && engineQueued && running === limit) limitSeenAt = now;
  const atLimit = limit > 0 && now - limitSeenAt < KNEE_PROBE_MS;
  if (
    knee === h.learnedKnee &&
    queueingSince === h.queueingSince &&
    queueingMs === h.queueingMs &&
    quietSince === (h.quietSince ?? -1) &&
    spellPeak === (h.spellPeak ?? 0) &&
    peakSince === (h.peakSince ?? -1) &&
    peakScrapes === (h.peakScrapes ?? 0) &&
    plateauScrapes === (h.plateauScrapes ?? 0) &&
    limit === (h.limit ?? 0) &&
    limitSeenAt === (h.limitSeenAt ?? -1) &&
    atLimit === (h.atLimit ?? false) &&
    lastScrape === h.lastScrape
  )
    return h;
  return {
    learnedKnee: knee,
    queueingSince,
    queueingMs,
    quietSince,
    spellPeak,
    peakSince,
    peakScrapes,
    plateauScrapes,
    limit,
    limitSeenAt,
    atLimit,
    lastScrape,
  };
}
