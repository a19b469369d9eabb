/**
 * The router's Prometheus metrics, on a registry of its own (no global
 * registry: two routers in one process, as in tests, never collide).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LocalHistogram } from './local-histogram.js';

/** Latency buckets (seconds) for LLM requests: from 5 ms to 10 minutes. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const ITL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1];
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Plugin time buckets (seconds): 1 µs to 10 ms. */
const PLUGIN_BUCKETS = [1e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2];
const QUEUE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Breaker states as gauge values. */
export const BREAKER_STATE_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;

/** All router metrics. */
export interface RouterMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'model' | 'model_version' | 'status'>;
  readonly latency: LocalHistogram<'model' | 'model_version'>;
  readonly ttft: LocalHistogram<'model' | 'model_version'>;
  readonly itl: LocalHistogram<'model' | 'model_version'>;
  readonly tenantRequests: Counter<'tenant' | 'status'>;
  readonly tenantTokens: Counter<'tenant' | 'kind'>;
  readonly rateLimitDegraded: Gauge;
  /** Every rate-limit decision taken locally although Redis is configured, by reason. */
  readonly rateLimitFallbacks: Counter<'reason'>;
  readonly tokens: Counter<'model' | 'model_version'>;
  readonly inFlight: Gauge<'model'>;
  readonly attempts: Counter<'endpoint' | 'outcome'>;
  readonly versionChoices: Counter<'model' | 'model_version' | 'reason'>;
  readonly versionFallbacks: Counter<'model' | 'from' | 'to'>;
  readonly routeWeight: Gauge<'model' | 'model_version'>;
  readonly routeConfiguredShare: Gauge<'model' | 'model_version'>;
  readonly routeObservedShare: Gauge<'model' | 'model_version'>;
  readonly endpointsReady: Gauge<'model' | 'model_version'>;
  readonly configReloads: Counter<'result'>;
  readonly configLastReloadSuccess: Gauge;
  readonly configLastReloadTime: Gauge;
  readonly breakerState: Gauge<'endpoint'>;
  readonly breakerTransitions: Counter<'endpoint' | 'to'>;
  readonly retries: Counter<'model'>;
  readonly migrations: Counter<'model' | 'model_version' | 'reason'>;
  /** Stream migrations per `model\u0000version`, for the status page (the counter above, readable at once). */
  readonly migrationCounts: Map<string, number>;
  readonly retryBudgetExhausted: Counter<'model'>;
  readonly pluginDuration: LocalHistogram<'profile' | 'plugin'>;
  readonly scheduleDuration: LocalHistogram<'profile'>;
  readonly admissionQueue: Gauge;
  readonly admissionWait: Histogram;
  readonly shed: Counter<'reason'>;
  readonly queueDepth: Gauge<'endpoint' | 'model' | 'model_version'>;
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
    latency: new LocalHistogram({
      name: 'llm_inference_latency_seconds',
      help: 'End-to-end request latency as the router sees it.',
      labelNames: ['model', 'model_version'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    ttft: new LocalHistogram({
      name: 'llm_time_to_first_token_seconds',
      help: 'Time from request arrival to the first chunk sent to the client.',
      labelNames: ['model', 'model_version'],
      buckets: TTFT_BUCKETS,
      registers,
    }),
    tenantRequests: new Counter({
      name: 'llm_tenant_requests_total',
      help: 'Requests by authenticated tenant and final gRPC status (auth on).',
      labelNames: ['tenant', 'status'],
      registers,
    }),
    tenantTokens: new Counter({
      name: 'llm_tenant_tokens_total',
      help: 'Tokens charged to tenants: prompt (estimated at admission) and output (as streamed).',
      labelNames: ['tenant', 'kind'],
      registers,
    }),
    rateLimitDegraded: new Gauge({
      name: 'llm_rate_limit_degraded',
      help: '1 while rate limits are enforced per replica because Redis is unreachable.',
      registers,
    }),
    rateLimitFallbacks: new Counter({
      name: 'llm_rate_limit_fallbacks_total',
      help: 'Rate-limit decisions made by this replica alone although Redis is configured, by reason: timeout, error, unavailable.',
      labelNames: ['reason'],
      registers,
    }),
    itl: new LocalHistogram({
      name: 'llm_inter_token_latency_seconds',
      help: 'Time between consecutive chunks of a stream, as sent to the client.',
      labelNames: ['model', 'model_version'],
      buckets: ITL_BUCKETS,
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
      help: 'Upstream attempts by endpoint and outcome (ok, retried, migrated, failed, cancelled, breaker_open).',
      labelNames: ['endpoint', 'outcome'],
      registers,
    }),
    versionChoices: new Counter({
      name: 'llm_router_version_choices_total',
      help: 'Version decisions by reason (weighted, sticky, pinned, fallback): the observed split.',
      labelNames: ['model', 'model_version', 'reason'],
      registers,
    }),
    versionFallbacks: new Counter({
      name: 'llm_router_version_fallbacks_total',
      help: 'Requests sent to another version because the chosen one had no usable endpoint.',
      labelNames: ['model', 'from', 'to'],
      registers,
    }),
    routeWeight: new Gauge({
      name: 'llm_route_weight',
      help: 'Configured canary weight of each model version.',
      labelNames: ['model', 'model_version'],
      registers,
    }),
    routeConfiguredShare: new Gauge({
      name: 'llm_route_configured_share',
      help: "Configured share (0..1) of each version in its model's traffic.",
      labelNames: ['model', 'model_version'],
      registers,
    }),
    routeObservedShare: new Gauge({
      name: 'llm_route_observed_share',
      help: "Observed share (0..1) of each version in its model's recent traffic (last minute).",
      labelNames: ['model', 'model_version'],
      registers,
    }),
    endpointsReady: new Gauge({
      name: 'llm_router_endpoints_ready',
      help: 'Ready endpoints per model version.',
      labelNames: ['model', 'model_version'],
      registers,
    }),
    configReloads: new Counter({
      name: 'llm_router_config_reloads_total',
      help: 'Config reloads by result (applied, rejected, unchanged).',
      labelNames: ['result'],
      registers,
    }),
    configLastReloadSuccess: new Gauge({
      name: 'llm_router_config_last_reload_successful',
      help: '1 when the last config reload was applied, 0 when it was rejected.',
      registers,
    }),
    configLastReloadTime: new Gauge({
      name: 'llm_router_config_last_reload_timestamp_seconds',
      help: 'When the config was last (re)loaded, valid or not.',
      registers,
    }),
    breakerState: new Gauge({
      name: 'llm_router_breaker_state',
      help: 'Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.',
      labelNames: ['endpoint'],
      registers,
    }),
    breakerTransitions: new Counter({
      name: 'llm_router_breaker_transitions_total',
      help: 'Circuit breaker state changes per endpoint, by new state.',
      labelNames: ['endpoint', 'to'],
      registers,
    }),
    retries: new Counter({
      name: 'llm_router_retries_total',
      help: 'Upstream attempts retried on another endpoint before the first chunk.',
      labelNames: ['model'],
      registers,
    }),
    migrationCounts: new Map(),
    migrations: new Counter({
      name: 'llm_stream_migrations_total',
      help: 'Streams continued on another endpoint after chunks reached the client, by why the endpoint stopped (unavailable, internal, idle-timeout, handback, ...).',
      labelNames: ['model', 'model_version', 'reason'],
      registers,
    }),
    retryBudgetExhausted: new Counter({
      name: 'llm_router_retry_budget_exhausted_total',
      help: 'Retries not made because the retry budget was spent.',
      labelNames: ['model'],
      registers,
    }),
    pluginDuration: new LocalHistogram({
      name: 'llm_router_scheduler_plugin_duration_seconds',
      help: 'Time per scheduling plugin run (filter, scorer, picker).',
      labelNames: ['profile', 'plugin'],
      buckets: PLUGIN_BUCKETS,
      registers,
    }),
    scheduleDuration: new LocalHistogram({
      name: 'llm_router_schedule_duration_seconds',
      help: 'Time per scheduling decision (all plugins).',
      labelNames: ['profile'],
      buckets: PLUGIN_BUCKETS,
      registers,
    }),
    admissionQueue: new Gauge({
      name: 'llm_router_admission_queue_length',
      help: 'Requests waiting for admission (router concurrency limit or saturated pool).',
      registers,
    }),
    admissionWait: new Histogram({
      name: 'llm_router_admission_wait_seconds',
      help: 'Time requests waited in the admission queue.',
      buckets: QUEUE_BUCKETS,
      registers,
    }),
    shed: new Counter({
      name: 'llm_router_shed_total',
      help: 'Requests shed with RESOURCE_EXHAUSTED, by reason (queue_full, queue_timeout, expected_wait, standing_queue).',
      labelNames: ['reason'],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'llm_queue_depth',
      help: 'Requests waiting at each endpoint (sidecar queue + engine waiting), as last reported.',
      labelNames: ['endpoint', 'model', 'model_version'],
      registers,
    }),
  };
}

/** Counts one stream migration in the metric and in the status page's tally. */
export function countMigration(metrics: RouterMetrics, model: string, version: string, reason: string): void {
  metrics.migrations.inc({ model, model_version: version, reason });
  const key = `${model}\u0000${version}`;
  metrics.migrationCounts.set(key, (metrics.migrationCounts.get(key) ?? 0) + 1);
}
