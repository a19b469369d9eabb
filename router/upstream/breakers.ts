/**
 * One circuit breaker per endpoint. opossum holds each breaker's state
 * machine (closed → open → half-open), its reset timer, its rolling window
 * and its events; this module decides what counts, because opossum's own
 * rules cannot express it: opossum reports a filtered error as a success (so
 * a probe that ends in CANCELLED would close a half-open breaker), and sees
 * nothing after the first chunk.
 *
 * An attempt asks for a {@link BreakerPermit} and settles it once:
 * - `success` (a first chunk): counted; closes a half-open breaker when it is
 *   the probe (or a forced try).
 * - `endpoint-fault`: counted; opens the breaker after `consecutive_failures`
 *   in a row (as Envoy's outlier detection does) or when the failure share of
 *   the window passes `error_threshold_percentage`; a failed probe reopens it.
 * - `neutral` (cancellation, the client's own deadline, 429, client faults, a
 *   drain hand-back): not counted at all; a neutral probe frees the probe slot
 *   and leaves the breaker half-open.
 * Mid-stream failures come in through {@link Breakers.recordFailure}.
 */
import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import {
  type AttemptOutcome,
  BreakerOpenError,
  type BreakerPermit,
  type Breakers,
  type BreakersOptions,
  type BreakerTransition,
  type EndpointHealth,
  WINDOW_BUCKETS,
} from './breaker-api.js';
import type { BreakerState } from './endpoints.js';

export * from './breaker-api.js';

const HEALTHY: EndpointHealth = Object.freeze({ failureRatio: 0, consecutiveFailures: 0 });

/**
 * opossum's Status counts with `increment`, a public method its type
 * declarations omit; counting through it (instead of `fire`) keeps opossum's
 * own open/close rules out of the decision.
 */
interface Counting {
  increment(property: 'fires' | 'successes' | 'failures'): void;
}

/** opossum's public `options` (read at each opening for `resetTimeout`), absent from its type declarations. */
const optionsOf = (b: CircuitBreaker) => (b as unknown as { options: { resetTimeout: number } }).options;

interface Entry {
  readonly endpoint: string;
  breaker: CircuitBreaker;
  /** The state last reported in a transition. */
  last: BreakerState;
  /** Endpoint faults since the last success (the consecutive-ejection count). */
  consecutive: number;
  /** Bucket rotation of the last fault (consecutive faults age out after a window). */
  faultRotation: number;
  /** The permit holding the half-open probe slot. */
  probe: BreakerPermit | undefined;
  /** Why the next `open` happens (for the transition). */
  reason: string | undefined;
  dropped: boolean;
  /** Cached health and the rotation it was computed at. */
  health: EndpointHealth;
  healthRotation: number;
}

