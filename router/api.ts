/**
 * The router's public surface: the options of `startRouter` and the running
 * router it returns (router/server.ts builds it).
 */
import type { EventEmitter } from 'node:events';
import type { Tracer } from '@opentelemetry/api';
import type { Logger } from '../common/log.js';
import type { Admission, AdmissionTimers } from './admission/admission.js';
import type { RouterConfig } from './config/schema.js';
import type { DnsResolver } from './discovery/dns.js';
import type { RedisLike } from './discovery/redis.js';
import type { RouterMetrics } from './metrics.js';
import type { RequestTrace } from './request-trace.js';
import type { PluginRegistry } from './scheduling/registry.js';
import type { RouterStatus } from './status.js';
import type { Breakers } from './upstream/breakers.js';
import type { EndpointSet } from './upstream/endpoints.js';

/** Options of {@link startRouter}. */
export interface RouterOptions {
  config: RouterConfig;
  logger?: Logger;
  /** Randomness for weighted choice and tie-breaks, [0, 1). */
  random?: () => number;
  now?: () => number;
  /** Overrides `config.listen` (e.g. port 0 in tests). */
  listen?: string;
  /** Overrides `config.admin`; `false` starts no admin server. */
  admin?: string | false;
  /**
   * Watch a config file and hot-reload it (file and directory events, and
   * {@link Router.reloadConfig} for SIGHUP). `load` reads and validates it.
   */
  watch?: { path: string; load: () => RouterConfig; debounceMs?: number };
  /** Scheduling plugins (default: the built-ins). */
  registry?: PluginRegistry;
  /** Drives breaker statistics windows (`rotate` events); default a timer. */
  breakerRotation?: EventEmitter;
  /** Clock and timers of the admission queue. */
  admissionTimers?: AdmissionTimers;
  /** DNS discovery resolver (default: the system's). */
  resolver?: DnsResolver;
  /** Redis discovery client factory (default: ioredis). */
  redis?: (url: string) => RedisLike;
  /** Receives each finished request's routing story (for spans, logs, tests). */
  onRequestTrace?: (trace: RequestTrace) => void;
  /** OpenTelemetry tracer (default: the API's, a no-op unless an SDK is started). */
  tracer?: Tracer;
  /** Run the canary's judging timer (default true; tests may call `canary.tick()` themselves). */
  canaryTimer?: boolean;
}

/** A running router. */
export interface Router {
  /** `host:port` of the gRPC API. */
  readonly address: string;
  readonly port: number;
  /** Base URL of the admin HTTP server, if started. */
  readonly adminUrl: string | undefined;
  readonly endpoints: EndpointSet;
  readonly metrics: RouterMetrics;
  readonly breakers: Breakers;
  readonly admission: Admission;
  /** Emits `config` ({@link ConfigReloadEvent}) and `breaker` ({@link BreakerTransition}). */
  readonly events: EventEmitter;
  /** The config in force. */
  config(): RouterConfig;
  /**
   * Replaces the config for new requests (in-flight streams keep the decisions
   * they made). Listen and admin addresses are not changed at run time.
   * Throws a {@link ConfigError} when the config cannot be applied.
   */
  applyConfig(config: RouterConfig): void;
  /** Re-reads the watched config file now (SIGHUP); no-op without `watch`. */
  reloadConfig(): void;
  /** Machine-readable state, as `/status` serves it. */
  status(): RouterStatus;
  /** Stops accepting requests, lets streams finish for up to `graceMs`, then stops. */
  close(graceMs?: number): Promise<void>;
}
