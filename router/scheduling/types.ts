/**
 * The scheduling framework's contracts (after the Gateway API Inference
 * Extension's endpoint picker): a profile runs filters → weighted scorers →
 * one picker over an immutable snapshot of a pool's endpoints. Plugins are
 * registered by kebab-case type name and composed into profiles by config.
 *
 * Scores travel as arrays aligned with the candidate list rather than maps:
 * at a thousand endpoints per pool that keeps a decision allocation-light.
 */
import type { EndpointView } from '../upstream/endpoints.js';

/** What scheduling knows about the request. */
export interface SchedulingRequest {
  readonly requestId: string;
  readonly model: string;
  readonly version: string;
  /** `routing.session_key`, '' when none. */
  readonly sessionKey: string;
  /** Chained block hashes of the canonical prompt for a block size (computed once per size). */
  prefixHashes(blockChars: number): readonly number[];
  /** Endpoints already tried by this request; never picked again. */
  readonly exclude: ReadonlySet<string>;
}

/** Removes endpoints that must not take the request. */
export interface Filter {
  readonly type: string;
  filter(req: SchedulingRequest, endpoints: readonly EndpointView[]): readonly EndpointView[];
}

/** Scores endpoints in [0, 1] (higher is better), aligned with `endpoints`. */
export interface Scorer {
  readonly type: string;
  score(req: SchedulingRequest, endpoints: readonly EndpointView[]): ArrayLike<number>;
}

/** Chooses one endpoint from the scored candidates; returns its index, or -1 when none. */
export interface Picker {
  readonly type: string;
  pick(endpoints: readonly EndpointView[], totals: ArrayLike<number>): number;
}

/** What plugin factories may use. */
export interface PluginDeps {
  /** Uniform randomness in [0, 1) (injectable for tests). */
  readonly random: () => number;
  /** Queue depth (sidecar queue + engine waiting) at which an endpoint counts as saturated. */
  readonly saturationQueueDepth: number;
  /** Most endpoints, in percent of those reaching the filter, that open breakers may remove. */
  readonly maxEjectionPercent: number;
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
export interface SchedulingDecision {
  readonly profile: string;
  /** The chosen endpoint; undefined when every endpoint was filtered out. */
  readonly picked: EndpointView | undefined;
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
