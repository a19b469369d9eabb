/**
 * What every stage of the request pipeline shares: the long-lived objects of
 * one router (built by the composition root in router/server.ts) and the
 * per-request scope the lifecycle creates.
 */
import type { Context, Span, Tracer } from '@opentelemetry/api';
import type { CancelSignal } from '../../common/cancellation.js';
import type { RelayChunk } from '../../common/chunk-relay.js';
import type { Logger } from '../../common/log.js';
import type { TraceContext } from '../../common/trace-context.js';
import type { Admission } from '../admission/admission.js';
import type { Gate } from '../auth/gate.js';
import type { Canary } from '../canary/controller.js';
import type { Datastore } from '../datastore.js';
import type { RouterMetrics } from '../metrics.js';
import type { RequestTrace } from '../request-trace.js';
import type { SplitTracker } from '../routing/split-tracker.js';
import type { Breakers } from '../upstream/breakers.js';
import type { EndpointSet } from '../upstream/endpoints.js';
import type { RetryBudget } from '../upstream/retry-budget.js';

/** The long-lived objects of one router. */
export interface RouterContext {
  readonly datastore: Datastore;
  readonly endpoints: EndpointSet;
  readonly breakers: Breakers;
  readonly admission: Admission;
  readonly gate: Gate;
  readonly retryBudget: RetryBudget;
  readonly metrics: RouterMetrics;
  readonly split: SplitTracker;
  readonly tracer: Tracer;
  readonly log: Logger;
  readonly now: () => number;
  readonly random: () => number;
  /** Canary analysis: effective weights, per-version windows, cost (router/canary/). */
  readonly canary?: Canary;
}

/** What served a request. */
export interface Served {
  version: string;
  /** The endpoint that sent the first chunk. */
  endpoint: string;
  /** How the sidecar served it (its `x-llmmesh-cache` header), passed on to the client. */
  cache?: string;
  /** The request id (the client's, or the one the router gave it). */
  requestId: string;
}

/**
 * Receives each chunk for the client; returns a promise only when the client
 * cannot take more yet (no promise per chunk on the hot path).
 */
export type ChunkSink = (chunk: RelayChunk, served: Served) => Promise<void> | undefined;

/** The spans of one request, passed down so each stage can add children. */
export interface RequestSpans {
  /** The router's server span. */
  server: Span;
  /** Context whose active span is the server span (the caller's context while the server span does not record: no child span is made then). */
  ctx: Context;
  /** The request's trace id (continued from the caller, or new). */
  trace: TraceContext;
}

/** One request as the pipeline carries it. */
export interface RequestScope {
  /** Absolute deadline (epoch ms): the client's, else the model's default. */
  readonly deadline: number;
  /** Aborted when the client cancels. */
  readonly signal: CancelSignal;
  readonly spans: RequestSpans;
  /** The routing story, filled in as the request goes. */
  readonly rt: RequestTrace;
  readonly onChunk: ChunkSink;
}
