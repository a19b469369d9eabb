/**
 * Admission control: a bounded number of requests in flight per router, and
 * a priority queue for requests that cannot start now — because the router is
 * at its limit, or because every endpoint of their pool is saturated (by
 * reported queue depth). Higher priority leaves the queue first (FIFO within
 * a priority); a request waits at most `max_queue_wait_ms` (and never past
 * its deadline), then is shed with RESOURCE_EXHAUSTED and a retry pushback.
 *
 * A finish lets one waiter of its pool in even while the pool still looks
 * saturated (its reports lag), unless every pod of the pool is past its
 * limit by the router's own count (`pastLimit`): a queue that built up in
 * the engines before their limit was known then drains instead of standing.
 *
 * A saturated pool drains at the rate its requests finish: the requests it
 * has in flight over their mean service time (an EWMA of admission-to-release
 * durations, which idle periods do not skew). A request whose expected wait
 * behind the queue ahead of it (same pool, same or higher priority) exceeds
 * its budget is shed at once, with a pushback of the time until the backlog
 * beyond the budget has drained, instead of waiting to be shed.
 *
 * A queue absorbs bursts; under sustained overload it only adds delay. A
 * pool's queue that has not emptied for `max_queue_wait_ms` (longer than a
 * burst it can absorb) is *standing*: its budget drops to
 * `standing_queue_wait_ms` (never below two finishes' worth, so a waiter is
 * there when a slot frees), waiters past it are shed, and the queue only
 * bridges a finish to the next admission. Once the queue has stayed empty
 * for a mean service time of the pool, the full `max_queue_wait_ms` applies
 * again.
 */
import { EventEmitter } from 'node:events';
import type { CancelSignal } from '../../common/cancellation.js';
import { errors } from '../../common/errors.js';
import type { AdmissionConfig } from '../config/schema.js';

/** One request asking to start. */
export interface AdmissionTicket {
  /** Higher goes first (e.g. PRIORITY_HIGH = 3). */
  priority: number;
  /** Requests of one pool share a key: at most one of them is let in per queue pass. */
  poolKey: string;
  /** True while every usable endpoint of the request's pool is saturated. */
  saturated(): boolean;
  /**
   * True while every usable endpoint of the pool holds more than the most it
   * runs at once plus the saturation depth, by the router's own count (which
   * shows a finish at once): a freed slot then lets nobody in, so a queue
   * that built up in the engines drains instead of standing. Absent: never.
   */
  pastLimit?(): boolean;
  /** Absolute deadline (ms, `now()` clock). */
  deadline: number;
  signal: CancelSignal;
}

/** Why a request was shed. */
export type ShedReason = 'queue_full' | 'queue_timeout' | 'expected_wait' | 'standing_queue';

/** Weight of the newest service time in a pool's EWMA. */
export const SERVICE_EWMA_ALPHA = 0.2;

/** What admission knows about one pool's drain. */
export interface PoolDrain {
  /** Requests of the pool admitted and not yet released. */
  inFlight: number;
  /** EWMA of admission-to-release durations (ms); 0 until one finished. */
  serviceMs: number;
}

/** Requests the pool finishes per millisecond, or 0 while unknown. */
export function drainRate(d: PoolDrain): number {
  if (d.serviceMs <= 0 || d.inFlight <= 0) return 0;
  return d.inFlight / d.serviceMs;
}

/** Folds one finished request's service time into the pool's EWMA. */
export function recordService(d: PoolDrain, ms: number): void {
  const sample = Math.max(1, ms);
  d.serviceMs = d.serviceMs > 0 ? d.serviceMs + SERVICE_EWMA_ALPHA * (sample - d.serviceMs) : sample;
}

/**
 * Expected wait (ms) of a request with `ahead` requests before it in a pool
 * draining at `rate` per ms, or undefined while the rate is unknown.
 */
export function expectedWaitMs(ahead: number, rate: number): number | undefined {
  return rate > 0 ? (ahead + 1) / rate : undefined;
}

/**
 * The pushback for a request shed because its expected wait exceeds the
 * queue budget (`max_queue_wait_ms`, or less while the queue stands): the
 * time until the backlog beyond the budget has drained,
 * within [min_pushback_ms, max(min_pushback_ms, max_queue_wait_ms)].
 */
