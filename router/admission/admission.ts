/**
 * Admission control: a bounded number of requests in flight per router, and
 * a priority queue for requests that cannot start now — because the router is
 * at its limit, or because every endpoint of their pool is saturated (by
 * reported queue depth). Higher priority leaves the queue first (FIFO within
 * a priority); a request waits at most `max_queue_wait_ms` (and never past
 * its deadline), then is shed with RESOURCE_EXHAUSTED and a retry pushback.
 *
 * A saturated pool drains at the rate its requests finish: the requests it
 * has in flight over their mean service time (an EWMA of admission-to-release
 * durations, which idle periods do not skew). A request whose expected wait
 * behind the queue ahead of it (same pool, same or higher priority) exceeds
 * its budget is shed at once, with a pushback of the time until the backlog
 * beyond the budget has drained, instead of waiting to be shed.
 */
import { EventEmitter } from 'node:events';
import { errors } from '../../common/errors.js';
import type { AdmissionConfig } from '../config/schema.js';
import type { CancelSignal } from '../request/cancellation.js';

/** One request asking to start. */
export interface AdmissionTicket {
  /** Higher goes first (e.g. PRIORITY_HIGH = 3). */
  priority: number;
  /** Requests of one pool share a key: at most one of them is let in per queue pass. */
  poolKey: string;
  /** True while every usable endpoint of the request's pool is saturated. */
  saturated(): boolean;
  /** Absolute deadline (ms, `now()` clock). */
  deadline: number;
  signal: CancelSignal;
}

/** Why a request was shed. */
export type ShedReason = 'queue_full' | 'queue_timeout' | 'expected_wait';

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
 * queue budget: the time until the backlog beyond the budget has drained,
 * within [min_pushback_ms, max(min_pushback_ms, max_queue_wait_ms)].
 */
export function pushbackFor(expectedMs: number, cfg: AdmissionConfig): number {
  const hi = Math.max(cfg.min_pushback_ms, cfg.max_queue_wait_ms);
  return Math.round(Math.min(hi, Math.max(cfg.min_pushback_ms, expectedMs - cfg.max_queue_wait_ms)));
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

  const shedError = (reason: ShedReason) => {
    events.emit('shed', { reason });
    return errors.resourceExhausted(
      reason === 'queue_full'
        ? `router overloaded: admission queue full (${cfg.max_queue_length} waiting); retry later`
        : `router overloaded: no capacity within ${cfg.max_queue_wait_ms} ms (every endpoint saturated or router at ${cfg.max_concurrency} requests); retry later`,
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
    const rate = drainRate(d);
    let ahead = 0;
    for (const w of queue)
      if (w.ticket.poolKey === ticket.poolKey && w.ticket.priority >= ticket.priority) ahead++;
    const expected = expectedWaitMs(ahead, rate);
    const budget = Math.max(0, Math.min(cfg.max_queue_wait_ms, ticket.deadline - timers.now()));
    if (expected === undefined || expected <= budget) return undefined;
    const pushback = pushbackFor(expected, cfg);
    events.emit('shed', { reason: 'expected_wait' satisfies ShedReason });
    return errors.resourceExhausted(
      `pool ${poolName(ticket.poolKey)} overloaded: every pod saturated, ${ahead} queued ahead, draining ${(rate * 1000).toFixed(1)}/s — expected wait ${Math.round(expected)} ms exceeds the ${Math.round(budget)} ms budget; retry in ${pushback} ms`,
      pushback,
    );
  };

  const remove = (w: Waiter) => {
    const i = queue.indexOf(w);
    if (i >= 0) queue.splice(i, 1);
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
    const granted = new Set<string>();
    const blocked = new Set<string>();
    for (const w of [...queue]) {
      if (inFlight >= cfg.max_concurrency) break;
      const key = w.ticket.poolKey;
      if (blocked.has(key)) continue;
      const credit = credits.get(key) ?? 0;
      if (credit > 0) {
        credits.set(key, credit - 1);
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
