/**
 * One run of a request on the engine: admission, the engine span, the
 * OpenAI request (continuations included: exact from token ids, or from
 * text), the prefix index, and the chunks fed to a {@link Flight} that any
 * number of callers follow. A finished deterministic answer is stored in the
 * response cache when a cache key is given.
 */
import type * as grpc from '@grpc/grpc-js';
import {
  type Context,
  INVALID_SPAN_CONTEXT,
  type Span,
  SpanKind,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { CancelSignal, CancelSource } from '../../common/cancellation.js';
import { MeshError, Status } from '../../common/errors.js';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import type { Logger } from '../../common/log.js';
import { REQUEST_ID_KEY, TRACEPARENT_KEY } from '../../common/metadata.js';
import { canonicalPrompt, prefixBlockHashes } from '../../common/prefix-hash.js';
import { propagationFor, setSpanError } from '../../common/trace-propagation.js';
import type { Admission } from '../admission.js';
import type { ResponseCache } from '../cache/response-cache.js';
import type { EngineClient, EngineEvent } from '../engine-client.js';
import type { PrefixIndex } from '../load/prefix-index.js';
import type { SidecarMetrics } from '../metrics.js';
import {
  type ContinuationMode,
  continuationMode,
  continuedUsage,
  type OpenAiRequest,
  tokenizeBody,
  toOpenAiRequest,
} from '../openai.js';
import { createFlight, type Flight, type StreamChunk } from './flight.js';
import { checkSeam, createSeam, SEAM_CONTEXT_TOKENS, type Seam } from './seam.js';

/** Stands for a child span (cache lookup, engine call) of a call whose own span is not recording. */
export const NON_RECORDING_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Chunks of text gathered before they are joined (see the engine run). */
const TEXT_PIECES = 16;

/** What an engine run needs from the sidecar. */
export interface EngineRunDeps {
  engine: EngineClient;
  admission: Admission;
  prefixIndex: PrefixIndex;
  /** The response cache; absent when disabled. */
  cache: ResponseCache | undefined;
  metrics: SidecarMetrics;
  logger: Logger;
  tracer: Tracer;
  /** The engine's own model name. */
  servedModelName(): string;
}

/** A started run. */
export interface EngineRun {
  flight: Flight;
  /** Settles when the run is over (whatever its outcome). */
  done: Promise<void>;
}

/**
 * Starts runs of requests on the engine. A run with a cache key retains its
 * chunks (for followers that join later and for the cache); one without
 * retains none. `controller`, when given, is the flight's (a flight only its
 * caller follows can share the call's).
 */
export type EngineRunner = (
  req: GenerateRequest__Output,
  metadata: grpc.Metadata,
  cacheKey: string | undefined,
  spanCtx: Context,
  controller?: CancelSource,
) => EngineRun;

/** Creates the runner. */
export function createEngineRunner(deps: EngineRunDeps): EngineRunner {
  const { engine, admission, prefixIndex, cache, metrics, logger: log } = deps;

  let noDetokenizeLogged = false;

  /**
   * The OpenAI request for an exact continuation (`req` continues from
   * delivered token ids): the prompt's ids come from the engine's
   * `/tokenize`; an engine without it continues from the text instead. With
   * stop strings, the delivered ids are decoded too: the text they cover
   * beyond the delivered text was held back by the engine that generated it,
   * and goes out first through a {@link Seam}.
   */
  const buildExactContinuation = async (
    req: GenerateRequest__Output,
    signal: CancelSignal,
    headers: Record<string, string>,
  ): Promise<{ openAi: OpenAiRequest; mode: ContinuationMode | undefined; seam?: Seam }> => {
    const served = deps.servedModelName();
    const mode: ContinuationMode = 'token_ids';
    const cont = req.continuation as NonNullable<GenerateRequest__Output['continuation']>;
    let promptIds: number[];
    try {
      promptIds = await engine.tokenize(tokenizeBody(req, served), { signal, headers });
    } catch (err) {
      const e = MeshError.from(err, `engine at ${engine.url}`);
      if (signal.aborted || e.code !== Status.NOT_FOUND) throw e;
      log.warn('engine has no /tokenize; continuing from text', { err: e.message });
      return { openAi: toOpenAiRequest(req, served), mode: 'text' };
    }
    const openAi = toOpenAiRequest(req, served, promptIds);
    const stop = req.sampling?.stop ?? [];
    // Without stop strings the engine holds back no text (the simulator's
    // tokens are whole words; measured: delivered ids always decode to
    // exactly the delivered text), so the round trip is skipped.
    if (stop.length === 0) return { openAi, mode };
    const context = promptIds.slice(-SEAM_CONTEXT_TOKENS);
    const check = await checkSeam(engine, served, cont, context, { signal, headers });
    if (check.kind === 'unsupported') {
      if (!noDetokenizeLogged) {
        noDetokenizeLogged = true;
        log.warn('engine has no /detokenize; continuations may lose text the engine held back');
      }
      return { openAi, mode };
    }
    if (check.kind === 'mismatch') {
      log.warn('delivered ids do not match the delivered text; continuing from text', {
        reason: check.reason,
      });
      return { openAi: toOpenAiRequest(req, served), mode: 'text' };
    }
    // The stop strings are applied by the seam, per token; the engine runs without them.
    delete openAi.body.stop;
    const seam = createSeam(stop, check.heldBack, cont, promptIds.length, (u) =>
      continuedUsage(u, cont, 'token_ids'),
    );
    return { openAi, mode, seam };
  };

  /** Runs `req` on the engine, feeding `flight`; stores the answer under `cacheKey` when given. */
  const run = async (
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
      // Only an exact continuation asks the engine first; any other request
      // is built at once (no promise on the way to the engine).
      const direct = continuationMode(req);
      const { openAi, mode, seam } =
        direct === 'token_ids'
          ? await buildExactContinuation(req, flight.signal, headers)
          : { openAi: toOpenAiRequest(req, deps.servedModelName()), mode: direct, seam: undefined };
      if (mode) span.setAttribute('llmmesh.continuation', mode);
      span.updateName(`POST ${openAi.path}`);
      span.setAttribute('url.path', openAi.path);
      let text = req.continuation?.text ?? '';
      // The answer's text, for the prefix index: the latest pieces are
      // joined every TEXT_PIECES chunks, so that no per-chunk string (or
      // rope node) lives as long as the stream.
      const pieces: string[] = [];
      let first = true;
      await engine.each(
        openAi,
        (ev) => {
          if (first) {
            span.addEvent('first_token');
            first = false;
          }
          const chunk = seam ? seam.next(ev) : toChunk(req, mode, ev);
          if (chunk) {
            if (pieces.push(chunk.text) === TEXT_PIECES) {
              text += pieces.join('');
              pieces.length = 0;
            }
            flight.push(chunk);
          }
          // Stopping the stream ends the engine request (the client side goes away).
          return !seam?.stopped;
        },
        { signal: flight.signal, headers },
      );
      flight.finish();
      text += pieces.join('');
      const last = flight.last;
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

  return (req, metadata, cacheKey, spanCtx, controller) => {
    const flight = createFlight({ retain: cacheKey !== undefined, controller });
    const headers: Record<string, string> = {};
    const requestId = req.requestId || String(metadata.get(REQUEST_ID_KEY)[0] ?? '');
    if (requestId) headers[REQUEST_ID_KEY] = requestId;
    // The engine call is its own span (vLLM with tracing on continues it),
    // when the call's span is recording (see the handler).
    const span = !trace.getSpan(spanCtx)?.isRecording()
      ? NON_RECORDING_SPAN
      : deps.tracer.startSpan(
          'engine',
          {
            kind: SpanKind.CLIENT,
            attributes: {
              'http.request.method': 'POST',
              'server.address': engine.url,
              'gen_ai.system': 'vllm',
              'gen_ai.request.model': deps.servedModelName(),
              'gen_ai.request.max_tokens': req.sampling?.maxTokens ?? 0,
            },
          },
          spanCtx,
        );
    const traceparent = span.isRecording()
      ? propagationFor(span, spanCtx).traceparent
      : metadata.get(TRACEPARENT_KEY)[0];
    if (traceparent) headers[TRACEPARENT_KEY] = String(traceparent);
    return { flight, done: run(req, flight, headers, cacheKey, span) };
  };
}

/** The chunk of one engine event as it comes (no seam), with the usage of a continuation adjusted. */
function toChunk(
  req: GenerateRequest__Output,
  mode: ContinuationMode | undefined,
  ev: EngineEvent,
): StreamChunk {
  // An event is a chunk as it is (same fields), but for a continuation's usage.
  if (!(req.continuation && mode && ev.usage)) return ev;
  const chunk: StreamChunk = { text: ev.text };
  if (ev.tokenIds) chunk.tokenIds = ev.tokenIds;
  if (ev.finishReason !== undefined) {
    chunk.finishReason = ev.finishReason;
    if (ev.usage) {
      chunk.usage = req.continuation && mode ? continuedUsage(ev.usage, req.continuation, mode) : ev.usage;
    }
  }
  return chunk;
}