export function pushbackFor(
  expectedMs: number,
  cfg: AdmissionConfig,
  budgetMs: number = cfg.max_queue_wait_ms,
): number {
  const hi = Math.max(cfg.min_pushback_ms, cfg.max_queue_wait_ms);
  return Math.round(Math.min(hi, Math.max(cfg.min_pushback_ms, expectedMs - budgetMs)));
}

/**
 * The queue budget of a pool (ms): `max_queue_wait_ms`, or while its queue
 * stands, `standing_queue_wait_ms` but at least two finishes at `rate` (so a
 * waiter is there when a slot frees), and never above `max_queue_wait_ms`.
 */
export function queueBudgetMs(standing: boolean, rate: number, cfg: AdmissionConfig): number {
  if (!standing) return cfg.max_queue_wait_ms;
  const twoFinishes = rate > 0 ? 2 / rate : cfg.max_queue_wait_ms;
  return Math.min(cfg.max_queue_wait_ms, Math.max(cfg.standing_queue_wait_ms, twoFinishes));
}

/** A pool key (`model\0version`) for messages. */
const poolName = (key: string) => {
  const [model, version] = key.split('\u0000');
  return version === undefined ? `"${model}"` : `"${model}" version "${version}"`;
};

/** The admission controller. */
export interface Admission {
  /**
   * Resolves with a release function once the request may start (call it
   * when the request ends). Rejects with RESOURCE_EXHAUSTED when shed, or
   * CANCELLED when the signal aborts while queued.
   */
  admit(ticket: AdmissionTicket): Promise<() => void>;
  /** Re-examines the queue (endpoint state changed). */
  poke(): void;
  configure(config: AdmissionConfig): void;
  readonly inFlight: number;
  readonly queued: number;
  /** Emits `queued` ({priority}), `admitted` ({waitedMs, priority}), `shed` ({reason}). */
  readonly events: EventEmitter;
  /** A pool's drain state (undefined before its first request). */
  drain(poolKey: string): Readonly<PoolDrain> | undefined;
}

/** A pool's admission queue over time. */
interface PoolQueue {
  /** Waiters now. */
  count: number;
  /** Since when the queue has been non-empty (count > 0) or empty (count 0). */
  since: number;
  /** Whether it stood as of the last look. */
  standing: boolean;
}

interface Waiter {
  ticket: AdmissionTicket;
  seq: number;
  enqueuedAt: number;
  resolve: (release: () => void) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  onAbort: () => void;
}

/** Timers, injectable so queue timeouts can be driven by tests. */
export interface AdmissionTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(t: NodeJS.Timeout): void;
}

const systemTimers: AdmissionTimers = {
  now: Date.now,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
};

