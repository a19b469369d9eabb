/**
 * One upstream attempt: one `Engine.GenerateStream` call to one endpoint,
 * guarded by its circuit breaker, watched by a first-token timeout and an
 * inter-chunk idle timeout, and relayed chunk by chunk. Whatever ends it
 * early is thrown as an {@link AttemptFailure} classified by the failure
 * policy, after the breaker has been told.
 */
import type * as grpc from '@grpc/grpc-js';
import type { CancelSignal } from '../../common/cancellation.js';
import type { RelayChunk } from '../../common/chunk-relay.js';
import { errors } from '../../common/errors.js';
import type { GenerateRequest } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { CACHE_KEY } from '../../common/metadata.js';
import { openRelayStream } from '../../common/proto.js';
import { AttemptFailure, classifyFailure, type OutcomeKind } from '../request/failure-policy.js';
import type { Breakers } from './breakers.js';
import type { EngineCalls } from './endpoints.js';

/** Where an attempt's chunks go. */
export interface AttemptSink {
  /** Called for each chunk; when it returns a promise the next upstream read waits for it (backpressure). */
  chunk(chunk: RelayChunk): Promise<void> | undefined;
}

/** Everything one attempt needs. */
export interface AttemptSpec {
  endpoint: string;
  /** The endpoint's Engine calls (router/upstream/endpoints.ts). */
  client: EngineCalls;
  request: GenerateRequest;
  metadata: grpc.Metadata;
  /** The request's absolute deadline (epoch ms). */
  deadline: number;
  /** Aborted when the client goes away. */
  signal: CancelSignal;
  /** Longest wait for the first chunk (already bounded by the deadline share). */
  firstTokenTimeoutMs: number;
  /** Longest silence between chunks once the stream started. */
  idleTimeoutMs: number;
  /** Send even though the breaker is open (the ejection cap kept the endpoint). */
  force: boolean;
  /** Receives each chunk (a method, not a closure: the per-chunk path reads one object). */
  sink: AttemptSink;
  /**
   * True while the endpoint has requests waiting: a first-token timeout is
   * then the pod's load (neutral), not a hang (an endpoint fault).
   */
  busy?: () => boolean;
  /** Called once with the sidecar's `x-llmmesh-cache` header, if it sends one. */
  onCache?: (value: string) => void;
  /** Called when the first chunk arrives, before the sink gets it. */
  onFirstChunk?: () => void;
}

/** What an attempt needs from the router. */
export interface AttemptDeps {
  breakers: Breakers;
  /** Counts the stream in the endpoint's router-side load; returns the release. */
  track: (endpoint: string) => () => void;
  now: () => number;
}

type Permit = ReturnType<Breakers['acquire']>;

/**
 * One attempt's upstream call, read in flowing mode with pause/resume (not
 * `for await`: no promise and no extra ticks per chunk), and its outcome:
 * the relay settles the breaker, its timers and its load count itself and
 * then settles {@link Relay.outcome}, so no suspended async function is
 * held for the life of a stream. Everything a chunk reads or writes on its
 * way to the sink is a field of this one object.
 */
class Relay {
  /** The first chunk arrived. */
  started = false;
  /** The final chunk went to the sink: whatever the call does next, the stream is complete. */
  finished = false;
  /** The relay failed (an error, a throwing sink): later chunks are dropped. */
  failed = false;
  /** The outcome was decided (the call ended, or failed). */
  private settled = false;
  /** The sink asked to wait: time spent so is not the endpoint's silence. */
  waitingOnClient = false;
  /** When the last chunk arrived (performance.now(), the timers' clock): read when the idle timer fires, not re-armed per chunk. */
  lastChunkAt = 0;
  timedOut: OutcomeKind | undefined;
  timer: NodeJS.Timeout;
  /** The sink's pending promise, while the call is paused for it. */
  waiting: Promise<void> | undefined;
  /** Resolves when the stream completed with its last chunk relayed; rejects with the attempt's failure. */
  readonly outcome: Promise<void>;
  private readonly sink: AttemptSink;
  private resolve!: () => void;
  private reject!: (err: unknown) => void;

