/**
 * Time for the simulator: a clock to read and a way to run code later. Kept
 * behind one interface so tests can drive time by hand and benchmarks can use
 * the real event loop.
 */

/** Cancels a scheduled callback; calling it after the callback ran does nothing. */
export type CancelTimer = () => void;

/** Reads time and schedules callbacks. */
export interface SimClock {
  /** Current time in milliseconds (any epoch; only differences and `created` stamps use it). */
  now(): number;
  /**
   * Runs `fn` after `delayMs` milliseconds. A delay of zero or less still runs
   * `fn` asynchronously, after pending I/O, so a busy simulator never starves
   * the event loop.
   */
  schedule(delayMs: number, fn: () => void): CancelTimer;
}

/** The real clock: `Date.now()`, `setTimeout` and `setImmediate`. */
export function createSystemClock(now: () => number = Date.now): SimClock {
  return {
    now,
    schedule(delayMs, fn) {
      if (delayMs <= 0) {
        const handle = setImmediate(fn);
        return () => clearImmediate(handle);
      }
      const handle = setTimeout(fn, delayMs);
      return () => clearTimeout(handle);
    },
  };
}
