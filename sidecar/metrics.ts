/**
 * The sidecar's Prometheus metrics, on a registry of its own (no global
 * registry: several sidecars in one process, as in tests, never collide).
 * `llm_queue_depth` is the autoscaling signal (HorizontalPodAutoscaler via
 * prometheus-adapter).
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const TTFT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** Values read at scrape time. */
export interface SidecarGaugeSource {
  queued(): number;
  inFlight(): number;
  activeStreams(): number;
  ready(): boolean;
  draining(): boolean;
  l1Entries(): number;
  l1Bytes(): number;
  /** 1 up, 0 down, undefined when there is no L2. */
  l2Up(): number | undefined;
  prefixIndexBlocks(): number;
  prefixIndexCapacity(): number;
  watchers(): number;
}

/** All sidecar metrics. */
export interface SidecarMetrics {
  readonly registry: Registry;
  /** Updates the `model` / `model_version` labels of every series. */
  setModel(model: { model: string; model_version: string }): void;
  /** GenerateStream calls by final gRPC status and cache result. */
  readonly requests: Counter<'status' | 'cache'>;
  /** Time from call arrival to the first chunk written, by cache result. */
  readonly ttft: Histogram<'cache'>;
  readonly latency: Histogram<'cache'>;
  /** Response cache lookups by result: hit-l1, hit-l2, coalesced, miss, bypass, uncacheable. */
  readonly cache: Counter<'result'>;
  /** Failed or timed-out L2 commands. */
  readonly l2Errors: Counter<'op'>;
  /** Engine calls that failed, by gRPC status. */
  readonly engineErrors: Counter<'code'>;
  /** Requests refused before reaching the engine, by reason (queue_full, draining, not_ready). */
  readonly shed: Counter<'reason'>;
}

/**
 * Creates the metrics on a new registry. Every series carries `model` and
 * `model_version` (registry default labels; call {@link SidecarMetrics.setModel}
 * when the model name is learned from the engine).
 */
export function createSidecarMetrics(
  model: { model: string; model_version: string },
  source: SidecarGaugeSource,
): SidecarMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ ...model });
  const registers = [registry];
  const gauge = (name: string, help: string, read: () => number | undefined) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.reset();
        const v = read();
        if (v !== undefined) this.set(v);
      },
    });
  gauge('llm_queue_depth', 'Requests waiting in the sidecar for admission to the engine.', source.queued);
  gauge(
    'llm_sidecar_in_flight_requests',
    'Requests the sidecar has in flight to the engine.',
    source.inFlight,
  );
  gauge(
    'llm_sidecar_active_streams',
    'GenerateStream calls being served (engine, coalesced and cache replays).',
    source.activeStreams,
  );
  gauge('llm_sidecar_ready', '1 when the engine is ready and the pod takes work.', () =>
    source.ready() ? 1 : 0,
  );
  gauge('llm_sidecar_draining', '1 while the sidecar drains for shutdown.', () =>
    source.draining() ? 1 : 0,
  );
  gauge('llm_response_cache_l1_entries', 'Responses held in the in-process cache.', source.l1Entries);
  gauge('llm_response_cache_l1_bytes', 'Approximate bytes held in the in-process cache.', source.l1Bytes);
  gauge('llm_response_cache_l2_up', '1 when the Redis tier of the response cache is connected.', source.l2Up);
  gauge('llm_prefix_index_blocks', 'Prompt blocks in the prefix index.', source.prefixIndexBlocks);
  gauge(
    'llm_prefix_index_capacity_blocks',
    'Bound of the prefix index, derived from the engine KV capacity.',
    source.prefixIndexCapacity,
  );
  gauge('llm_sidecar_load_watchers', 'Routers watching this sidecar (WatchLoad streams).', source.watchers);

  return {
    registry,
    setModel(next) {
      registry.setDefaultLabels({ ...next });
    },
    requests: new Counter({
      name: 'llm_sidecar_requests_total',
      help: 'GenerateStream calls by final gRPC status and response cache result.',
      labelNames: ['status', 'cache'],
      registers,
    }),
    ttft: new Histogram({
      name: 'llm_sidecar_time_to_first_token_seconds',
      help: 'Time from call arrival to the first chunk sent, by response cache result.',
      labelNames: ['cache'],
      buckets: TTFT_BUCKETS,
      registers,
    }),
    latency: new Histogram({
      name: 'llm_sidecar_request_duration_seconds',
      help: 'Time from call arrival to the last chunk sent, by response cache result.',
      labelNames: ['cache'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    cache: new Counter({
      name: 'llm_response_cache_requests_total',
      help: 'Response cache results: hit-l1, hit-l2, coalesced, miss, bypass, uncacheable.',
      labelNames: ['result'],
      registers,
    }),
    l2Errors: new Counter({
      name: 'llm_response_cache_l2_errors_total',
      help: 'Redis tier commands that failed or timed out (the request went on without them).',
      labelNames: ['op'],
      registers,
    }),
    engineErrors: new Counter({
      name: 'llm_engine_errors_total',
      help: 'Engine calls that failed, by gRPC status.',
      labelNames: ['code'],
      registers,
    }),
    shed: new Counter({
      name: 'llm_sidecar_rejected_total',
      help: 'Calls refused before reaching the engine: queue_full, draining, not_ready.',
      labelNames: ['reason'],
      registers,
    }),
  };
}