  constructor(
    private readonly spec: AttemptSpec,
    private readonly deps: AttemptDeps,
    private readonly call: grpc.ClientReadableStream<RelayChunk>,
    private readonly permit: Permit,
    private readonly release: () => void,
  ) {
    this.sink = spec.sink;
    this.timer = setTimeout(this.onTimer, spec.firstTokenTimeoutMs);
    this.outcome = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** Starts reading (after the caller's own listeners). */
  listen(): void {
    this.spec.signal.addEventListener('abort', this.abort, { once: true });
    this.call.on('data', this.onData);
    // `on`, not `once`: each fires at most once (and `fail` acts once), and a
    // once-wrapper is three more objects per stream.
    this.call.on('error', this.fail);
    this.call.on('end', this.onEnd);
  }

  private readonly onData = (chunk: RelayChunk): void => {
    if (this.failed) return;
    if (!this.started) this.start();
    if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') this.finished = true;
    let pending: Promise<void> | undefined;
    try {
      pending = this.sink.chunk(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    this.lastChunkAt = performance.now();
    if (pending) this.waitFor(pending);
  };

  private start(): void {
    this.started = true;
    this.permit.settle('success');
    clearTimeout(this.timer);
    this.timer = setTimeout(this.onTimer, this.spec.idleTimeoutMs);
    this.spec.onFirstChunk?.();
  }

  /** The client cannot take more yet: stop reading (backpressure to the pod). */
  private waitFor(pending: Promise<void>): void {
    this.waitingOnClient = true;
    this.call.pause();
    const w = pending.then(() => {
      if (this.waiting === w) this.waiting = undefined;
      this.waitingOnClient = false;
      this.lastChunkAt = performance.now();
      this.timer.refresh();
      if (!this.failed) this.call.resume();
    }, this.fail);
    this.waiting = w;
  }

  private readonly fail = (err: unknown): void => {
    if (this.failed) return;
    this.failed = true;
    this.call.pause();
    this.failWith(err);
  };

  private readonly onEnd = (): void => {
    const waiting = this.waiting;
    if (waiting) waiting.then(() => !this.failed && this.complete());
    else if (!this.failed) this.complete();
  };

  /** The stream ended with every chunk relayed. */
  private complete(): void {
    this.finish(() => {
      // A stream that ended cleanly without a single chunk still answered.
      if (!this.started) this.permit.settle('success');
      return undefined;
    });
  }

  /** The call failed (or was cancelled): tell the breaker, classify, reject. */
  private failWith(err: unknown): void {
    this.finish(() => {
      const { spec, deps, permit } = this;
      // A pod that fails after its final chunk (a drain, a crash before the
      // trailers) has delivered everything: the stream is complete.
      if (this.finished && !spec.signal.aborted) return undefined;
      const deadlinePassed = deps.now() >= spec.deadline;
      const timedOut = this.timedOut;
      // A timeout that fired at the deadline is the client's deadline, not the endpoint's fault.
      const failure =
        timedOut && !deadlinePassed && !spec.signal.aborted
          ? new AttemptFailure(timedOut, timeoutError(spec, timedOut))
          : classifyFailure(err, { clientCancelled: spec.signal.aborted, deadlinePassed });
      if (!this.started) permit.settle(failure.policy.endpointFault ? 'endpoint-fault' : 'neutral');
      else if (failure.policy.endpointFault) deps.breakers.recordFailure(spec.endpoint);
      return failure;
    });
  }

  /**
   * Ends the attempt, once: `outcome` tells the breaker and returns the
   * failure (undefined: the stream is complete). It runs in the call's event
   * handlers and promise callbacks, so nothing it or the clean-up throws (a
   * breaker listener, say) may escape: that becomes the attempt's failure,
   * and what the attempt held is freed whatever happens.
   */
  private finish(outcome: () => unknown): void {
    if (this.settled) return;
    this.settled = true;
    let failure: unknown;
    try {
      failure = outcome();
    } catch (err) {
      failure = err ?? new Error('attempt failed');
    }
    try {
      this.cleanUp(failure === undefined);
    } catch (err) {
      failure ??= err ?? new Error('attempt clean-up failed');
    }
    if (failure === undefined) this.resolve();
    else this.reject(failure);
  }

  /** Frees what the attempt held: its probe slot (if not settled yet), timer, listener, load count; cancels an unfinished call. */
  private cleanUp(completed: boolean): void {
    try {
      // Only the first settle counts: this frees a probe slot on any path not settled above.
      this.permit.settle('neutral');
    } finally {
      clearTimeout(this.timer);
      this.spec.signal.removeEventListener('abort', this.abort);
      this.release();
      if (!completed) this.call.cancel();
    }
  }

  private readonly onTimer = (): void => {
    const spec = this.spec;
    // Time spent waiting for the client to read is not the endpoint's silence.
    if (this.waitingOnClient) return;
    if (this.started) {
      const quiet = performance.now() - this.lastChunkAt;
      if (quiet < spec.idleTimeoutMs) {
        this.timer = setTimeout(this.onTimer, Math.max(1, Math.ceil(spec.idleTimeoutMs - quiet)));
        return;
      }
    }
    this.timedOut = this.started ? 'idle-timeout' : spec.busy?.() ? 'overloaded' : 'first-token-timeout';
    this.call.cancel();
  };

  private readonly abort = (): void => this.call.cancel();
}

/**
 * Runs one attempt to completion. Resolves when the upstream stream ended
 * with its last chunk relayed; rejects with a `BreakerOpenError` when the
 * breaker refused it (nothing was sent), else with an {@link AttemptFailure}.
 */
export function runAttempt(spec: AttemptSpec, deps: AttemptDeps): Promise<void> {
  let permit: Permit;
  try {
    // Throws BreakerOpenError before anything is sent.
    permit = deps.breakers.acquire(spec.endpoint, { force: spec.force });
  } catch (err) {
    return Promise.reject(err);
  }
  const release = deps.track(spec.endpoint);
  let call: grpc.ClientReadableStream<RelayChunk>;
  try {
    call = spec.client.call((client) =>
      openRelayStream(client, spec.request, spec.metadata, { deadline: spec.deadline }),
    );
  } catch (err) {
    permit.settle('neutral');
    release();
    return Promise.reject(
      classifyFailure(err, { clientCancelled: spec.signal.aborted, deadlinePassed: false }),
    );
  }
  // Errors reach the relay; this keeps a late one (after we stopped
  // reading) from becoming an uncaught exception.
  call.on('error', () => {});
  if (spec.onCache) {
    const onCache = spec.onCache;
    call.once('metadata', (m: grpc.Metadata) => {
      const cache = m.get(CACHE_KEY)[0];
      if (cache !== undefined) onCache(String(cache));
    });
  }
  const relay = new Relay(spec, deps, call, permit, release);
  relay.listen();
  return relay.outcome;
}

function timeoutError(spec: AttemptSpec, kind: OutcomeKind) {
  if (kind === 'idle-timeout')
    return errors.unavailable(`no token for ${spec.idleTimeoutMs} ms (stream stalled)`);
  const wait = `no first token within ${spec.firstTokenTimeoutMs} ms`;
  return kind === 'overloaded'
    ? errors.unavailable(`${wait} (requests are queued there)`)
    : errors.unavailable(wait);
}

/**
 * How long an attempt starting now may wait for its first chunk: the
 * configured timeout, or `share` of the time left before the deadline when
 * that is sooner, so that a hung endpoint leaves time for another one.
 */
export function firstTokenTimeout(timeoutMs: number, share: number, deadline: number, now: number): number {
  const left = Math.max(0, deadline - now);
  return Math.max(1, Math.min(timeoutMs, Math.floor(left * share)));
}
