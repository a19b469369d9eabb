/**
 * W3C trace-context propagation over gRPC metadata and HTTP headers, and span
 * helpers. Light on purpose (the OpenTelemetry API only), so the hot path and
 * processes without tracing never load the SDK.
 */
import type { Metadata } from '@grpc/grpc-js';
import {
  type Context,
  context as contextApi,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { childContext, formatTraceparent, parseTraceparent } from './trace-context.js';

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
  // isRecording first: it is a field read, the validity check two regular expressions.
  if (span.isRecording() && trace.isSpanContextValid(span.spanContext())) {
    const sc = span.spanContext();
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
