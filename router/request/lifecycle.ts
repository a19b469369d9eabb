/**
 * The life of one RPC around the director: its turn to start (a burst
 * starts in turns of the event loop, start-gate.ts), its server span, its
 * deadline (the client's, else the model's default), cancellation, the
 * request metrics (TTFT, inter-token latency, tokens, status), the trace-id
 * trailer, and the routing story handed to `onRequestTrace`. The span, the
 * TTFT and the default deadline count from the request's arrival, its wait
 * for a turn included.
 */
import * as grpc from '@grpc/grpc-js';
import { trace as otelTrace, SpanKind } from '@opentelemetry/api';
import { Cancellation } from '../../common/cancellation.js';
import type { RelayChunk } from '../../common/chunk-relay.js';
import { errors, MeshError, Status } from '../../common/errors.js';
import type { GenerateChunk } from '../../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import type { GenerateResponse } from '../../common/generated/llmmesh/v1/GenerateResponse.js';
import { COST_KEY, TRACE_ID_KEY } from '../../common/metadata.js';
import type { TraceContext } from '../../common/trace-context.js';
import { contextFromMetadata, propagationFor, setSpanError } from '../../common/trace-propagation.js';
import { defaultDeadlineMs } from '../config/schema.js';
import type { RequestTrace } from '../request-trace.js';
import type { ChunkSink, RouterContext, Served } from './context.js';
import type { Director } from './director.js';
import { StartGate } from './start-gate.js';
import { StreamTimes } from './stream-times.js';

const PRIORITY_VALUE: Record<string, number> = {
  PRIORITY_LOW: 1,
  PRIORITY_UNSPECIFIED: 2,
  PRIORITY_NORMAL: 2,
  PRIORITY_HIGH: 3,
};

/** The two RPC shapes that run a generation. */
export type GenerateCall =
  | grpc.ServerUnaryCall<GenerateRequest__Output, GenerateResponse>
  | grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>;

/** Runs one RPC through the director, with its span, deadline and metrics. */
export type RunRequest = (
  method: 'Generate' | 'GenerateStream',
  call: GenerateCall,
  onChunk: ChunkSink,
) => Promise<{ served: Served; trailer: grpc.Metadata }>;

