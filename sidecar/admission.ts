/**
 * Admission to the engine: at most `limit` requests in flight, the rest wait
 * in a bounded FIFO queue. The waiting count is the pod's queue depth, the
 * autoscaling signal; a full queue sheds with RESOURCE_EXHAUSTED and a retry
 * pushback, so callers back off instead of piling up.
 */

import type { CancelSignal } from '../common/cancellation.js';
import { errors } from '../common/errors.js';

/** Default bound of the admission queue. */
export const DEFAULT_MAX_QUEUE = 1024;
/** Default `grpc-retry-pushback-ms` sent when the queue is full. */
export const DEFAULT_QUEUE_PUSHBACK_MS = 500;

/** A FIFO concurrency gate. */
export interface Admission {
  /**
   * Waits for a slot; returns the release function. Rejects with CANCELLED
   * when `signal` aborts first, and at once with RESOURCE_EXHAUSTED (with a
   * retry pushback) when the queue is full.
   */
  acquire(signal?: CancelSignal): Promise<() => void>;
  readonly inFlight: number;
  readonly queued: number;
  /** The current in-flight limit. */
  readonly limit: number;
  /** Changes the limit (e.g. once the engine's max_num_seqs is known). */
  setLimit(limit: number): void;
}

/** Options of {@link createAdmission} beyond the limit. */
export interface AdmissionOptions {
  /** Requests that may wait for a slot; 0 sheds whatever cannot run at once (default 1024). */
  maxQueue?: number;
  /** Pushback sent with RESOURCE_EXHAUSTED when the queue is full (default 500 ms). */
  queuePushbackMs?: number;
}

/** Creates an admission gate; `onChange` runs whenever in-flight or queued counts change. */
export function createAdmission(
  limit: number,
  onChange: () => void = () => {},
  options: AdmissionOptions = {},
): Admission {
  let inFlight = 0;
  let max = Math.max(1, limit);
  const maxQueue = Math.max(0, options.maxQueue ?? DEFAULT_MAX_QUEUE);
  const pushbackMs = options.queuePushbackMs ?? DEFAULT_QUEUE_PUSHBACK_MS;
  const waiters: Array<{ grant: () => void }> = [];

  const makeRelease = () => {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      inFlight--;
      pump();
      onChange();
    };
  };
  const pump = () => {
    while (inFlight < max && waiters.length > 0) {
      const w = waiters.shift();
      inFlight++;
      w?.grant();
    }
  };

  return {
    get inFlight() {
      return inFlight;
    },
    get queued() {
      return waiters.length;
    },
    get limit() {
      return max;
    },
    setLimit(l) {
      if (Math.max(1, l) === max) return;
      max = Math.max(1, l);
      pump();
      onChange();
    },
    acquire(signal) {
      if (signal?.aborted) return Promise.reject(errors.cancelled('cancelled while queued'));
      if (inFlight < max && waiters.length === 0) {
        inFlight++;
        onChange();
        return Promise.resolve(makeRelease());
      }
      if (waiters.length >= maxQueue) {
        return Promise.reject(
          errors.resourceExhausted(
            `sidecar queue is full (${waiters.length} waiting, ${inFlight} in flight to the engine)`,
            pushbackMs,
          ),
        );
      }
      return new Promise((resolve, reject) => {
        const waiter = {
          grant: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve(makeRelease());
          },
        };
        const onAbort = () => {
          const idx = waiters.indexOf(waiter);
          if (idx >= 0) waiters.splice(idx, 1);
          onChange();
          reject(errors.cancelled('cancelled while queued'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        waiters.push(waiter);
        onChange();
      });
    },
  };
}
