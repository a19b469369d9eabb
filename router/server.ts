/**
 * The router's composition root: builds the long-lived objects (metrics,
 * breakers, endpoint set, admission, gate, datastore), wires the request
 * pipeline (lifecycle → director → upstream attempts) behind the gRPC
 * handlers, and starts the admin server and config hot reload. The request
 * path itself lives in router/request/ and router/upstream/.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { trace as otelTrace, type Tracer } from '@opentelemetry/api';
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.js';
import { createLogger, type Logger } from '../common/log.js';
import { INFERENCE_SERVICE, loadProtos } from '../common/proto.js';
import { channelCredentials, serverCredentials } from '../common/tls.js';
import { type AdminServer, startAdminServer } from './admin/server.js';
import { type Admission, type AdmissionTimers, createAdmission } from './admission/admission.js';
import { createGate } from './auth/gate.js';
import type { RouterConfig } from './config/schema.js';
import { createConfigReloads } from './config-reload.js';
import { createDatastore } from './datastore.js';
import type { DnsResolver } from './discovery/dns.js';
import type { RedisLike } from './discovery/redis.js';
import { createGauges } from './gauges.js';
import { createInferenceHandlers } from './grpc/handlers.js';
import { BREAKER_STATE_VALUE, createRouterMetrics, type RouterMetrics } from './metrics.js';
import type { RouterContext } from './request/context.js';
import { createDirector } from './request/director.js';
import { createLifecycle } from './request/lifecycle.js';
import type { RequestTrace } from './request-trace.js';
import { createSplitTracker } from './routing/split-tracker.js';
import { usable } from './scheduling/load.js';
import { createBuiltinRegistry, type PluginRegistry } from './scheduling/registry.js';
import { type RouterStatus, routerStatus } from './status.js';
import { type Breakers, type BreakerTransition, createBreakers } from './upstream/breakers.js';
import { createEndpointSet, type EndpointSet } from './upstream/endpoints.js';
import { createRetryBudget } from './upstream/retry-budget.js';

export type { ConfigReloadEvent } from './config-reload.js';
export type { RouterStatus } from './status.js';

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

/** Starts the router: gRPC API, discovery, endpoint watching and (optionally) the admin server. */
export async function startRouter(options: RouterOptions): Promise<Router> {
  const log = options.logger ?? createLogger('router');
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const config = options.config;
  const metrics = createRouterMetrics();
  const split = createSplitTracker(60_000, now);
  const breakers = createBreakers({
    config: config.breaker,
    logger: log,
    rotateBucketController: options.breakerRotation,
  });
  const gate = createGate(
    log,
    (degraded) => metrics.rateLimitDegraded.set(degraded ? 1 : 0),
    (reason) => metrics.rateLimitFallbacks.inc({ reason }),
  );
  gate.prepare(config.auth);
  const tls = config.upstream_tls;
  const endpoints = createEndpointSet([], {
    credentials: tls
      ? channelCredentials(
          { caFile: tls.ca_file, certFile: tls.cert_file, keyFile: tls.key_file },
          'upstream_tls',
        )
      : undefined,
    channelOptions: tls?.server_name ? { 'grpc.ssl_target_name_override': tls.server_name } : undefined,
    logger: log,
    watcherId: `router-${process.pid}-${randomUUID().slice(0, 8)}`,
    now,
    breakerState: (a) => breakers.state(a),
    health: (a) => breakers.health(a),
  });
  breakers.events.on('health', (address: string) => endpoints.invalidate(address));
  breakers.events.on('transition', (t: BreakerTransition) => {
    metrics.breakerState.set({ endpoint: t.endpoint }, BREAKER_STATE_VALUE[t.to]);
    metrics.breakerTransitions.inc({ endpoint: t.endpoint, to: t.to });
    endpoints.invalidate();
    events.emit('breaker', t);
  });
  const retryBudget = createRetryBudget(config.upstream.retry_budget, now);
  const admission = createAdmission(config.admission, options.admissionTimers);
  admission.events.on('shed', ({ reason }: { reason: string }) => metrics.shed.inc({ reason }));
  admission.events.on('admitted', ({ waitedMs }: { waitedMs: number }) => {
    if (waitedMs > 0) metrics.admissionWait.observe(waitedMs / 1000);
  });

  const datastore = createDatastore(config, {
    registry: options.registry ?? createBuiltinRegistry(),
    random,
    pluginTimer: (profile, plugin, ms) => metrics.pluginDuration.observe({ profile, plugin }, ms / 1000),
    discovery: {
      logger: log,
      onAddresses: (addresses) => {
        endpoints.setAddresses(addresses);
        breakers.retain(addresses);
      },
      resolver: options.resolver,
      redis: options.redis,
    },
    onApplied: (next, before) => {
      if (next.listen !== before.listen || next.admin !== before.admin) {
        log.warn('listen and admin addresses change only on restart', {
          listen: next.listen,
          admin: next.admin,
        });
      }
      gate.prepare(next.auth);
      breakers.configure(next.breaker);
      retryBudget.configure(next.upstream.retry_budget);
      admission.configure(next.admission);
      endpoints.invalidate();
      gauges.refresh();
    },
  });
  const gauges = createGauges({ datastore, endpoints, split, admission, metrics, now });
  const ctx: RouterContext = {
    datastore,
    endpoints,
    breakers,
    admission,
    gate,
    retryBudget,
    metrics,
    split,
    tracer: options.tracer ?? otelTrace.getTracer('llmmesh-router'),
    log,
    now,
    random,
  };
  const run = createLifecycle(ctx, createDirector(ctx), options.onRequestTrace);

  const cleanup = async () => {
    gauges.close();
    await datastore.close();
    gate.close();
    endpoints.close();
    breakers.close();
  };

  let server: RunningGrpcServer;
  try {
    server = await startGrpcServer({
      credentials: config.tls
        ? serverCredentials(
            {
              certFile: config.tls.cert_file,
              keyFile: config.tls.key_file,
              clientCaFile: config.tls.client_ca_file,
            },
            'tls',
          )
        : undefined,
      serverOptions: { 'grpc.max_receive_message_length': config.limits.max_request_bytes },
      address: options.listen ?? config.listen,
      services: [
        {
          definition: loadProtos().inference.Inference.service,
          implementation: createInferenceHandlers(run, datastore, endpoints),
        },
      ],
      reflect: [INFERENCE_SERVICE],
    });
  } catch (err) {
    await cleanup();
    throw err;
  }

  const reloads = createConfigReloads({ apply: (next) => datastore.apply(next), metrics, log, events, now });
  const status = () =>
    routerStatus({
      listen: () => server.address,
      datastore,
      endpoints,
      split,
      admission,
      retryBudget,
      metrics,
      reloads: reloads.status,
    });

  let admin: AdminServer | undefined;
  const adminAddress = options.admin === undefined ? config.admin : options.admin;
  if (adminAddress !== false) {
    try {
      admin = await startAdminServer(
        adminAddress,
        {
          metrics: async () => {
            gauges.refresh();
            return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
          },
          status,
          ready: () => endpoints.snapshot().endpoints.some(usable),
        },
        { tokenSha256: config.admin_token_sha256 },
      );
    } catch (err) {
      await server.shutdown(0);
      await cleanup();
      throw err;
    }
  }
  reloads.watch(options.watch?.path, options.watch?.load, options.watch?.debounceMs);

  server.setHealth('', 'SERVING');
  gauges.attach((serving) => server.setHealth(INFERENCE_SERVICE, serving ? 'SERVING' : 'NOT_SERVING'));
  log.info('router listening', {
    address: server.address,
    admin: admin?.url,
    discovery: config.discovery.kind,
  });

  return {
    address: server.address,
    port: server.port,
    adminUrl: admin?.url,
    endpoints,
    metrics,
    breakers,
    admission,
    events,
    config: () => datastore.config(),
    applyConfig: (next) => datastore.apply(next),
    reloadConfig: () => reloads.reload(),
    status,
    async close(graceMs = 10_000) {
      reloads.close();
      await server.shutdown(graceMs);
      await cleanup();
      await admin?.close();
    },
  };
}
