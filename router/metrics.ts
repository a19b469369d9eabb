/**
 * The router's Prometheus metrics, on a registry of its own (no global
 * registry: two routers in one process, as in tests, never collide).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets (seconds) for LLM requests: from 5 ms to 10 minutes. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** All router metrics. */
export interface RouterMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'model' | 'model_version' | 'status'>;
  readonly latency: Histogram<'model' | 'model_version'>;
  readonly ttft: Histogram<'model' | 'model_version'>;
  readonly tokens: Counter<'model' | 'model_version'>;
  readonly inFlight: Gauge<'model'>;
  readonly attempts: Counter<'endpoint' | 'outcome'>;
  readonly versionChoices: Counter<'model' | 'model_version' | 'reason'>;
  readonly routeWeight: Gauge<'model' | 'model_version'>;
  readonly endpointsReady: Gauge<'model' | 'model_version'>;
}

/** Creates the metrics on a new registry. */
export function createRouterMetrics(): RouterMetrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    requests: new Counter({
      name: 'llm_inference_requests_total',
      help: 'Inference requests by model version and final gRPC status.',
      labelNames: ['model', 'model_version', 'status'],
      registers,
    }),
    latency: new Histogram({
      name: 'llm_inference_latency_seconds',
      help: 'End-to-end request latency as the router sees it.',
      labelNames: ['model', 'model_version'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    ttft: new Histogram({
      name: 'llm_time_to_first_token_seconds',
      help: 'Time from request arrival to the first chunk sent to the client.',
      labelNames: ['model', 'model_version'],
      buckets: TTFT_BUCKETS,
      registers,
    }),
    tokens: new Counter({
      name: 'llm_tokens_generated_total',
      help: 'Completion tokens streamed to clients (from engine usage).',
      labelNames: ['model', 'model_version'],
      registers,
    }),
    inFlight: new Gauge({
      name: 'llm_router_in_flight_requests',
      help: 'Requests the router is serving now.',
      labelNames: ['model'],
      registers,
    }),
    attempts: new Counter({
      name: 'llm_router_upstream_attempts_total',
      help: 'Upstream attempts by endpoint and outcome (ok, retried, failed).',
      labelNames: ['endpoint', 'outcome'],
      registers,
    }),
    versionChoices: new Counter({
      name: 'llm_router_version_choices_total',
      help: 'Version decisions by reason (weighted, sticky, pinned, fallback): the observed split.',
      labelNames: ['model', 'model_version', 'reason'],
      registers,
    }),
    routeWeight: new Gauge({
      name: 'llm_route_weight',
      help: 'Configured canary weight of each model version.',
      labelNames: ['model', 'model_version'],
      registers,
    }),
    endpointsReady: new Gauge({
      name: 'llm_router_endpoints_ready',
      help: 'Ready endpoints per model version.',
      labelNames: ['model', 'model_version'],
      registers,
    }),
  };
}
