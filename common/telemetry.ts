/**
 * OpenTelemetry for every llmmesh process, configured only by the standard
 * `OTEL_*` environment variables. Tracing is on when an exporter is
 * configured (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
 * or `OTEL_TRACES_EXPORTER`), off otherwise: then the tracer is the API's
 * no-op tracer and costs nothing on the hot path.
 *
 * The tracer is created once in each `main` and passed down; nothing else in
 * the code reaches for a global. Propagation helpers live in
 * `trace-propagation.ts`, which does not load the SDK.
 */

import { type Tracer, trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';

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
