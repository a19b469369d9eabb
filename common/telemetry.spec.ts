import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Metadata } from '@grpc/grpc-js';
import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api';
import { startOtlpReceiver } from '../bench/otlp-receiver.js';
import { startTelemetry, tracingConfigured } from './telemetry.js';
import { contextFromMetadata, propagationFor } from './trace-propagation.js';

describe('telemetry', () => {
  it('is off unless an exporter is configured, and still continues trace ids when off', () => {
    assert.equal(tracingConfigured({}), false);
    assert.equal(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x:4318' }), true);
    assert.equal(
      tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x', OTEL_SDK_DISABLED: 'true' }),
      false,
    );
    assert.equal(
      tracingConfigured({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' }),
      false,
    );
    const off = startTelemetry('llmmesh-test', {});
    assert.equal(off.enabled, false);
    const md = new Metadata();
    md.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    const parent = contextFromMetadata(md);
    const span = off.tracer.startSpan('x', {}, parent);
    const p = propagationFor(span, parent);
    assert.equal(p.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.match(p.traceparent, /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    assert.doesNotMatch(p.traceparent, /00f067aa0ba902b7/);
    const fresh = propagationFor(off.tracer.startSpan('y', {}, ROOT_CONTEXT), ROOT_CONTEXT);
    assert.match(fresh.traceId, /^[0-9a-f]{32}$/);
  });

  describe('exporting over OTLP/HTTP', () => {
    const closers: Array<() => Promise<void>> = [];
    after(async () => {
      for (const c of closers) await c();
    });

    it('exports spans with the component service name, continuing the caller trace', async () => {
      const receiver = await startOtlpReceiver();
      closers.push(receiver.close);
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
      process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json';
      process.env.OTEL_BSP_SCHEDULE_DELAY = '50';
      delete process.env.OTEL_SERVICE_NAME;
      const t = startTelemetry('llmmesh-test');
      closers.push(t.shutdown);
      assert.equal(t.enabled, true);
      const md = new Metadata();
      md.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
      const parent = contextFromMetadata(md);
      const span = t.tracer.startSpan('llmmesh.v1.Inference/Generate', { kind: SpanKind.SERVER }, parent);
      const p = propagationFor(span, parent);
      assert.equal(p.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.ok(p.traceparent.includes(span.spanContext().spanId));
      span.setAttribute('gen_ai.request.model', 'm');
      span.end();
      await receiver.waitFor((s) => s.length > 0, 'one span');
      const got = receiver.spans[0];
      assert.equal(got?.service, 'llmmesh-test');
      assert.equal(got?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.equal(got?.parentSpanId, '00f067aa0ba902b7');
      assert.equal(got?.attributes['gen_ai.request.model'], 'm');
    });
  });
});