/** Creates the per-RPC lifecycle; `onRequestTrace` receives each finished request's story. */
export function createLifecycle(
  ctx: RouterContext,
  director: Director,
  onRequestTrace?: (trace: RequestTrace) => void,
): RunRequest {
  const { metrics, now, tracer, log } = ctx;

  /** The client's deadline, else the model's default counted from the request's arrival. */
  const deadlineOf = (call: GenerateCall, model: string, arrived: number) => {
    const raw = call.getDeadline();
    const client = raw instanceof Date ? raw.getTime() : Number.isFinite(raw) ? Number(raw) : undefined;
    return { client, deadline: client ?? arrived + defaultDeadlineMs(ctx.datastore.config(), model) };
  };

  // A burst starts in turns, so its first Engine calls go out before the rest is set up.
  const gate = new StartGate();

  /**
   * One RPC from its turn on. It chains on the director's promise rather
   * than awaiting it, so no suspended frame of its own is kept for the
   * stream's life (what one stream holds is what every scavenge walks).
   */
  const runOne = (
    method: 'Generate' | 'GenerateStream',
    call: GenerateCall,
    onChunk: ChunkSink,
    started: number,
  ): Promise<{ served: Served; trailer: grpc.Metadata }> => {
    const req = call.request;
    const parentCtx = contextFromMetadata(call.metadata);
    const serverSpan = tracer.startSpan(
      `llmmesh.v1.Inference/${method}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'rpc.system': 'grpc',
          'rpc.service': 'llmmesh.v1.Inference',
          'rpc.method': method,
          'gen_ai.operation.name': req.messages.length > 0 ? 'chat' : 'text_completion',
          'gen_ai.request.model': req.model,
          'gen_ai.request.max_tokens': req.sampling?.maxTokens ?? 0,
        },
        // From the request's arrival: a wait for its turn in a burst is part of it.
        startTime: started,
      },
      parentCtx,
    );
    const traceId = propagationFor(serverSpan, parentCtx).traceId;
    const trace: TraceContext = { traceId, spanId: serverSpan.spanContext().spanId, sampled: true };
    /** The request's price, when canary analysis gives one (sent in the trailer). */
    let cost: number | undefined;
    /** The trailer, built when the request ends: the trace id, and the cost. */
    const trailer = () => {
      const md = new grpc.Metadata();
      md.set(TRACE_ID_KEY, trace.traceId);
      if (cost !== undefined) md.set(COST_KEY, String(Number(cost.toPrecision(12))));
      return md;
    };
    const cancel = new Cancellation();
    // `on`, not `once`: it fires at most once, and a once-wrapper is three more objects per stream.
    call.on('cancelled', cancel.abort);
    // The client may have gone while the request waited for its turn.
    if (call.cancelled) cancel.abort();
    const { client: clientDeadline, deadline } = deadlineOf(call, req.model, started);
    const modelLabel = ctx.datastore.config().models[req.model] ? req.model : '(unknown)';
    const rt: RequestTrace = {
      requestId: req.requestId,
      traceId: trace.traceId,
      receivedAt: started,
      model: req.model,
      version: undefined,
      priority: PRIORITY_VALUE[String(req.routing?.priority ?? '')] ?? 2,
      queuedMs: 0,
      deadline,
      deadlineFromClient: clientDeadline !== undefined,
      attempts: [],
      status: 'OK',
    };
    metrics.inFlight.inc({ model: modelLabel });
    let version = '';
    /** First and last chunk times and the gaps between, observed in batches (stream-times.ts). */
    const times = new StreamTimes();
    let usage: { promptTokens: number; completionTokens: number } | undefined;
    // Canary analysis and cost (router/canary/): per-version windows, the request's price.
    const finishAnalysis = (error?: unknown) => {
      times.flush();
      const { firstAt, lastAt } = times;
      cost = ctx.canary?.finish({
        rt,
        version: version || rt.version?.version || '',
        usage,
        streamSeconds: firstAt ? (lastAt - firstAt) / 1000 : 0,
        durationSeconds: (now() - started) / 1000,
        error,
        cancelled: cancel.aborted,
      });
      if (cost !== undefined) serverSpan.setAttribute('llmmesh.cost', cost);
    };
    const observe = (chunk: RelayChunk, s: Served) => {
      const at = now();
      if (times.firstAt) times.next(at);
      else {
        version = s.version;
        const labels = { model: modelLabel, model_version: s.version };
        metrics.ttft.observe(labels, (at - started) / 1000);
        const itl = metrics.itl.series(labels);
        times.first(at, { itl, canary: ctx.canary, model: modelLabel, version: s.version });
        ctx.canary?.firstToken(modelLabel, s.version, (at - started) / 1000);
      }
      if (chunk.usage && chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') {
        usage = { promptTokens: chunk.usage.promptTokens, completionTokens: chunk.usage.completionTokens };
        serverSpan.setAttribute('gen_ai.usage.input_tokens', chunk.usage.promptTokens);
        serverSpan.setAttribute('gen_ai.usage.output_tokens', chunk.usage.completionTokens);
        serverSpan.setAttribute('gen_ai.response.finish_reasons', [
          chunk.finishReason === 'FINISH_REASON_LENGTH' ? 'length' : 'stop',
        ]);
        metrics.tokens.inc({ model: modelLabel, model_version: s.version }, chunk.usage.completionTokens);
      }
    };
    const end = () => {
      call.off('cancelled', cancel.abort);
      metrics.inFlight.dec({ model: modelLabel });
      if (times.firstAt) serverSpan.addEvent('first_token', times.firstAt);
      serverSpan.end();
      if (onRequestTrace) {
        try {
          onRequestTrace(rt);
        } catch (err) {
          log.warn('request trace hook failed', { err });
        }
      }
    };
    /** The error the client gets (its status, and the trailer), the failure counted and recorded. */
    const failure = (err: unknown): MeshError => {
      const e = cancel.aborted ? errors.cancelled('client cancelled') : MeshError.from(err);
      finishAnalysis(e);
      rt.status = e.codeName;
      if (rt.tenant) metrics.tenantRequests.inc({ tenant: rt.tenant, status: e.codeName });
      setSpanError(serverSpan, e.code, e.codeName, e.message);
      metrics.requests.inc({ model: modelLabel, model_version: version || '(none)', status: e.codeName });
      const md = e.toStatusObject().metadata;
      md.merge(trailer());
      return new MeshError(e.code, e.message, { cause: e, metadata: md, retryPushbackMs: e.retryPushbackMs });
    };
    const succeeded = (served: Served) => {
      try {
        metrics.requests.inc({ model: modelLabel, model_version: served.version, status: 'OK' });
        if (rt.tenant) metrics.tenantRequests.inc({ tenant: rt.tenant, status: 'OK' });
        serverSpan.setAttribute('llmmesh.endpoint', served.endpoint);
        serverSpan.setAttribute('rpc.grpc.status_code', Status.OK);
        metrics.latency.observe(
          { model: modelLabel, model_version: served.version },
          (now() - started) / 1000,
        );
        finishAnalysis();
        return { served, trailer: trailer() };
      } catch (err) {
        throw failure(err);
      } finally {
        end();
      }
    };
    const failed = (err: unknown): never => {
      try {
        throw failure(err);
      } finally {
        end();
      }
    };
    return director
      .execute(req, call.metadata, {
        deadline,
        signal: cancel,
        // Child spans only under a recording span (tracing off: none, and no context to build).
        spans: {
          server: serverSpan,
          ctx: serverSpan.isRecording() ? otelTrace.setSpan(parentCtx, serverSpan) : parentCtx,
          trace,
        },
        rt,
        onChunk: (chunk, s) => {
          observe(chunk, s);
          return onChunk(chunk, s);
        },
      })
      .then(succeeded, failed);
  };

  return (method, call, onChunk) => {
    const started = now();
    const turn = gate.enter();
    if (turn) return turn.then(() => runOne(method, call, onChunk, started));
    try {
      return runOne(method, call, onChunk, started);
    } catch (err) {
      // As from an async function: whatever goes wrong is the promise's.
      return Promise.reject(err);
    }
  };
}