/** Creates the controller. */
export function createAdmission(config: AdmissionConfig, timers: AdmissionTimers = systemTimers): Admission {
  let cfg = config;
  let inFlight = 0;
  let seq = 0;
  const queue: Waiter[] = [];
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let passScheduled = false;
  const pools = new Map<string, PoolDrain>();
  // Slots freed by finishes while the pool's requests waited: each lets one
  // in even if the pool still looks saturated (its load may not show the
  // finish yet), so the pool's in-flight stays where it was, not lower.
  const credits = new Map<string, number>();
  // Per pool: its waiters, since when its queue has been non-empty (or
  // empty), and whether it stands.
  const waiting = new Map<string, PoolQueue>();
  const queueOf = (key: string) => {
    let q = waiting.get(key);
    if (!q) {
      q = { count: 0, since: timers.now(), standing: false };
      waiting.set(key, q);
    }
    return q;
  };
  /**
   * True while the pool's queue stands: it starts to once the queue has not
   * emptied for `max_queue_wait_ms`, and stops once it has stayed empty for
   * a mean service time (a queue kept short by shedding empties for
   * moments; the overload has not ended for that).
   */
  const standing = (key: string) => {
    const q = waiting.get(key);
    if (!q) return false;
    const spell = timers.now() - q.since;
    if (q.count > 0 && spell >= cfg.max_queue_wait_ms) q.standing = true;
    else if (q.count === 0 && spell >= (pools.get(key)?.serviceMs ?? 0)) q.standing = false;
    return q.standing;
  };
  /** The pool's queue budget now, and its drain rate. */
  const budgetOf = (key: string) => {
    const d = pools.get(key);
    const rate = d ? drainRate(d) : 0;
    const isStanding = standing(key);
    return { budget: queueBudgetMs(isStanding, rate, cfg), rate, standing: isStanding };
  };
  const poolOf = (key: string) => {
    let d = pools.get(key);
    if (!d) {
      d = { inFlight: 0, serviceMs: 0 };
      pools.set(key, d);
    }
    return d;
  };

  const start = (key: string) => {
    inFlight++;
    const d = poolOf(key);
    d.inFlight++;
    const startedAt = timers.now();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      inFlight--;
      d.inFlight--;
      recordService(d, timers.now() - startedAt);
      // A finish frees room: one waiter of the pool takes it.
      if (queue.some((w) => w.ticket.poolKey === key)) credits.set(key, (credits.get(key) ?? 0) + 1);
      schedulePass();
    };
  };

  const shedError = (reason: ShedReason, waitedMs = cfg.max_queue_wait_ms) => {
    events.emit('shed', { reason });
    return errors.resourceExhausted(
      reason === 'queue_full'
        ? `router overloaded: admission queue full (${cfg.max_queue_length} waiting); retry later`
        : `router overloaded: no capacity within ${Math.round(waitedMs)} ms (every endpoint saturated or router at ${cfg.max_concurrency} requests); retry later`,
      cfg.pushback_ms,
    );
  };

  /**
   * Sheds a request for a saturated pool at once when its expected wait
   * exceeds its budget (the queue wait, or less by its deadline).
   */
  const earlyShed = (ticket: AdmissionTicket) => {
    const d = pools.get(ticket.poolKey);
    if (!d || !ticket.saturated()) return undefined;
    const { budget: poolBudget, rate } = budgetOf(ticket.poolKey);
    let ahead = 0;
    for (const w of queue)
      if (w.ticket.poolKey === ticket.poolKey && w.ticket.priority >= ticket.priority) ahead++;
    const expected = expectedWaitMs(ahead, rate);
    const budget = Math.max(0, Math.min(poolBudget, ticket.deadline - timers.now()));
    if (expected === undefined || expected <= budget) return undefined;
    const pushback = pushbackFor(expected, cfg, budget);
    events.emit('shed', { reason: 'expected_wait' satisfies ShedReason });
    return errors.resourceExhausted(
      `pool ${poolName(ticket.poolKey)} overloaded: every pod saturated, ${ahead} queued ahead, draining ${(rate * 1000).toFixed(1)}/s — expected wait ${Math.round(expected)} ms exceeds the ${Math.round(budget)} ms budget; retry in ${pushback} ms`,
      pushback,
    );
  };

  const remove = (w: Waiter) => {
    const i = queue.indexOf(w);
    if (i >= 0) {
      queue.splice(i, 1);
      const q = waiting.get(w.ticket.poolKey);
      if (q) {
        // The queue empties: settle what its non-empty spell decided first.
        if (q.count === 1) {
          standing(w.ticket.poolKey);
          q.since = timers.now();
        }
        q.count--;
      }
    }
    if (w.timer) timers.clearTimeout(w.timer);
    w.ticket.signal.removeEventListener('abort', w.onAbort);
  };

  const grant = (w: Waiter) => {
    remove(w);
    events.emit('admitted', { waitedMs: timers.now() - w.enqueuedAt, priority: w.ticket.priority });
    w.resolve(start(w.ticket.poolKey));
  };

  // One pass admits, in priority order, what fits: a request per slot freed
  // by a finish, else one per unsaturated pool, as the pool's saturation is
  // re-judged once the admitted request counts in its load (its pod is picked
  // before the next pass): a draining pool takes one request per freed slot
  // instead of a burst into engine queues.
  const pass = () => {
    passScheduled = false;
    trimStanding();
    const granted = new Set<string>();
    const blocked = new Set<string>();
    for (const w of [...queue]) {
      if (inFlight >= cfg.max_concurrency) break;
      const key = w.ticket.poolKey;
      if (blocked.has(key)) continue;
      const credit = credits.get(key) ?? 0;
      if (credit > 0 && w.ticket.pastLimit?.()) {
        // The finish left the pool's pods past their limit: the slot it
        // freed is one of an engine queue, not one to fill.
        credits.delete(key);
        blocked.add(key);
        continue;
      }
      if (credit > 0) {
        credits.set(key, credit - 1);
        // A freed slot is the pool's admission of this pass: until the
        // granted request is placed, the pool's load does not show it, and
        // the pool would look as unsaturated as the finish left it.
        granted.add(key);
        grant(w);
        continue;
      }
      if (granted.has(key) || w.ticket.saturated()) {
        blocked.add(key);
        continue;
      }
      granted.add(key);
      grant(w);
    }
    for (const key of credits.keys()) if (!queue.some((w) => w.ticket.poolKey === key)) credits.delete(key);
    if (queue.length > 0 && granted.size > 0 && inFlight < cfg.max_concurrency) {
      // Something may still fit once this pass's admissions are counted.
      const anyRunnable = queue.some((w) => !w.ticket.saturated());
      if (anyRunnable) schedulePass();
    }
  };
  /** Sheds the waiters of standing queues that waited past the standing budget (oldest first). */
  const trimStanding = () => {
    if (queue.length === 0) return;
    const now = timers.now();
    const budgets = new Map<string, number>();
    for (const w of [...queue]) {
      const key = w.ticket.poolKey;
      let budget = budgets.get(key);
      if (budget === undefined) {
        budget = standing(key) ? budgetOf(key).budget : Number.POSITIVE_INFINITY;
        budgets.set(key, budget);
      }
      const waited = now - w.enqueuedAt;
      if (waited < budget) continue;
      remove(w);
      events.emit('shed', { reason: 'standing_queue' satisfies ShedReason });
      const { rate } = budgetOf(key);
      let behind = 0;
      for (const o of queue) if (o.ticket.poolKey === key) behind++;
      const pushback = pushbackFor(expectedWaitMs(behind, rate) ?? cfg.pushback_ms, cfg, budget);
      w.reject(
        errors.resourceExhausted(
          `pool ${poolName(key)} overloaded: its queue stands (sustained overload), so a request waits at most ${Math.round(budget)} ms; waited ${Math.round(waited)} ms; retry in ${pushback} ms`,
          pushback,
        ),
      );
    }
  };
  const schedulePass = () => {
    if (passScheduled || queue.length === 0) return;
    passScheduled = true;
    setImmediate(pass);
  };

  return {
    events,
    get inFlight() {
      return inFlight;
    },
    get queued() {
      return queue.length;
    },
    admit(ticket) {
      if (queue.length === 0 && inFlight < cfg.max_concurrency && !ticket.saturated()) {
        events.emit('admitted', { waitedMs: 0, priority: ticket.priority });
        return Promise.resolve(start(ticket.poolKey));
      }
      if (queue.length >= cfg.max_queue_length) return Promise.reject(shedError('queue_full'));
      if (ticket.signal.aborted) return Promise.reject(errors.cancelled('client cancelled'));
      trimStanding();
      const early = inFlight < cfg.max_concurrency ? earlyShed(ticket) : undefined;
      if (early) return Promise.reject(early);
      return new Promise((resolve, reject) => {
        const w: Waiter = {
          ticket,
          seq: seq++,
          enqueuedAt: timers.now(),
          resolve,
          reject,
          timer: undefined,
          onAbort: () => {
            remove(w);
            reject(errors.cancelled('client cancelled while queued'));
          },
        };
        const waitMs = Math.max(0, Math.min(cfg.max_queue_wait_ms, ticket.deadline - timers.now()));
        const q = queueOf(ticket.poolKey);
        if (q.count === 0) {
          // The queue fills again: settle what its empty spell decided first.
          standing(ticket.poolKey);
          q.since = timers.now();
        }
        q.count++;
        w.timer = timers.setTimeout(() => {
          remove(w);
          reject(shedError('queue_timeout'));
        }, waitMs);
        ticket.signal.addEventListener('abort', w.onAbort, { once: true });
        // Sorted insert: priority descending, then arrival.
        let i = queue.length;
        while (i > 0 && (queue[i - 1] as Waiter).ticket.priority < ticket.priority) i--;
        queue.splice(i, 0, w);
        events.emit('queued', { priority: ticket.priority });
        schedulePass();
      });
    },
    poke: schedulePass,
    drain: (key) => pools.get(key),
    configure(next) {
      cfg = next;
      schedulePass();
    },
  };
}
