/**
 * One circuit breaker (opossum) per endpoint, around each upstream attempt up
 * to its first chunk. Only endpoint faults count: client faults (bad input,
 * unknown model, cancellation, the client's own deadline) and back-pressure
 * (429 / RESOURCE_EXHAUSTED, which load scoring handles) pass through the
 * breaker's `errorFilter` as non-failures.
 */
import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { isClientFault, MeshError, Status } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { BreakerConfig } from '../config/schema.js';
import type { BreakerState } from './endpoints.js';

/** A state change of one endpoint's breaker. */
export interface BreakerTransition {
  endpoint: string;
  from: BreakerState;
  to: BreakerState;
}

/** Options of {@link createBreakers}. */
export interface BreakersOptions {
  config: BreakerConfig;
  logger: Logger;
  /**
   * Drives the rolling statistics window: one `rotate` event moves it by one
   * bucket. Default: a timer every `window_ms / 10`. Tests pass their own.
   */
  rotateBucketController?: EventEmitter;
}

/** How an attempt ended, for its breaker. */
export type AttemptOutcome = 'success' | 'endpoint-fault' | 'neutral';

/** Leave to make one attempt; settle it exactly once. */
export interface BreakerPermit {
  settle(outcome: AttemptOutcome): void;
}

/** The per-endpoint breakers. */
export interface Breakers {
  /** Admits one attempt, or throws a {@link BreakerOpenError}. */
  acquire(endpoint: string, options?: { force?: boolean }): BreakerPermit;
  /** Counts an endpoint fault after the attempt's permit was settled (mid-stream). */
  recordFailure(endpoint: string): void;
  /** Current state; `closed` for an endpoint never seen. */
  state(endpoint: string): BreakerState;
  /**
   * True when a half-open breaker still has its probe slot (opossum lets one
   * call through, then fails fast until that call settles).
   */
  probeAvailable(endpoint: string): boolean;
  /**
   * Runs `attempt` through the endpoint's breaker. When the breaker is open
   * (or half-open with its probe in flight) rejects with an UNAVAILABLE
   * {@link MeshError} whose `breakerOpen` is set. `force` bypasses an open
   * breaker (the ejection cap kept the endpoint in the pool); a forced
   * success closes the breaker.
   */
  run<T>(endpoint: string, attempt: () => Promise<T>, options?: { force?: boolean }): Promise<T>;
  /** New settings; breakers are rebuilt (closed) when they changed. */
  configure(config: BreakerConfig): void;
  /** Drops the breakers of endpoints not in `addresses`. */
  retain(addresses: Iterable<string>): void;
  /** States of every breaker known. */
  states(): Record<string, BreakerState>;
  /** Emits `transition` ({@link BreakerTransition}). */
  readonly events: EventEmitter;
  close(): void;
}

/** The error a breaker rejects with while open. */
export class BreakerOpenError extends MeshError {
  readonly breakerOpen = true;
  constructor(endpoint: string) {
    super(Status.UNAVAILABLE, `endpoint ${endpoint}: circuit breaker open`, { safeToRetry: true });
  }
}

/** True for the rejection of an open breaker (the endpoint was not called). */
export function isBreakerOpen(err: unknown): err is BreakerOpenError {
  return err instanceof BreakerOpenError;
}

/**
 * True when `err` says something about the endpoint's health: unreachable,
 * UNAVAILABLE, INTERNAL (engine 5xx), first-token timeout. Client faults,
 * cancellation, the client's deadline and back-pressure are not.
 */
export function isEndpointFault(err: unknown): boolean {
  const e = MeshError.from(err);
  if (isClientFault(e.code)) return false;
  return e.code !== Status.DEADLINE_EXCEEDED && e.code !== Status.RESOURCE_EXHAUSTED && e.code !== Status.OK;
}

type Attempt = () => Promise<unknown>;

