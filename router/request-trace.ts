/**
 * What the router decided for one request, kept so that a tracer can attach
 * it to spans (`route`, `schedule`, one per attempt) and tests can inspect it.
 */
import type { VersionChoice } from './routing/version-split.js';
import type { SchedulingDecision } from './scheduling/types.js';

/** One upstream attempt. */
export interface AttemptTrace {
  endpoint: string;
  /** The scheduling decision that chose it. */
  decision: SchedulingDecision;
  /** Sent although its breaker was open (the ejection cap kept it in the pool). */
  forced: boolean;
  outcome: 'ok' | 'retried' | 'migrated' | 'failed' | 'cancelled' | 'breaker_open';
  /** How the failure was classified (router/request/failure-policy.ts). */
  kind?: string;
  /** Set on an attempt that continued a stream another endpoint started: how it was continued. */
  continuation?: 'token_ids' | 'text';
  /** gRPC status name of a failure. */
  code?: string;
  error?: string;
  /** The sidecar's `x-llmmesh-cache` header, when it sent one. */
  cache?: string;
  /** Chunks relayed to the client from this attempt (set when the attempt ends). */
  chunks: number;
  /** When the attempt started, ms after the request arrived. */
  startMs: number;
  /** When its first chunk arrived, ms after the request arrived (undefined: none did). */
  firstChunkMs?: number;
}

/** The routing story of one request. */
export interface RequestTrace {
  requestId: string;
  traceId: string;
  /** Arrival time (epoch ms, the router's clock). */
  receivedAt: number;
  model: string;
  /** The authenticated tenant, when auth is on. */
  tenant?: string;
  /** The version decision, with `fallbackFrom` when the chosen version could not serve. */
  version: VersionChoice | undefined;
  priority: number;
  /** Time spent in the admission queue, ms. */
  queuedMs: number;
  /** Absolute deadline (epoch ms) and whether it came from the client. */
  deadline: number;
  deadlineFromClient: boolean;
  attempts: AttemptTrace[];
  /** Final gRPC status name. */
  status: string;
}
