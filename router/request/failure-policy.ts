/**
 * The one table from an upstream attempt's outcome to what the router does
 * about it. Every failure of an attempt is classified once, here, into an
 * {@link OutcomeKind}; the breaker, the retry before the first chunk and the
 * migration after it all read {@link FAILURE_POLICY} instead of asking
 * predicates of their own.
 */
import { isClientFault, MeshError, Status } from '../../common/errors.js';
import { HANDBACK_KEY } from '../../common/metadata.js';

/** What ended an upstream attempt that did not complete. */
export type OutcomeKind =
  /** The endpoint could not be reached, reset the stream, or answered UNAVAILABLE (engine 502/503/504, crash). */
  | 'unavailable'
  /** The endpoint answered INTERNAL / UNKNOWN / ABORTED (an engine 5xx, a broken stream). */
  | 'internal'
  /** No first chunk within the first-token timeout. */
  | 'first-token-timeout'
  /** No chunk within the idle timeout after the stream started. */
  | 'idle-timeout'
  /** A draining sidecar handed the stream back ("continue elsewhere"). */
  | 'handback'
  /** The endpoint is overloaded (engine 429, sidecar queue full). */
  | 'overloaded'
  /** The request itself is at fault (bad input, unknown model, permission). */
  | 'client-fault'
  /** The client cancelled. */
  | 'cancelled'
  /** The client's deadline passed. */
  | 'deadline';

/** What the router does about one kind of outcome. */
export interface FailurePolicy {
  /** Counts against the endpoint's breaker (and its recent-failure score). */
  endpointFault: boolean;
  /** May be retried on another endpoint when no chunk reached the client yet. */
  retryBeforeFirstChunk: boolean;
  /** May continue on another endpoint after chunks reached the client. */
  migrateAfterFirstChunk: boolean;
}

/** The table. */
export const FAILURE_POLICY: Readonly<Record<OutcomeKind, FailurePolicy>> = {
  unavailable: { endpointFault: true, retryBeforeFirstChunk: true, migrateAfterFirstChunk: true },
  internal: { endpointFault: true, retryBeforeFirstChunk: true, migrateAfterFirstChunk: true },
  'first-token-timeout': { endpointFault: true, retryBeforeFirstChunk: true, migrateAfterFirstChunk: true },
  'idle-timeout': { endpointFault: true, retryBeforeFirstChunk: true, migrateAfterFirstChunk: true },
  handback: { endpointFault: false, retryBeforeFirstChunk: true, migrateAfterFirstChunk: true },
  overloaded: { endpointFault: false, retryBeforeFirstChunk: true, migrateAfterFirstChunk: true },
  'client-fault': { endpointFault: false, retryBeforeFirstChunk: false, migrateAfterFirstChunk: false },
  cancelled: { endpointFault: false, retryBeforeFirstChunk: false, migrateAfterFirstChunk: false },
  deadline: { endpointFault: false, retryBeforeFirstChunk: false, migrateAfterFirstChunk: false },
};

/** An attempt's failure, classified. */
export class AttemptFailure extends MeshError {
  readonly kind: OutcomeKind;
  constructor(kind: OutcomeKind, error: MeshError) {
    super(error.code, error.message, {
      cause: error,
      retryPushbackMs: error.retryPushbackMs,
      metadata: error.metadata,
    });
    this.kind = kind;
  }
  /** The policy for this failure. */
  get policy(): FailurePolicy {
    return FAILURE_POLICY[this.kind];
  }
}

/** What the attempt knew when it failed, besides the error itself. */
export interface FailureContext {
  /** The client cancelled the request. */
  clientCancelled: boolean;
  /** The request's deadline has passed. */
  deadlinePassed: boolean;
}

/**
 * Classifies what an attempt threw. The client's own cancellation and
 * deadline win over whatever the upstream call reported, since the call was
 * ended because of them.
 */
export function classifyFailure(err: unknown, ctx: FailureContext): AttemptFailure {
  if (err instanceof AttemptFailure) return err;
  const e = MeshError.from(err);
  if (ctx.clientCancelled) return new AttemptFailure('cancelled', e);
  if (ctx.deadlinePassed || e.code === Status.DEADLINE_EXCEEDED) return new AttemptFailure('deadline', e);
  if (handbackReason(err) !== undefined) return new AttemptFailure('handback', e);
  switch (e.code) {
    case Status.UNAVAILABLE:
      return new AttemptFailure('unavailable', e);
    case Status.INTERNAL:
    case Status.UNKNOWN:
    case Status.ABORTED:
    case Status.DATA_LOSS:
      return new AttemptFailure('internal', e);
    case Status.RESOURCE_EXHAUSTED:
      return new AttemptFailure('overloaded', e);
    case Status.CANCELLED:
      // The client did not cancel, so the endpoint (or the path to it) did:
      // a sidecar shutting down, a proxy in between.
      return new AttemptFailure('unavailable', e);
    default:
      return new AttemptFailure(isClientFault(e.code) ? 'client-fault' : 'internal', e);
  }
}

/** The `x-llmmesh-handback` trailer of a gRPC error, if the sidecar set one. */
export function handbackReason(err: unknown): string | undefined {
  const md = (err as { metadata?: { get?: (key: string) => unknown[] } } | undefined)?.metadata;
  const value = typeof md?.get === 'function' ? md.get(HANDBACK_KEY)[0] : undefined;
  return value === undefined ? undefined : String(value);
}