/** Creates the breakers; call `close()` to stop their timers. */
export function createBreakers(options: BreakersOptions): Breakers {
  const log = options.logger;
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let config = options.config;
  const entries = new Map<string, Entry>();
  let rotations = 0;
  const onRotate = () => {
    rotations++;
  };
  let rotateTimer: NodeJS.Timeout | undefined;
  let controller: EventEmitter | undefined;
  const useController = (): EventEmitter => {
    controller?.off('rotate', onRotate);
    if (rotateTimer) clearInterval(rotateTimer);
    let c = options.rotateBucketController;
    if (!c) {
      const own = new EventEmitter();
      own.setMaxListeners(0);
      // One timer for every breaker (opossum would start one per breaker).
      rotateTimer = setInterval(
        () => own.emit('rotate'),
        Math.max(1, Math.floor(config.window_ms / WINDOW_BUCKETS)),
      );
      rotateTimer.unref();
      c = own;
    }
    c.on('rotate', onRotate);
    controller = c;
    return c;
  };
  let rotation = useController();

  const stateOf = (b: CircuitBreaker): BreakerState =>
    b.opened ? 'open' : b.halfOpen ? 'half-open' : 'closed';

  const moved = (entry: Entry) => {
    const to = stateOf(entry.breaker);
    if (to === entry.last || entry.dropped) return;
    const t: BreakerTransition = { endpoint: entry.endpoint, from: entry.last, to };
    if (to === 'open' && entry.reason) t.reason = entry.reason;
    entry.last = to;
    entry.reason = undefined;
    if (to !== 'half-open') entry.probe = undefined;
    (to === 'closed' ? log.info : log.warn)('circuit breaker state change', { ...t });
    events.emit('transition', t);
  };

  /** A new opossum breaker for `entry`, closed or carrying `state` (opossum's documented `toJSON().state`). */
  const build = (entry: Entry, state?: unknown): CircuitBreaker => {
    const b = new CircuitBreaker(() => Promise.resolve(), {
      name: entry.endpoint,
      // Never fired: attempts run outside opossum, which keeps state, timer and window.
      timeout: false,
      errorThresholdPercentage: config.error_threshold_percentage,
      volumeThreshold: config.volume_threshold,
      resetTimeout: config.reset_timeout_ms,
      rollingCountTimeout: config.window_ms,
      rollingCountBuckets: WINDOW_BUCKETS,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: rotation,
      ...(state ? { state } : {}),
    } as CircuitBreaker.Options);
    const onChange = () => moved(entry);
    b.on('open', onChange);
    b.on('halfOpen', () => {
      entry.probe = undefined;
      onChange();
    });
    b.on('close', onChange);
    return b;
  };

  const get = (endpoint: string): Entry => {
    let entry = entries.get(endpoint);
    if (!entry) {
      entry = {
        endpoint,
        breaker: undefined as unknown as CircuitBreaker,
        last: 'closed',
        consecutive: 0,
        faultRotation: 0,
        probe: undefined,
        reason: undefined,
        dropped: false,
        health: HEALTHY,
        healthRotation: 0,
      };
      entry.breaker = build(entry);
      entries.set(endpoint, entry);
    }
    return entry;
  };

  const healthChanged = (entry: Entry) => {
    entry.healthRotation = -1;
    events.emit('health', entry.endpoint);
  };

  /**
   * Closes a breaker that was open or half-open, with a fresh window: the
   * failures that opened it belong to the episode that just ended.
   */
  const closeFresh = (entry: Entry) => {
    const old = entry.breaker;
    entry.breaker = build(entry);
    old.shutdown();
    entry.consecutive = 0;
    entry.probe = undefined;
    entry.health = HEALTHY;
    entry.healthRotation = rotations;
    moved(entry);
    events.emit('health', entry.endpoint);
  };

  const open = (entry: Entry, reason: string) => {
    entry.reason = reason;
    entry.breaker.open();
  };

  /**
   * Every endpoint fault is counted (window, consecutive count, health), in
   * any state: while open it keeps a kept-open endpoint (ejection cap) from
   * looking healthy. The opening rules apply only to a closed breaker.
   */
  const fault = (entry: Entry, countsAttempt: boolean) => {
    const status = entry.breaker.status as unknown as Counting;
    if (countsAttempt) status.increment('fires');
    status.increment('failures');
    // Faults a whole window apart are not "in a row".
    if (rotations - entry.faultRotation >= WINDOW_BUCKETS) entry.consecutive = 0;
    entry.consecutive++;
    entry.faultRotation = rotations;
    healthChanged(entry);
    if (!entry.breaker.closed) return;
    const n = config.consecutive_failures;
    if (n > 0 && entry.consecutive >= n) return open(entry, `${entry.consecutive} consecutive failures`);
    const { fires, failures } = entry.breaker.stats;
    if (fires === 0 || fires < config.volume_threshold) return;
    const rate = (Math.min(failures, fires) / fires) * 100;
    if (rate > config.error_threshold_percentage)
      open(entry, `error rate ${Math.round(rate)}% of ${fires} attempts`);
  };

  const settle = (entry: Entry, permit: BreakerPermit, outcome: AttemptOutcome) => {
    if (entry.dropped) return;
    const wasProbe = entry.probe === permit;
    if (wasProbe) entry.probe = undefined;
    if (outcome === 'neutral') return;
    const b = entry.breaker;
    if (outcome === 'endpoint-fault') {
      fault(entry, true);
      if (wasProbe && b.halfOpen) open(entry, 'probe failed');
      return;
    }
    if (!b.closed && (wasProbe || permit.forced)) return closeFresh(entry);
    // A success of an attempt admitted before the breaker opened counts, but
    // only the probe (or a forced try) closes it.
    const status = b.status as unknown as Counting;
    status.increment('fires');
    status.increment('successes');
    if (entry.consecutive > 0) {
      entry.consecutive = 0;
      healthChanged(entry);
    }
  };

  const permit = (entry: Entry, probe: boolean, forced: boolean): BreakerPermit => {
    let settled = false;
    const p: BreakerPermit = {
      probe,
      forced,
      settle(outcome) {
        if (settled) return;
        settled = true;
        settle(entry, p, outcome);
      },
    };
    return p;
  };

  const acquire = (endpoint: string, opts: { force?: boolean } = {}): BreakerPermit => {
    const entry = get(endpoint);
    const b = entry.breaker;
    if (b.closed) return permit(entry, false, false);
    if (b.halfOpen && entry.probe === undefined) {
      const p = permit(entry, true, false);
      entry.probe = p;
      return p;
    }
    if (opts.force) return permit(entry, false, true);
    throw new BreakerOpenError(endpoint);
  };

  const drop = (entry: Entry) => {
    const was = stateOf(entry.breaker);
    entry.dropped = true;
    entries.delete(entry.endpoint);
    entry.breaker.shutdown();
    if (was !== 'closed') events.emit('transition', { endpoint: entry.endpoint, from: was, to: 'closed' });
  };

  return {
    events,
    state: (endpoint) => {
      const entry = entries.get(endpoint);
      return entry ? stateOf(entry.breaker) : 'closed';
    },
    probeAvailable: (endpoint) => {
      const entry = entries.get(endpoint);
      return entry === undefined || entry.breaker.closed || (entry.breaker.halfOpen && !entry.probe);
    },
    acquire,
    recordFailure(endpoint) {
      fault(get(endpoint), false);
    },
    health(endpoint) {
      const entry = entries.get(endpoint);
      if (!entry) return HEALTHY;
      // A clean record cannot get worse by time passing; only a fault marks it stale.
      if (entry.healthRotation === rotations || (entry.health === HEALTHY && entry.healthRotation >= 0))
        return entry.health;
      const { fires, failures } = entry.breaker.stats;
      const consecutive = rotations - entry.faultRotation < WINDOW_BUCKETS ? entry.consecutive : 0;
      const failureRatio = fires > 0 ? Math.min(1, failures / fires) : failures > 0 ? 1 : 0;
      entry.health =
        failureRatio === 0 && consecutive === 0
          ? HEALTHY
          : Object.freeze({ failureRatio, consecutiveFailures: consecutive });
      entry.healthRotation = rotations;
      return entry.health;
    },
    configure(next) {
      const windowChanged = next.window_ms !== config.window_ms;
      config = next;
      if (!windowChanged) {
        // Thresholds are read at each decision; the reset timeout at each opening.
        for (const entry of entries.values()) optionsOf(entry.breaker).resetTimeout = next.reset_timeout_ms;
        return;
      }
      // The window lives in opossum's Status, built with the breaker: rebuild
      // each breaker carrying its state (an open one restarts its reset timer).
      rotation = useController();
      for (const entry of entries.values()) {
        const old = entry.breaker;
        const state = old.toJSON().state;
        entry.breaker = build(entry, state);
        old.shutdown();
        entry.healthRotation = -1;
        moved(entry);
      }
    },
    retain(addresses) {
      const keep = new Set(addresses);
      for (const entry of [...entries.values()]) if (!keep.has(entry.endpoint)) drop(entry);
    },
    states: () => Object.fromEntries([...entries].map(([k, e]) => [k, stateOf(e.breaker)])),
    close() {
      if (rotateTimer) clearInterval(rotateTimer);
      rotation.off('rotate', onRotate);
      for (const entry of entries.values()) {
        entry.dropped = true;
        entry.breaker.shutdown();
      }
      entries.clear();
    },
  };
}
