/**
 * OpenTelemetry for every llmmesh process, configured only by the standard
 * `OTEL_*` environment variables. Tracing is on when an exporter is
 * configured (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
 * or `OTEL_TRACES_EXPORTER`), off otherwise: then the tracer is the API's
 * no-op tracer and costs nothing on the hot path.
 *
 * The tracer is created once in each `main` and passed down; nothing else in
 * the code reaches for a global.
 */

import type { Metadata } from '@grpc/grpc-js';
import {
  type Context,
  context as contextApi,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { childContext, formatTraceparent, parseTraceparent } from './trace-context.js';

/** Tracing for one process. */
export interface Telemetry {
  /** The tracer to pass down (a no-op tracer when tracing is off). */
  readonly tracer: Tracer;
  readonly enabled: boolean;
  /** Flushes pending spans and stops exporting. */
  shutdown(): Promise<void>;
}

/** True when the environment asks for trace export. */
export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if (/^(1|true)$/i.test(env.OTEL_SDK_DISABLED ?? '')) return false;
  const exporter = (env.OTEL_TRACES_EXPORTER ?? '').trim();
  if (exporter === 'none') return false;
  return Boolean(exporter || env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts the OpenTelemetry Node SDK when tracing is configured. `serviceName`
 * (e.g. `llmmesh-router`) applies unless `OTEL_SERVICE_NAME` is set.
 */
export function startTelemetry(serviceName: string, env: NodeJS.ProcessEnv = process.env): Telemetry {
  if (!tracingConfigured(env)) {
    return { tracer: trace.getTracer('llmmesh'), enabled: false, shutdown: async () => {} };
  }
  const sdk = new NodeSDK({
    ...(env.OTEL_SERVICE_NAME ? {} : { serviceName }),
    // Traces only: metrics are served in Prometheus format on the admin port.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  return {
    tracer: trace.getTracer('llmmesh'),
    enabled: true,
    shutdown: () => sdk.shutdown().catch(() => {}),
  };
}

const propagator = new W3CTraceContextPropagator();

const metadataGetter: TextMapGetter<Metadata> = {
  keys: (md) => Object.keys(md.getMap()),
  get: (md, key) => {
    const v = md.get(key);
    return v.length === 0 ? undefined : v.map(String);
  },
};
const metadataSetter: TextMapSetter<Metadata> = { set: (md, key, value) => md.set(key, value) };
const headerSetter: TextMapSetter<Record<string, string>> = {
  set: (h, key, value) => {
    h[key] = value;
  },
};
const headerGetter: TextMapGetter<Record<string, string | string[] | undefined>> = {
  keys: (h) => Object.keys(h),
  get: (h, key) => h[key],
};

/** The trace context a caller sent in gRPC metadata (`traceparent`), or the root context. */
export function contextFromMetadata(md: Metadata): Context {
  return propagator.extract(ROOT_CONTEXT, md, metadataGetter);
}

/** The trace context a caller sent in HTTP headers. */
export function contextFromHeaders(headers: Record<string, string | string[] | undefined>): Context {
  return propagator.extract(ROOT_CONTEXT, headers, headerGetter);
}

/**
 * The `traceparent` the next hop should receive from inside `span`, and the
 * request's trace id. When tracing is off the span is not recording; the
 * caller's trace id is still continued (or a new one started), so trailers
 * and logs always carry a usable id.
 */
export function propagationFor(span: Span, parent: Context): { traceparent: string; traceId: string } {
  const sc = span.spanContext();
  if (trace.isSpanContextValid(sc) && span.isRecording()) {
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(parent, span), carrier, headerSetter);
    return { traceparent: carrier.traceparent ?? '', traceId: sc.traceId };
  }
  const incoming = trace.getSpanContext(parent);
  const own = childContext(
    incoming && trace.isSpanContextValid(incoming)
      ? parseTraceparent(`00-${incoming.traceId}-${incoming.spanId}-0${incoming.traceFlags & 1}`)
      : undefined,
  );
  return { traceparent: formatTraceparent(own), traceId: own.traceId };
}

/** Injects the context of `span` into gRPC metadata. */
export function injectMetadata(span: Span, parent: Context, md: Metadata): void {
  propagator.inject(trace.setSpan(parent, span), md, metadataSetter);
}

/** Marks a span failed with a gRPC status (name and code). */
export function setSpanError(span: Span, code: number, codeName: string, message: string): void {
  span.setAttribute('rpc.grpc.status_code', code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: `${codeName}: ${message}` });
}

/** Runs `fn` with `span` active (for code that reads the active context). */
export function withSpan<T>(span: Span, parent: Context, fn: () => T): T {
  return contextApi.with(trace.setSpan(parent, span), fn);
}
