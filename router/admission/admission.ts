/**
 * Admission control: a bounded number of requests in flight per router, and
 * a priority queue for requests that cannot start now — because the router is
 * at its limit, or because every endpoint of their pool is saturated (by
 * reported queue depth). Higher priority leaves the queue first (FIFO within
 * a priority); a request waits at most `max_queue_wait_ms` (and never past
 * its deadline), then is shed with RESOURCE_EXHAUSTED and a retry pushback.
 */
import { EventEmitter } from 'node:events';
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
  /** Absolute deadline (ms, `now()` clock). */
  deadline: number;
  signal: AbortSignal;
}

/** Why a request was shed. */
export type ShedReason = 'queue_full' | 'queue_timeout';

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
  /** Emits `queued`, `admitted` ({waitedMs}), `shed` ({reason}). */
  readonly events: EventEmitter;
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

  const release = () => {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      inFlight--;
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

  const remove = (w: Waiter) => {
    const i = queue.indexOf(w);
    if (i >= 0) queue.splice(i, 1);
    if (w.timer) timers.clearTimeout(w.timer);
    w.ticket.signal.removeEventListener('abort', w.onAbort);
  };

  const grant = (w: Waiter) => {
    remove(w);
    inFlight++;
    events.emit('admitted', { waitedMs: timers.now() - w.enqueuedAt });
    w.resolve(release());
  };

  // One pass admits, in priority order, what fits. A pool's saturation is
  // re-judged only once admitted requests show up in its load, so one pass
  // admits at most `saturation_queue_depth` requests per pool: a bounded
  // overshoot that lets a burst drain in few passes instead of one per request.
  const pass = () => {
    passScheduled = false;
    const granted = new Map<string, number>();
    const blocked = new Set<string>();
    const perPass = Math.max(1, cfg.saturation_queue_depth);
    for (const w of [...queue]) {
      if (inFlight >= cfg.max_concurrency) return;
      const key = w.ticket.poolKey;
      if (blocked.has(key)) continue;
      if ((granted.get(key) ?? 0) >= perPass || w.ticket.saturated()) {
        blocked.add(key);
        continue;
      }
      granted.set(key, (granted.get(key) ?? 0) + 1);
      grant(w);
    }
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
        inFlight++;
        events.emit('admitted', { waitedMs: 0 });
        return Promise.resolve(release());
      }
      if (queue.length >= cfg.max_queue_length) return Promise.reject(shedError('queue_full'));
      if (ticket.signal.aborted) return Promise.reject(errors.cancelled('client cancelled'));
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
    configure(next) {
      cfg = next;
      schedulePass();
    },
  };
}
