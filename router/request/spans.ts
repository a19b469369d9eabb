/**
 * The router's child spans of a request: `schedule` (with each candidate's
 * scores as events) and `attempt` (one per upstream attempt).
 */

import type { Tracer } from '@opentelemetry/api';
import { INVALID_SPAN_CONTEXT, type Span, SpanKind, trace } from '@opentelemetry/api';
import type { SchedulingDecision } from '../scheduling/types.js';
import type { RequestSpans } from './context.js';

/** Records a scheduling decision as a `schedule` span (only when the request is traced). */
export function recordScheduleSpan(
  tracer: Tracer,
  spans: RequestSpans,
  decision: SchedulingDecision,
  version: { version: string; reason: string },
): void {
  if (!spans.server.isRecording()) return;
  const s = tracer.startSpan(
    'schedule',
    {
      attributes: {
        'llmmesh.profile': decision.profile,
        'llmmesh.version': version.version,
        'llmmesh.version_reason': version.reason,
        'llmmesh.pool_size': decision.poolSize,
        'llmmesh.endpoint': decision.picked?.address ?? '',
        'llmmesh.schedule_ms': decision.totalMs,
      },
    },
    spans.ctx,
  );
  for (const f of decision.filtered) s.addEvent(`filter ${f.type}`, { 'llmmesh.remaining': f.remaining });
  for (const c of decision.candidates()) {
    const attrs: Record<string, string | number> = {
      'llmmesh.endpoint': c.address,
      'llmmesh.score': c.total,
    };
    for (const [k, v] of Object.entries(c.scores)) attrs[`llmmesh.score.${k}`] = v;
    s.addEvent('candidate', attrs);
  }
  s.end();
}

/** The span of an attempt whose request is not traced: records nothing. */
const NOT_RECORDING: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Starts the span of one upstream attempt: a `NOT_RECORDING` span when the
 * server span does not record (tracing off, or the request not sampled),
 * whose children the sampler would not record either.
 */
export function startAttemptSpan(
  tracer: Tracer,
  spans: RequestSpans,
  attrs: { endpoint: string; breaker: string; attempt: number; version: string; continuation?: string },
): Span {
  if (!spans.server.isRecording()) return NOT_RECORDING;
  const attributes: Record<string, string | number> = {
    'rpc.system': 'grpc',
    'rpc.service': 'llmmesh.v1.Engine',
    'rpc.method': 'GenerateStream',
    'llmmesh.endpoint': attrs.endpoint,
    'llmmesh.breaker_state': attrs.breaker,
    'llmmesh.attempt': attrs.attempt,
    'llmmesh.version': attrs.version,
  };
  if (attrs.continuation) attributes['llmmesh.continuation'] = attrs.continuation;
  return tracer.startSpan('attempt', { kind: SpanKind.CLIENT, attributes }, spans.ctx);
}
