/**
 * `Engine.GenerateStream`: validate, refuse when draining or not ready, find
 * what serves the call (see {@link createLookup}), and write its chunks back.
 * Every answer carries the initial metadata `x-llmmesh-cache` with how it
 * was served:
 *
 * | value         | meaning                                                        |
 * | ------------- | -------------------------------------------------------------- |
 * | `hit-l1`      | replayed from this sidecar's memory                            |
 * | `hit-l2`      | replayed from Redis (shared by the version's pods)             |
 * | `coalesced`   | joined an identical request already running on the engine      |
 * | `miss`        | computed by the engine, then cached                            |
 * | `bypass`      | the caller asked (`x-llmmesh-cache: bypass`), the cache is off, or the call continues a stream: no lookup, no store |
 * | `uncacheable` | not deterministic (temperature ≠ 0 and no seed)                |
 *
 * A response not computed for this call (hit or coalesced) reports the usage
 * the engine reported when it computed it, with `cached_tokens` equal to
 * `prompt_tokens`: no prompt token was computed for this call.
 *
 * A call still running when the sidecar hands its streams back (drain) ends
 * `UNAVAILABLE` with the trailer `x-llmmesh-handback: <reason>`, and its
 * engine request is aborted: the router continues the generation elsewhere.
 */
import { EventEmitter, once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { Cancellation } from '../../common/cancellation.js';
import { errors, MeshError, Status } from '../../common/errors.js';
import { HANDBACK_KEY } from '../../common/metadata.js';
import { contextFromMetadata, setSpanError } from '../../common/trace-propagation.js';
import { validateGenerateRequest } from '../../common/validate.js';
import { CACHE_CONTROL_KEY, cacheMode } from '../cache/cache-key.js';
import { continuationMode } from '../openai.js';
import type { Refusal } from '../pod-state.js';
import { createEngineRunner, type EngineRunDeps, NON_RECORDING_SPAN } from './engine-run.js';
import type { FlightFollower } from './flight.js';
import { type CacheResult, createLookup, type Served } from './lookup.js';
import { deliveredTokens, type GenerateCall, noOutcome, writeStream } from './stream-writer.js';

export type { CacheResult } from './lookup.js';

/** Payload of the handler's `cache` event. */
export interface CacheEvent {
  result: CacheResult;
  /** The cache key, for cacheable requests. */
  key?: string;
}

/** What the handler needs from the sidecar: what an engine run needs, and more. */
export interface GenerateContext extends Omit<EngineRunDeps, 'tracer'> {
  version: string;
  /** Logical model served; empty while unknown (then any model is accepted). */
  model(): string;
  /** Why new calls are refused now (draining, engine not ready), or undefined. */
  refusal(): Refusal | undefined;
  /** OpenTelemetry tracer (default: the API's, a no-op unless an SDK is started). */
  tracer?: Tracer;
}

/** The GenerateStream handler of one sidecar. */
export interface GenerateHandler {
  handle(call: GenerateCall): Promise<void>;
  /** Calls being served now. */
  readonly active: number;
  /** Identical cacheable requests running on the engine now (one flight each). */
  readonly flights: number;
  /** Resolves when no call is being served. */
  idle(): Promise<void>;
  /**
   * Ends every call being served with `UNAVAILABLE` and the trailer
   * `x-llmmesh-handback: <reason>`, aborting their engine requests; returns
   * how many were handed back.
   */
  handBack(reason: string): number;
  /** Emits `cache` ({@link CacheEvent}) for every call that got past validation. */
  readonly events: EventEmitter;
}

/** One call being served. */
interface ActiveCall {
  controller: Cancellation;
  /** Set when the call is handed back: the reason. */
  handback?: string;
}

/**
 * The status of a handed-back call: `UNAVAILABLE`, a message naming the
 * reason and the tokens delivered, and the trailer `x-llmmesh-handback`.
 */
export function handBackError(reason: string, tokens: number): MeshError {
  const metadata = new grpc.Metadata();
  metadata.set(HANDBACK_KEY, reason);
  return errors.unavailable(`pod ${reason}: stream handed back after ${tokens} tokens`, { metadata });
}

/** Creates the handler. */
export function createGenerateHandler(ctx: GenerateContext): GenerateHandler {
  const { engine, metrics } = ctx;
  const tracer = ctx.tracer ?? trace.getTracer('llmmesh-sidecar');
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const lookup = createLookup(
    ctx.version,
    ctx.cache,
    createEngineRunner({
      engine,
      admission: ctx.admission,
      prefixIndex: ctx.prefixIndex,
      cache: ctx.cache,
      metrics,
      logger: ctx.logger,
      tracer,
      servedModelName: ctx.servedModelName,
    }),
  );
  const calls = new Set<ActiveCall>();

  const handle = async (call: GenerateCall) => {
    const startedAt = performance.now();
    const self: ActiveCall = { controller: new Cancellation() };
    calls.add(self);
    const signal = self.controller.signal;
    const onCancel = self.controller.abort;
    call.once('cancelled', onCancel);
    let result: CacheResult | 'none' = 'none';
    let follower: FlightFollower | undefined;
    let status = 'OK';
    const written = noOutcome();
    const parentCtx = contextFromMetadata(call.metadata);
    const span = tracer.startSpan(
      'llmmesh.v1.Engine/GenerateStream',
      {
        kind: SpanKind.SERVER,
        attributes: {
          'rpc.system': 'grpc',
          'rpc.service': 'llmmesh.v1.Engine',
          'rpc.method': 'GenerateStream',
          'gen_ai.request.model': call.request.model,
          'llmmesh.version': ctx.version,
        },
      },
      parentCtx,
    );
    // A call whose span is not recorded (tracing off, or not sampled) records
    // no child span either: the standard samplers decide alike for a child
    // of an unsampled span, so the children are skipped without asking.
    const recording = span.isRecording();
    const spanCtx = recording ? trace.setSpan(parentCtx, span) : parentCtx;
    try {
      const req = call.request;
      validateGenerateRequest(req);
      const model = ctx.model();
      if (model && req.model !== model) {
        throw errors.notFound(`model "${req.model}" is not served here (this pod serves "${model}")`);
      }
      const refusal = ctx.refusal();
      if (refusal) {
        metrics.shed.inc({ reason: refusal.reason });
        // A draining pod is not failing: the trailer tells the router to go
        // elsewhere without holding it against this pod.
        if (refusal.reason !== 'draining') throw errors.unavailable(refusal.message);
        const metadata = new grpc.Metadata();
        metadata.set(HANDBACK_KEY, refusal.reason);
        throw errors.unavailable(refusal.message, { metadata });
      }
      const continuation = continuationMode(req);
      if (continuation) span.setAttribute('llmmesh.continuation', continuation);

      const control = call.metadata.get(CACHE_CONTROL_KEY)[0];
      const mode = cacheMode(req, control === undefined ? undefined : String(control));
      const lookupSpan = recording ? tracer.startSpan('cache lookup', {}, spanCtx) : NON_RECORDING_SPAN;
      let served: Served;
      try {
        served = await lookup.find(req, mode, model || req.model, call.metadata, self.controller, spanCtx);
        lookupSpan.setAttribute('llmmesh.cache', served.result);
      } finally {
        lookupSpan.end();
      }
      span.setAttribute('llmmesh.cache', served.result);
      result = served.result;
      follower = served.follower;
      metrics.cache.inc({ result: served.result });
      events.emit('cache', { result: served.result, key: served.key } satisfies CacheEvent);

      await writeStream(
        call,
        served.source,
        signal,
        { result: served.result, version: ctx.version, startedAt, metrics, written: follower?.written },
        written,
      );
      if (!written.completed) {
        if (self.handback !== undefined) throw handBackError(self.handback, deliveredTokens(written));
        status = 'CANCELLED';
        return;
      }
      call.end();
      metrics.latency.observe({ cache: served.result }, (performance.now() - startedAt) / 1000);
    } catch (err) {
      let e: MeshError;
      if (self.handback !== undefined) {
        e =
          err instanceof MeshError && err.metadata?.get(HANDBACK_KEY).length
            ? err
            : handBackError(self.handback, deliveredTokens(written));
      } else if (signal.aborted) {
        status = 'CANCELLED';
        return; // the caller is gone; nobody to tell
      } else {
        e = MeshError.from(err, `engine at ${engine.url}`);
      }
      status = e.codeName;
      setSpanError(span, e.code, e.codeName, e.message);
      if (self.handback !== undefined) span.setAttribute('llmmesh.handback', self.handback);
      call.emit('error', e.toStatusObject());
    } finally {
      if (status === 'OK') span.setStatus({ code: SpanStatusCode.OK });
      span.setAttribute('rpc.grpc.status_code', Status[status as keyof typeof Status] ?? 2);
      span.end();
      call.off('cancelled', onCancel);
      // Leaving the flight aborts its engine request when no other call follows it.
      follower?.leave();
      metrics.requests.inc({ status, cache: result });
      calls.delete(self);
      if (calls.size === 0) events.emit('idle');
    }
  };

  return {
    handle,
    events,
    get active() {
      return calls.size;
    },
    get flights() {
      return lookup.flights;
    },
    idle() {
      if (calls.size === 0) return Promise.resolve();
      return once(events, 'idle').then(() => {});
    },
    handBack(reason) {
      let n = 0;
      for (const c of calls) {
        if (c.handback !== undefined || c.controller.signal.aborted) continue;
        c.handback = reason;
        c.controller.abort();
        n++;
      }
      return n;
    },
  };
}
