/**
 * A retry budget: over a sliding window, retries may be at most `ratio` of
 * requests, or `min_retries`, whichever is more. When endpoints fail
 * together, retries then add at most that share of load instead of
 * multiplying it (a retry storm).
 */

/** Settings of {@link createRetryBudget}. */
export interface RetryBudgetSettings {
  ratio: number;
  min_retries: number;
  window_ms: number;
}

/** A retry budget. */
export interface RetryBudget {
  /** Counts a request (each one earns `ratio` of a retry). */
  recordRequest(): void;
  /** Takes one retry from the budget; false when it is spent. */
  tryRetry(): boolean;
  /** Requests and retries in the current window. */
  usage(): { requests: number; retries: number; allowed: number };
  configure(settings: RetryBudgetSettings): void;
}

const BUCKETS = 10;

/** Creates a budget; `now` is injectable for tests. */
export function createRetryBudget(settings: RetryBudgetSettings, now: () => number = Date.now): RetryBudget {
  let s = settings;
  // Ring of buckets, each covering window_ms / BUCKETS.
  let requests = new Array<number>(BUCKETS).fill(0);
  let retries = new Array<number>(BUCKETS).fill(0);
  let head = Math.floor(now() / (s.window_ms / BUCKETS));

  const advance = () => {
    const slot = Math.floor(now() / (s.window_ms / BUCKETS));
    if (slot === head) return;
    const steps = Math.min(BUCKETS, slot - head);
    for (let i = 1; i <= steps; i++) {
      const idx = (((head + i) % BUCKETS) + BUCKETS) % BUCKETS;
      requests[idx] = 0;
      retries[idx] = 0;
    }
    head = slot;
  };
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const allowed = () => Math.max(s.min_retries, Math.floor(s.ratio * sum(requests)));
  const idx = () => ((head % BUCKETS) + BUCKETS) % BUCKETS;

  return {
    recordRequest() {
      advance();
      requests[idx()] = (requests[idx()] ?? 0) + 1;
    },
    tryRetry() {
      advance();
      if (sum(retries) >= allowed()) return false;
      retries[idx()] = (retries[idx()] ?? 0) + 1;
      return true;
    },
    usage() {
      advance();
      return { requests: sum(requests), retries: sum(retries), allowed: allowed() };
    },
    configure(next) {
      if (next.window_ms !== s.window_ms) {
        requests = new Array<number>(BUCKETS).fill(0);
        retries = new Array<number>(BUCKETS).fill(0);
        s = next;
        head = Math.floor(now() / (s.window_ms / BUCKETS));
        return;
      }
      s = next;
    },
  };
}
