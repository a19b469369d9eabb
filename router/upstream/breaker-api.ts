/**
 * The breakers' contract: attempt outcomes, permits, health, the open-breaker
 * error and the classification of errors into outcomes. The implementation
 * is in breakers.ts (which re-exports all of this).
 */
import type { EventEmitter } from 'node:events';
import { MeshError, Status } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { BreakerConfig } from '../config/schema.js';
import type { BreakerState } from './endpoints.js';

/** How an attempt ended, as far as its endpoint's health is concerned. */
export type AttemptOutcome = 'success' | 'endpoint-fault' | 'neutral';

/** A state change of one endpoint's breaker. */
export interface BreakerTransition {
  endpoint: string;
  from: BreakerState;
  to: BreakerState;
  /** Why it opened (`5 consecutive failures`, `error rate 60% of 10 attempts`, `probe failed`). */
  reason?: string;
}

/** Leave to make one attempt; settle it exactly once (later calls are ignored). */
export interface BreakerPermit {
  /** This attempt is the half-open breaker's one probe: its outcome closes or reopens the breaker. */
  readonly probe: boolean;
  /** This attempt bypassed an open breaker (`force`); its success closes the breaker. */
  readonly forced: boolean;
  settle(outcome: AttemptOutcome): void;
}

/** An endpoint's recent health, for scoring. */
export interface EndpointHealth {
  /** Share of endpoint faults among the attempts of the rolling window (0..1; 0 when none). */
  readonly failureRatio: number;
  /** Endpoint faults since the last success, each within a window of the one before (older ones are forgotten). */
  readonly consecutiveFailures: number;
}

/** Options of {@link createBreakers}. */
export interface BreakersOptions {
  config: BreakerConfig;
  logger: Logger;
  /**
   * Drives the rolling statistics window: one `rotate` event moves it by one
   * bucket (of {@link WINDOW_BUCKETS}). Default: a timer every `window_ms / 10`.
   * Tests pass their own.
   */
  rotateBucketController?: EventEmitter;
}

/** The per-endpoint breakers. */
export interface Breakers {
  /** Current state; `closed` for an endpoint never seen. */
  state(endpoint: string): BreakerState;
  /** True when an attempt would be admitted now: closed, or half-open with its probe slot free. */
  probeAvailable(endpoint: string): boolean;
  /**
   * Admits one attempt: a permit, or throws {@link BreakerOpenError} (open, or
   * half-open with its probe taken). `force` bypasses an open breaker (the
   * ejection cap kept the endpoint in the pool).
   */
  acquire(endpoint: string, options?: { force?: boolean }): BreakerPermit;
  /** A failure after the permit was settled (mid-stream): counts in the window and the consecutive count, may open. */
  recordFailure(endpoint: string): void;
  /** Recent health for scoring (cached: cheap to call per view). */
  health(endpoint: string): EndpointHealth;
  /** New settings, applied in place: every breaker keeps its state (a window change restarts the counts). */
  configure(config: BreakerConfig): void;
  /** Drops the breakers of endpoints not in `addresses`. */
  retain(addresses: Iterable<string>): void;
  /** States of every breaker known. */
  states(): Record<string, BreakerState>;
  /**
   * Emits `transition` ({@link BreakerTransition}), and `health` (the endpoint's
   * address) when an endpoint fault was counted or its counts were reset.
   */
  readonly events: EventEmitter;
  close(): void;
}

/** Buckets of the rolling window. */
export const WINDOW_BUCKETS = 10;

/** The error a breaker rejects with while open. */
export class BreakerOpenError extends MeshError {
  readonly breakerOpen = true;
  constructor(endpoint: string) {
    super(Status.UNAVAILABLE, `endpoint ${endpoint}: circuit breaker open`);
  }
}

/** True for the rejection of an open breaker (the endpoint was not called). */
export function isBreakerOpen(err: unknown): err is BreakerOpenError {
  return err instanceof BreakerOpenError;
}
