/**
 * A clock that only moves when told to, for deterministic tests of anything
 * that takes a {@link SimClock}: timers fire in due order as time is advanced.
 */
import type { SimClock } from './clock.js';

/** A {@link SimClock} driven by hand. */
export interface ManualClock extends SimClock {
  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  advance(ms: number): void;
  /** Fires timers (advancing time to each) until none is left; throws after `maxTimers` to catch loops. */
  runAll(maxTimers?: number): void;
  /** Timers waiting to fire. */
  pending(): number;
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** Creates a manual clock starting at `startMs`. */
export function createManualClock(startMs = 0): ManualClock {
  let now = startMs;
  let seq = 0;
  const timers: Timer[] = [];

  const next = (): Timer | undefined => {
    let best: Timer | undefined;
    for (const t of timers) if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    return best;
  };
  const fire = (timer: Timer) => {
    timers.splice(timers.indexOf(timer), 1);
    now = Math.max(now, timer.at);
    timer.fn();
  };

  return {
    now: () => now,
    schedule(delayMs, fn) {
      const timer: Timer = { at: now + Math.max(0, delayMs), seq: seq++, fn };
      timers.push(timer);
      return () => {
        const i = timers.indexOf(timer);
        if (i !== -1) timers.splice(i, 1);
      };
    },
    advance(ms) {
      const until = now + ms;
      for (let t = next(); t && t.at <= until; t = next()) fire(t);
      now = until;
    },
    runAll(maxTimers = 1_000_000) {
      for (let n = 0, t = next(); t; t = next(), n++) {
        if (n >= maxTimers)
          throw new Error(`more than ${maxTimers} timers fired; is something rescheduling forever?`);
        fire(t);
      }
    },
    pending: () => timers.length,
  };
}
