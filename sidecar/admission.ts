/**
 * Admission to the engine: at most `limit` requests in flight, the rest wait
 * in FIFO order. The waiting count is the pod's queue depth, the autoscaling
 * signal.
 */
import { errors } from '../common/errors.js';

/** A FIFO concurrency gate. */
export interface Admission {
  /** Waits for a slot; rejects with CANCELLED when `signal` aborts first. Returns the release function. */
  acquire(signal?: AbortSignal): Promise<() => void>;
  readonly inFlight: number;
  readonly queued: number;
  /** Changes the limit (e.g. once the engine's max_num_seqs is known). */
  setLimit(limit: number): void;
}

/** Creates an admission gate; `onChange` runs whenever in-flight or queued counts change. */
export function createAdmission(limit: number, onChange: () => void = () => {}): Admission {
  let inFlight = 0;
  let max = Math.max(1, limit);
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
    setLimit(l) {
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