/** Creates the breakers; call `close()` to stop their timers. */
export function createBreakers(options: BreakersOptions): Breakers {
  const log = options.logger;
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let config = options.config;
  const breakers = new Map<string, CircuitBreaker<[Attempt], unknown>>();
  let rotateTimer: NodeJS.Timeout | undefined;
  let controller = options.rotateBucketController;
  const ownController = () => {
    if (options.rotateBucketController) return;
    if (rotateTimer) clearInterval(rotateTimer);
    controller = new EventEmitter();
    controller.setMaxListeners(0);
    const c = controller;
    // One timer for every breaker (opossum would start one per breaker).
    rotateTimer = setInterval(() => c.emit('rotate'), Math.max(1, Math.floor(config.window_ms / 10)));
    rotateTimer.unref();
  };
  ownController();

  const stateOf = (b: CircuitBreaker<[Attempt], unknown>): BreakerState =>
    b.opened ? 'open' : b.halfOpen ? 'half-open' : 'closed';

  const create = (endpoint: string) => {
    const b = new CircuitBreaker<[Attempt], unknown>((attempt: Attempt) => attempt(), {
      name: endpoint,
      // The attempt enforces its own first-token timeout (it can cancel the call).
      timeout: false,
      errorThresholdPercentage: config.error_threshold_percentage,
      volumeThreshold: config.volume_threshold,
      resetTimeout: config.reset_timeout_ms,
      rollingCountTimeout: config.window_ms,
      rollingCountBuckets: 10,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: controller,
      errorFilter: (err: unknown) => !isEndpointFault(err),
    });
    let last: BreakerState = 'closed';
    const moved = () => {
      const to = stateOf(b);
      if (to === last) return;
      const t: BreakerTransition = { endpoint, from: last, to };
      last = to;
      (to === 'closed' ? log.info : log.warn)('circuit breaker state change', { ...t });
      events.emit('transition', t);
    };
    b.on('open', moved);
    b.on('halfOpen', moved);
    b.on('close', moved);
    breakers.set(endpoint, b);
    return b;
  };
  const get = (endpoint: string) => breakers.get(endpoint) ?? create(endpoint);

  const drop = (endpoint: string) => {
    const b = breakers.get(endpoint);
    if (!b) return;
    const was = stateOf(b);
    breakers.delete(endpoint);
    b.shutdown();
    if (was !== 'closed') events.emit('transition', { endpoint, from: was, to: 'closed' });
  };

  return {
    events,
    state: (endpoint) => {
      const b = breakers.get(endpoint);
      return b ? stateOf(b) : 'closed';
    },
    probeAvailable: (endpoint) => {
      const b = breakers.get(endpoint);
      return b === undefined || b.closed || b.pendingClose;
    },
    acquire(endpoint, acquireOptions = {}) {
      const b = get(endpoint);
      if (!acquireOptions.force && !b.closed && !b.pendingClose) throw new BreakerOpenError(endpoint);
      let settle: (outcome: AttemptOutcome) => void = () => {};
      const done = new Promise<void>((resolve, reject) => {
        settle = (outcome) => {
          settle = () => {};
          if (outcome === 'success') resolve();
          else
            reject(
              outcome === 'neutral'
                ? new MeshError(Status.CANCELLED, 'neutral')
                : new MeshError(Status.UNAVAILABLE, 'fault'),
            );
        };
      });
      void this.run(endpoint, () => done, acquireOptions).catch(() => {});
      return { settle: (outcome) => settle(outcome) };
    },
    recordFailure() {},
    async run(endpoint, attempt, runOptions = {}) {
      const b = get(endpoint);
      if (runOptions.force && !b.closed && !b.pendingClose) {
        const result = await attempt();
        b.close();
        return result;
      }
      try {
        return (await b.fire(attempt)) as Awaited<ReturnType<typeof attempt>>;
      } catch (err) {
        if ((err as { code?: unknown }).code === 'EOPENBREAKER') throw new BreakerOpenError(endpoint);
        throw err;
      }
    },
    configure(next) {
      const changed = JSON.stringify(next) !== JSON.stringify(config);
      config = next;
      if (!changed) return;
      ownController();
      for (const endpoint of [...breakers.keys()]) drop(endpoint);
    },
    retain(addresses) {
      const keep = new Set(addresses);
      for (const endpoint of [...breakers.keys()]) if (!keep.has(endpoint)) drop(endpoint);
    },
    states: () => Object.fromEntries([...breakers].map(([k, b]) => [k, stateOf(b)])),
    close() {
      if (rotateTimer) clearInterval(rotateTimer);
      for (const b of breakers.values()) b.shutdown();
      breakers.clear();
    },
  };
}
