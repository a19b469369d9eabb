/** Options, defaults and the public shape of a running sidecar. */
import type { EventEmitter } from 'node:events';
import type { Tracer } from '@opentelemetry/api';
import type { LoadReport } from '../common/generated/llmmesh/v1/LoadReport.js';
import type { Logger } from '../common/log.js';
import type { ServerTlsFiles } from '../common/tls.js';
import type { ResponseCache } from './cache/response-cache.js';
import type { PrefixIndex } from './load/prefix-index.js';
import type { SidecarMetrics } from './metrics.js';
import type { Registration } from './registration.js';

/** Default in-flight limit when neither the options nor the engine give one. */
export const DEFAULT_MAX_IN_FLIGHT = 256;
/** Default drain grace period: fits Kubernetes' default terminationGracePeriodSeconds (30 s). */
export const DEFAULT_DRAIN_GRACE_MS = 25_000;
/**
 * Default hand-back margin of a drain: streams still running this long
 * before the grace period ends are handed back to the router. It covers
 * writing the status to every stream and the engine aborts, with room to
 * spare on a loaded pod; the router's continuation runs on another pod.
 */
export const DEFAULT_DRAIN_HANDBACK_MS = 1_000;

/**
 * When, after a drain starts, its running streams are handed back: the
 * margin before the grace ends, at most half the grace (a short grace still
 * lets streams finish for half of it).
 */
export function handbackDelayMs(graceMs: number, handbackMs = DEFAULT_DRAIN_HANDBACK_MS): number {
  return Math.max(0, graceMs - Math.min(handbackMs, graceMs / 2));
}

/** Options of {@link startSidecar}. */
export interface SidecarOptions {
  /** The engine's base URL, e.g. `http://127.0.0.1:8000`. */
  engineUrl: string;
  /** OpenTelemetry tracer (default: the API's, a no-op unless an SDK is started). */
  tracer?: Tracer;
  /** TLS for the Engine API; with `clientCaFile`, routers must present certificates (mTLS). */
  tls?: ServerTlsFiles;
  /** gRPC listen address, `host:port` (port 0 picks one). */
  listen: string;
  /** Logical model name announced to routers; defaults to the engine's first served model. */
  model?: string;
  /** Model version announced to routers. */
  version: string;
  /** Load reports at least this often (default 250 ms). */
  reportIntervalMs?: number;
  /** Engine probes (`/health`, `/metrics`) this often (default 500 ms). */
  probeIntervalMs?: number;
  /**
   * Requests in flight to the engine before the sidecar queues (≈ vLLM
   * max_num_seqs). Default: the engine's own limit when it publishes it, else 256.
   */
  maxInFlight?: number;
  /** Requests that may wait for admission; beyond, RESOURCE_EXHAUSTED (default 1024). */
  maxQueue?: number;
  /** `grpc-retry-pushback-ms` sent when the queue is full (default 500). */
  queuePushbackMs?: number;
  /** API key for the engine (vLLM --api-key). */
  engineApiKey?: string;
  logger?: Logger;
  /** Admin HTTP address (`host:port`), or false / `off` for none (default none). */
  admin?: string | false;
  /** SHA-256 (hex) of a bearer token the admin server requires on all but `/healthz` and `/readyz`. */
  adminTokenSha256?: string;
  /** Redis URL: shared L2 response cache and discovery registration. */
  redis?: string;
  /** Response cache of deterministic requests (default true). */
  responseCache?: boolean;
  /** Response cache TTL, both tiers (default 10 min). */
  cacheTtlMs?: number;
  /** L1 bound in bytes; 0 disables L1 (default 64 MiB). */
  cacheL1MaxBytes?: number;
  /** Redis key prefix of the response cache (default `llmmesh:cache:`). */
  cacheKeyPrefix?: string;
  /** Bound of each Redis command on the request path (default 50 ms). */
  redisTimeoutMs?: number;
  /** Register for `redis` discovery when `redis` is set (default true). */
  register?: boolean;
  /** Address announced in the registration (default: the listen address, with a wildcard host replaced by this host's address). */
  advertiseAddress?: string;
  /** Discovery key prefix (default `llmmesh:endpoints:`). */
  discoveryPrefix?: string;
  /** Registration TTL (default 10 s). */
  registrationTtlMs?: number;
  /** Registration heartbeat (default 3 s). */
  heartbeatMs?: number;
  /** Fixed prefix-index capacity in blocks (default: derived from the engine's KV capacity). */
  prefixIndexBlocks?: number;
  /** Characters per token when deriving the prefix-index capacity (default 4). */
  prefixIndexCharsPerToken?: number;
  /** Clock for cache TTLs (default `Date.now`). */
  now?: () => number;
  /**
   * How long before the end of a drain's grace period the streams still
   * running are handed back (default {@link DEFAULT_DRAIN_HANDBACK_MS}; at
   * most half the grace).
   */
  drainHandbackMs?: number;
}

/** A running sidecar. */
export interface Sidecar {
  /** `host:port` routers dial. */
  readonly address: string;
  readonly port: number;
  /** The admin server's base URL, when it runs. */
  readonly adminUrl: string | undefined;
  /** The current load report (gauges; no prefix index). */
  report(): LoadReport;
  /**
   * Emits `report` (LoadReport, without the prefix index) with every report
   * published; `cache` ({ result, key }) for every call's cache result;
   * `cache-stored` ({ key, tier }) after a response was stored; `redis`
   * (boolean) when the Redis connection comes up or goes down.
   */
  readonly events: EventEmitter;
  readonly metrics: SidecarMetrics;
  readonly prefixIndex: PrefixIndex;
  /** The response cache, when enabled. */
  readonly cache: ResponseCache | undefined;
  /** The discovery registration, when Redis is configured. */
  readonly registration: Registration | undefined;
  /**
   * Drains: reports `draining`, refuses new streams with UNAVAILABLE, lets
   * in-flight streams finish for up to `graceMs`, hands back those still
   * running shortly before it ends (UNAVAILABLE with the trailer
   * `x-llmmesh-handback: draining`, engine requests aborted), deregisters,
   * then stops.
   */
  drain(graceMs?: number): Promise<void>;
  /** Stops at once (cancels in-flight streams). */
  close(): Promise<void>;
}
