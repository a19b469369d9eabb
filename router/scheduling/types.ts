/**
 * The scheduling framework's contracts (after the Gateway API Inference
 * Extension's endpoint picker): a profile runs filters → weighted scorers →
 * one picker over an immutable snapshot of a pool's endpoints. Plugins are
 * registered by kebab-case type name and composed into profiles by config.
 *
 * Scores travel as arrays aligned with the candidate list rather than maps:
 * at a thousand endpoints per pool that keeps a decision allocation-light.
 */
import type { LoadReport__Output } from '../../common/generated/llmmesh/v1/LoadReport.js';
import type { PrefixIndexView } from '../upstream/prefix-index.js';
import type { LoadHistory } from './knee.js';
import type { RecentAssignments } from './load.js';
import type { PrefixBalance } from './scorers.js';

/** Circuit breaker state of an endpoint, as scheduling sees it. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * What scheduling reads of one endpoint at one instant (never mutated). The
 * router's endpoint set builds these from load reports; a benchmark or a test
 * may build them from anything else.
 */
export interface SchedulingEndpoint {
  readonly address: string;
  /** Connected, reported ready, not draining, report fresh. */
  readonly ready: boolean;
  /**
   * Connected, ready and not draining by its last report, but that report is
   * older than the staleness limit (absent: false). A late report (a busy
   * machine, this router included, delays them) makes the endpoint a
   * fallback, taken when no endpoint with a fresh report is: it degrades the
   * choice, it does not fail the request.
   */
  readonly stale?: boolean;
  readonly draining: boolean;
  /** Streams this router has open to the endpoint now. */
  readonly routerInFlight: number;
  /**
   * `routerInFlight` when the last report arrived: the difference is what the
   * report cannot know yet (absent: assume nothing changed since).
   */
  readonly routerInFlightAtReport?: number;
  /** The endpoint's last load report. */
  readonly report: LoadReport__Output | undefined;
  /** This router's recent assignments to the endpoint (a decaying count); absent: none. */
  readonly recent?: RecentAssignments;
  /** What earlier reports taught (learned knee, queueing streak); absent: nothing yet. */
  readonly history?: LoadHistory;
  /** Its circuit breaker; `half-open` means one probe may go through now. */
  readonly breaker: BreakerState;
  /** Share of endpoint faults among its recent attempts (0..1). */
  readonly failureRatio: number;
  /** Endpoint faults in a row, up to now. */
  readonly consecutiveFailures: number;
  /** The endpoint's prefix index (read synchronously during a decision). */
  readonly prefixIndex: PrefixIndexView;
}

/** What scheduling knows about the request. */
export interface SchedulingRequest {
  readonly requestId: string;
  readonly model: string;
  readonly version: string;
  /** `routing.session_key`, '' when none. */
  readonly sessionKey: string;
  /** Chained block hashes of the canonical prompt for a block size (computed once per size). */
  prefixHashes(blockChars: number): readonly number[];
  /** Length of the canonical prompt in characters (0 when unknown). */
  readonly promptChars?: number;
  /** Endpoints already tried by this request; never picked again. */
  readonly exclude: ReadonlySet<string>;
}

/** Removes endpoints that must not take the request. */
export interface Filter {
  readonly type: string;
  /**
   * True for a filter that removes endpoints with an open breaker: an open
   * endpoint it lets through anyway (an ejection cap) is a deliberate, forced try.
   */
  readonly ejectsOpenBreakers?: boolean;
  filter(req: SchedulingRequest, endpoints: readonly SchedulingEndpoint[]): readonly SchedulingEndpoint[];
}

/** Scores endpoints in [0, 1] (higher is better), aligned with `endpoints`. */
export interface Scorer {
  readonly type: string;
  score(req: SchedulingRequest, endpoints: readonly SchedulingEndpoint[]): ArrayLike<number>;
}

/** Chooses one endpoint from the scored candidates; returns its index, or -1 when none. */
export interface Picker {
  readonly type: string;
  pick(endpoints: readonly SchedulingEndpoint[], totals: ArrayLike<number>): number;
}

/** What plugin factories may use. */
export interface PluginDeps {
  /** Uniform randomness in [0, 1) (injectable for tests). */
  readonly random: () => number;
  /** Queue depth (sidecar queue + engine waiting) at which an endpoint counts as saturated. */
  readonly saturationQueueDepth: number;
  /** Most endpoints, in percent of those reaching the filter, that open breakers may remove. */
  readonly maxEjectionPercent: number;
  /** The clock of `recent` assignment times (default `Date.now`). */
  readonly now?: () => number;
  /** When `prefix-cache` lets a hot prefix spread to another pod (default {@link DEFAULT_PREFIX_BALANCE}). */
  readonly prefixBalance?: PrefixBalance;
}

/** One candidate of a decision, for traces and logs. */
export interface CandidateTrace {
  address: string;
  /** Score by scorer type (before weighting). */
  scores: Record<string, number>;
  /** Failure penalty in [0, 1] (health.ts): the weighted sum was multiplied by 1 − penalty. */
  penalty: number;
  /** Weighted sum, after the failure penalty. */
  total: number;
}

/** A scheduling decision, kept for tracing (span events) and debugging. */
export interface SchedulingDecision<E extends SchedulingEndpoint = SchedulingEndpoint> {
  readonly profile: string;
  /** The chosen endpoint; undefined when every endpoint was filtered out. */
  readonly picked: E | undefined;
  /** Endpoints in the pool before filtering. */
  readonly poolSize: number;
  /** Endpoints left after each filter, in order, then after the health step (`prefer-healthy`). */
  readonly filtered: ReadonlyArray<{ type: string; remaining: number }>;
  /** Time per plugin (`filter/ready`, `scorer/prefix-cache`, `picker/max-score`), in ms. */
  readonly pluginMs: Readonly<Record<string, number>>;
  /** Whole decision time, in ms. */
  readonly totalMs: number;
  /** The scored candidates (built on demand: decisions are cheap until traced). */
  candidates(): CandidateTrace[];
  /** A JSON-friendly summary. */
  toJSON(): unknown;
}
