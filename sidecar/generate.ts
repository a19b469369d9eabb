/**
 * `Engine.GenerateStream`: validate, refuse when draining or not ready, look
 * the request up in the response cache (L1, then a running identical call to
 * join, then L2), otherwise run it on the engine through admission, and stream
 * the chunks back. Every answer carries the initial metadata
 * `x-llmmesh-cache` with how it was served:
 *
 * | value         | meaning                                                        |
 * | ------------- | -------------------------------------------------------------- |
 * | `hit-l1`      | replayed from this sidecar's memory                            |
 * | `hit-l2`      | replayed from Redis (shared by the version's pods)             |
 * | `coalesced`   | joined an identical request already running on the engine      |
 * | `miss`        | computed by the engine, then cached                            |
 * | `bypass`      | the caller asked (`x-llmmesh-cache: bypass`) or the cache is off: no lookup, no store |
 * | `uncacheable` | not deterministic (temperature ≠ 0 and no seed)                |
 *
 * A response not computed for this call (hit or coalesced) reports the usage
 * the engine reported when it computed it, with `cached_tokens` equal to
 * `prompt_tokens`: no prompt token was computed for this call.
 */
import { EventEmitter, once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { type Context, type Span, SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { errors, MeshError, Status } from '../common/errors.js';
import type { GenerateChunk } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest__Output } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import { finishReasonToProto, usageToProto } from '../common/grpc-mapping.js';
import type { Logger } from '../common/log.js';
import { canonicalPrompt, prefixBlockHashes } from '../common/prefix-hash.js';
import { contextFromMetadata, propagationFor, setSpanError } from '../common/trace-propagation.js';
import { validateGenerateRequest } from '../common/validate.js';
import type { Admission } from './admission.js';
import { CACHE_CONTROL_KEY, type CacheMode, cacheMode, responseCacheKey } from './cache/cache-key.js';
import type { CachedResponse, ResponseCache } from './cache/response-cache.js';
import type { EngineClient } from './engine-client.js';
import { type ChunkSource, completedSource, createFlight, type Flight, type StreamChunk } from './flight.js';
import type { PrefixIndex } from './load/prefix-index.js';
import type { SidecarMetrics } from './metrics.js';
import { toOpenAiRequest } from './openai.js';

/** Response metadata key saying how the response cache served the call. */
export const CACHE_RESULT_KEY = 'x-llmmesh-cache';

/** How a call was served (the value of `x-llmmesh-cache`). */
export type CacheResult = 'hit-l1' | 'hit-l2' | 'coalesced' | 'miss' | 'bypass' | 'uncacheable';

/** Payload of the handler's `cache` event. */
export interface CacheEvent {
  result: CacheResult;
  /** The cache key, for cacheable requests. */
  key?: string;
}

/** What the handler needs from the sidecar. */
export interface GenerateContext {
  version: string;
  /** Logical model served; empty while unknown (then any model is accepted). */
  model(): string;
  /** The engine's own model name. */
  servedModelName(): string;
  /** Why new calls are refused now (draining, engine not ready), or undefined. */
  refusal(): { reason: 'draining' | 'not_ready'; message: string } | undefined;
  engine: EngineClient;
  admission: Admission;
  prefixIndex: PrefixIndex;
  /** The response cache; absent when disabled. */
  cache: ResponseCache | undefined;
  metrics: SidecarMetrics;
  logger: Logger;
  /** OpenTelemetry tracer (default: the API's, a no-op unless an SDK is started). */
  tracer?: Tracer;
}

/** The GenerateStream handler of one sidecar. */
export interface GenerateHandler {
  handle(call: grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>): Promise<void>;
  /** Calls being served now. */
  readonly active: number;
  /** Identical cacheable requests running on the engine now (one flight each). */
  readonly flights: number;
  /** Resolves when no call is being served. */
  idle(): Promise<void>;
  /** Emits `cache` ({@link CacheEvent}) for every call that got past validation. */
  readonly events: EventEmitter;
}

/** Creates the handler. */
export function createGenerateHandler(ctx: GenerateContext): GenerateHandler {
  const { engine, admission, prefixIndex, cache, metrics, logger: log } = ctx;
  const tracer = ctx.tracer ?? trace.getTracer('llmmesh-sidecar');
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const flights = new Map<string, Flight>();
  let active = 0;

  /** Runs `req` on the engine, feeding `flight`; stores the answer under `cacheKey` when given. */
  const runEngine = async (
    req: GenerateRequest__Output,
    flight: Flight,
    headers: Record<string, string>,
    cacheKey: string | undefined,
    span: Span,
  ) => {
    let release: (() => void) | undefined;
    try {
      try {
        release = await admission.acquire(flight.signal);
      } catch (err) {
        const e = MeshError.from(err);
        if (e.code === Status.RESOURCE_EXHAUSTED) metrics.shed.inc({ reason: 'queue_full' });
        flight.fail(e);
        setSpanError(span, e.code, e.codeName, e.message);
        return;
      }
      const prompt = canonicalPrompt(req);
      // Recorded when the request goes to the engine, not at its first token:
      // the engine touches the prompt's blocks when it schedules it, and a
      // router deciding meanwhile should already send the same prefix here
      // (measured: fewer false negatives and no more false positives).
      prefixIndex.record(prefixBlockHashes(prompt, prefixIndex.blockChars));
      let text = '';
      const openAi = toOpenAiRequest(req, ctx.servedModelName());
      span.updateName(`POST ${openAi.path}`);
      span.setAttribute('url.path', openAi.path);
      let first = true;
      for await (const ev of engine.stream(openAi, {
        signal: flight.signal,
        headers,
      })) {
        if (first) {
          span.addEvent('first_token');
          first = false;
        }
        text += ev.text;
        const chunk: StreamChunk = { text: ev.text };
        if (ev.finishReason !== undefined) {
          chunk.finishReason = ev.finishReason;
          if (ev.usage) chunk.usage = ev.usage;
        }
        flight.push(chunk);
      }
      flight.finish();
      const last = flight.chunks.at(-1);
      if (last?.usage) {
        span.setAttribute('gen_ai.usage.input_tokens', last.usage.promptTokens);
        span.setAttribute('gen_ai.usage.output_tokens', last.usage.completionTokens);
      }
      if (last?.finishReason) span.setAttribute('gen_ai.response.finish_reasons', [last.finishReason]);
      // The engine keeps the generated blocks too: a follow-up turn that
      // repeats the answer reuses them.
      const continued =
        req.messages.length > 0
          ? canonicalPrompt({ prompt: '', messages: [...req.messages, { role: 'assistant', content: text }] })
          : prompt + text;
      prefixIndex.record(prefixBlockHashes(continued, prefixIndex.blockChars));
      if (cacheKey && cache && last && (last.finishReason === 'stop' || last.finishReason === 'length')) {
        cache.store(cacheKey, {
          texts: flight.chunks.map((c) => c.text),
          finishReason: last.finishReason,
          usage: last.usage ?? { promptTokens: 0, completionTokens: 0, cachedTokens: 0 },
        });
      }
    } catch (err) {
      const e = MeshError.from(err, `engine at ${engine.url}`);
      if (!flight.signal.aborted) {
        metrics.engineErrors.inc({ code: e.codeName });
        if (e.code !== Status.INVALID_ARGUMENT && e.code !== Status.NOT_FOUND) {
          log.warn('engine call failed', { code: e.codeName, err: e.message });
        }
      }
      flight.fail(e);
      setSpanError(span, e.code, e.codeName, e.message);
    } finally {
      release?.();
      span.end();
    }
  };

  const startFlight = (
    req: GenerateRequest__Output,
    metadata: grpc.Metadata,
    cacheKey: string | undefined,
    spanCtx: Context,
  ): Flight => {
    const flight = createFlight();
    const headers: Record<string, string> = {};
    const requestId = req.requestId || String(metadata.get('x-request-id')[0] ?? '');
    if (requestId) headers['x-request-id'] = requestId;
    // The engine call is its own span; vLLM with tracing on continues it.
    const span = tracer.startSpan(
      'engine',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'http.request.method': 'POST',
          'server.address': engine.url,
          'gen_ai.system': 'vllm',
          'gen_ai.request.model': ctx.servedModelName(),
          'gen_ai.request.max_tokens': req.sampling?.maxTokens ?? 0,
        },
      },
      spanCtx,
    );
    const traceparent = span.isRecording()
      ? propagationFor(span, spanCtx).traceparent
      : metadata.get('traceparent')[0];
    if (traceparent) headers.traceparent = String(traceparent);
    if (cacheKey) flights.set(cacheKey, flight);
    void runEngine(req, flight, headers, cacheKey, span).finally(() => {
      if (cacheKey && flights.get(cacheKey) === flight) flights.delete(cacheKey);
    });
    return flight;
  };

  const toProto = (c: StreamChunk, index: number, fromCache: boolean): GenerateChunk => {
    const out: GenerateChunk = { text: c.text };
    if (index === 0) out.modelVersion = ctx.version;
    if (c.finishReason !== undefined) {
      out.finishReason = finishReasonToProto(c.finishReason);
      const usage = usageToProto(c.usage);
      if (fromCache) usage.cachedTokens = usage.promptTokens;
      out.usage = usage;
    }
    return out;
  };

  /** Writes `source` to `call` with backpressure; false when the caller went away. */
  const pipe = async (
    call: grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>,
    source: ChunkSource,
    signal: AbortSignal,
    result: CacheResult,
    startedAt: number,
  ): Promise<boolean> => {
    const fromCache = result === 'hit-l1' || result === 'hit-l2' || result === 'coalesced';
    // One abort listener for the whole call, however many chunks wait.
    const aborted = new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    });
    let i = 0;
    for (;;) {
      while (i < source.chunks.length) {
        const out = toProto(source.chunks[i] as StreamChunk, i, fromCache);
        if (i === 0) {
          const md = new grpc.Metadata();
          md.set(CACHE_RESULT_KEY, result);
          call.sendMetadata(md);
          metrics.ttft.observe({ cache: result }, (performance.now() - startedAt) / 1000);
        }
        i++;
        if (!call.write(out)) {
          await once(call, 'drain', { signal }).catch(() => {});
        }
        if (signal.aborted) return false;
      }
      if (source.error) throw source.error;
      if (source.done) return true;
      await Promise.race([source.changed(), aborted]);
      if (signal.aborted) return false;
    }
  };

  const fromCached = (hit: CachedResponse): ChunkSource =>
    completedSource(
      hit.texts.map((text, i) =>
        i === hit.texts.length - 1 ? { text, finishReason: hit.finishReason, usage: hit.usage } : { text },
      ),
    );

  /** Finds or starts what serves `req`: a cached answer, a running identical call, or a new engine call. */
  const lookup = async (
    req: GenerateRequest__Output,
    mode: CacheMode,
    model: string,
    metadata: grpc.Metadata,
    signal: AbortSignal,
    spanCtx: Context,
  ): Promise<{ source: ChunkSource; result: CacheResult; key?: string; leave?: () => void }> => {
    if (mode !== 'cacheable' || !cache) {
      // With the cache off, a deterministic request is served as if bypassed.
      const flight = startFlight(req, metadata, undefined, spanCtx);
      return { source: flight, result: mode === 'cacheable' ? 'bypass' : mode, leave: flight.join() };
    }
    const key = responseCacheKey(model, ctx.version, req);
    const l1 = cache.getL1(key);
    if (l1) return { source: fromCached(l1), result: 'hit-l1', key };
    // A flight every follower has left is being aborted: never join it.
    const running = (k: string) => {
      const f = flights.get(k);
      return f && !f.signal.aborted ? f : undefined;
    };
    let flight = running(key);
    if (!flight) {
      const l2 = await cache.getL2(key);
      if (signal.aborted) throw errors.cancelled('cancelled during cache lookup');
      if (l2) return { source: fromCached(l2), result: 'hit-l2', key };
      // An identical call may have started while Redis answered.
      flight = running(key);
    }
    if (flight) return { source: flight, result: 'coalesced', key, leave: flight.join() };
    const started = startFlight(req, metadata, key, spanCtx);
    return { source: started, result: 'miss', key, leave: started.join() };
  };

  const handle = async (call: grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>) => {
    const startedAt = performance.now();
    active++;
    const controller = new AbortController();
    const onCancel = () => controller.abort();
    call.once('cancelled', onCancel);
    let result: CacheResult | 'none' = 'none';
    let leave: (() => void) | undefined;
    let status = 'OK';
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
    const spanCtx = trace.setSpan(parentCtx, span);
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
        throw errors.unavailable(refusal.message);
      }

      const control = call.metadata.get(CACHE_CONTROL_KEY)[0];
      const mode = cacheMode(req, control === undefined ? undefined : String(control));
      const lookupSpan = tracer.startSpan('cache lookup', {}, spanCtx);
      let served: Awaited<ReturnType<typeof lookup>>;
      try {
        served = await lookup(req, mode, model || req.model, call.metadata, controller.signal, spanCtx);
        lookupSpan.setAttribute('llmmesh.cache', served.result);
      } finally {
        lookupSpan.end();
      }
      span.setAttribute('llmmesh.cache', served.result);
      result = served.result;
      leave = served.leave;
      metrics.cache.inc({ result: served.result });
      events.emit('cache', { result: served.result, key: served.key } satisfies CacheEvent);

      const completed = await pipe(call, served.source, controller.signal, served.result, startedAt);
      if (!completed) {
        status = 'CANCELLED';
        return;
      }
      call.end();
      metrics.latency.observe({ cache: served.result }, (performance.now() - startedAt) / 1000);
    } catch (err) {
      if (controller.signal.aborted) {
        status = 'CANCELLED';
        return; // the caller is gone; nobody to tell
      }
      const e = MeshError.from(err, `engine at ${engine.url}`);
      status = e.codeName;
      setSpanError(span, e.code, e.codeName, e.message);
      call.emit('error', e.toStatusObject());
    } finally {
      if (status === 'OK') span.setStatus({ code: SpanStatusCode.OK });
      span.setAttribute('rpc.grpc.status_code', Status[status as keyof typeof Status] ?? 2);
      span.end();
      call.off('cancelled', onCancel);
      leave?.();
      metrics.requests.inc({ status, cache: result });
      active--;
      if (active === 0) events.emit('idle');
    }
  };

  return {
    handle,
    events,
    get active() {
      return active;
    },
    get flights() {
      return flights.size;
    },
    idle() {
      if (active === 0) return Promise.resolve();
      return once(events, 'idle').then(() => {});
    },
  };
}
