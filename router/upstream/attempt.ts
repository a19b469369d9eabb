/**
 * One upstream attempt: one `Engine.GenerateStream` call to one endpoint,
 * guarded by its circuit breaker, watched by a first-token timeout and an
 * inter-chunk idle timeout, and relayed chunk by chunk. Whatever ends it
 * early is thrown as an {@link AttemptFailure} classified by the failure
 * policy, after the breaker has been told.
 */
import type * as grpc from '@grpc/grpc-js';
import type { RelayChunk } from '../../common/chunk-relay.js';
import { errors } from '../../common/errors.js';
import type { GenerateRequest } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { CACHE_KEY } from '../../common/metadata.js';
import type { RelayEngineClient } from '../../common/proto.js';
import type { CancelSignal } from '../request/cancellation.js';
import { AttemptFailure, classifyFailure, type OutcomeKind } from '../request/failure-policy.js';
import type { Breakers } from './breakers.js';

/** Everything one attempt needs. */
export interface AttemptSpec {
  endpoint: string;
  client: RelayEngineClient;
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
  /** Called for each chunk; when it returns a promise the next upstream read waits for it (backpressure). */
  onChunk: (chunk: RelayChunk) => Promise<void> | undefined;
  /**
   * True while the endpoint has requests waiting: a first-token timeout is
   * then the pod's load (neutral), not a hang (an endpoint fault).
   */
  busy?: () => boolean;
  /** Called once with the sidecar's `x-llmmesh-cache` header, if it sends one. */
  onCache?: (value: string) => void;
  /** Called when the first chunk arrives. */
  onFirstChunk?: () => void;
}

/** What an attempt needs from the router. */
export interface AttemptDeps {
  breakers: Breakers;
  /** Counts the stream in the endpoint's router-side load; returns the release. */
  track: (endpoint: string) => () => void;
  now: () => number;
}

/**
 * Runs one attempt to completion. Resolves when the upstream stream ended
 * with its last chunk relayed; rejects with a `BreakerOpenError` when the
 * breaker refused it (nothing was sent), else with an {@link AttemptFailure}.
 */
export async function runAttempt(spec: AttemptSpec, deps: AttemptDeps): Promise<void> {
  const { breakers, now } = deps;
  // Throws BreakerOpenError before anything is sent.
  const permit = breakers.acquire(spec.endpoint, { force: spec.force });
  const release = deps.track(spec.endpoint);
  let call: grpc.ClientReadableStream<RelayChunk>;
  try {
    call = spec.client.GenerateStream(spec.request, spec.metadata, { deadline: spec.deadline });
  } catch (err) {
    permit.settle('neutral');
    release();
    throw classifyFailure(err, { clientCancelled: spec.signal.aborted, deadlinePassed: false });
  }
  // Errors reach the iterator; this keeps a late one (after we stopped
  // reading) from becoming an uncaught exception.
  call.on('error', () => {});
  if (spec.onCache) {
    const onCache = spec.onCache;
    call.once('metadata', (m: grpc.Metadata) => {
      const cache = m.get(CACHE_KEY)[0];
      if (cache !== undefined) onCache(String(cache));
    });
  }
  let timedOut: OutcomeKind | undefined;
  let waitingOnClient = false;
  let started = false;
  /** When the last chunk arrived (performance.now(), the timers' clock): read when the idle timer fires, not re-armed per chunk. */
  let lastChunkAt = 0;
  const onTimer = () => {
    // Time spent waiting for the client to read is not the endpoint's silence.
    if (waitingOnClient) return;
    if (started) {
      const quiet = performance.now() - lastChunkAt;
      if (quiet < spec.idleTimeoutMs) {
        timer = setTimeout(onTimer, Math.max(1, Math.ceil(spec.idleTimeoutMs - quiet)));
        return;
      }
    }
    timedOut = started ? 'idle-timeout' : spec.busy?.() ? 'overloaded' : 'first-token-timeout';
    call.cancel();
  };
  let timer = setTimeout(onTimer, spec.firstTokenTimeoutMs);
  const onAbort = () => call.cancel();
  spec.signal.addEventListener('abort', onAbort, { once: true });
  let completed = false;
  /** The final chunk went to the client: whatever the call does next, the stream is complete. */
  let finished = false;
  try {
    // Flowing mode with pause/resume, not `for await`: no promise and no
    // extra ticks per chunk on the hot path.
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      let waiting: Promise<void> | undefined;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        call.pause();
        reject(err);
      };
      call.on('data', (chunk: RelayChunk) => {
        if (failed) return;
        if (!started) {
          started = true;
          permit.settle('success');
          clearTimeout(timer);
          timer = setTimeout(onTimer, spec.idleTimeoutMs);
          spec.onFirstChunk?.();
        }
        if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') finished = true;
        let pending: Promise<void> | undefined;
        try {
          pending = spec.onChunk(chunk);
        } catch (err) {
          fail(err);
          return;
        }
        lastChunkAt = performance.now();
        if (!pending) return;
        // The client cannot take more yet: stop reading (backpressure to the pod).
        waitingOnClient = true;
        call.pause();
        const w = pending.then(() => {
          if (waiting === w) waiting = undefined;
          waitingOnClient = false;
          lastChunkAt = performance.now();
          timer.refresh();
          if (!failed) call.resume();
        }, fail);
        waiting = w;
      });
      call.once('error', fail);
      call.once('end', () => {
        if (waiting) waiting.then(() => !failed && resolve());
        else if (!failed) resolve();
      });
    });
    completed = true;
    // A stream that ended cleanly without a single chunk still answered.
    if (!started) permit.settle('success');
  } catch (err) {
    // A pod that fails after its final chunk (a drain, a crash before the
    // trailers) has delivered everything: the stream is complete.
    if (finished && !spec.signal.aborted) {
      completed = true;
      return;
    }
    const deadlinePassed = now() >= spec.deadline;
    // A timeout that fired at the deadline is the client's deadline, not the endpoint's fault.
    const failure =
      timedOut && !deadlinePassed && !spec.signal.aborted
        ? new AttemptFailure(timedOut, timeoutError(spec, timedOut))
        : classifyFailure(err, { clientCancelled: spec.signal.aborted, deadlinePassed });
    if (!started) permit.settle(failure.policy.endpointFault ? 'endpoint-fault' : 'neutral');
    else if (failure.policy.endpointFault) breakers.recordFailure(spec.endpoint);
    throw failure;
  } finally {
    // Only the first settle counts: this frees a probe slot on any path not settled above.
    permit.settle('neutral');
    clearTimeout(timer);
    spec.signal.removeEventListener('abort', onAbort);
    release();
    if (!completed) call.cancel();
  }
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
