/**
 * The sidecar: runs beside the engine in every inference pod, serves
 * `llmmesh.v1.Engine` to routers, forwards requests to the engine's
 * OpenAI-compatible HTTP API through admission and the response cache, and
 * pushes the pod's load and prefix index to every router that watches it.
 * Optional: an admin HTTP server (metrics, probes) and Redis (shared L2 cache,
 * discovery registration); without Redis everything works in memory.
 */
import { EventEmitter } from 'node:events';
import { hostname, networkInterfaces } from 'node:os';
import type * as grpc from '@grpc/grpc-js';
import type { Tracer } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import { formatHostPort, parseHostPort } from '../common/address.js';
import type { EngineHandlers } from '../common/generated/llmmesh/v1/Engine.js';
import type { LoadReport } from '../common/generated/llmmesh/v1/LoadReport.js';
import type { WatchLoadRequest__Output } from '../common/generated/llmmesh/v1/WatchLoadRequest.js';
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.js';
import { createLogger, type Logger } from '../common/log.js';
import { ENGINE_SERVICE, loadProtos } from '../common/proto.js';
import { type ServerTlsFiles, serverCredentials } from '../common/tls.js';
import { adminDisabled, type SidecarAdminServer, startSidecarAdmin } from './admin-server.js';
import { type Admission, createAdmission } from './admission.js';
import { createResponseCache, type ResponseCache } from './cache/response-cache.js';
import { createEngineClient } from './engine-client.js';
import { createGenerateHandler, type GenerateHandler } from './generate.js';
import { createEngineProber, DEFAULT_PROBE_INTERVAL_MS } from './load/engine-prober.js';
import { createLoadReporter, DEFAULT_REPORT_INTERVAL_MS } from './load/load-reporter.js';
import {
  createPrefixIndex,
  DEFAULT_CHARS_PER_TOKEN,
  type PrefixIndex,
  prefixIndexCapacity,
} from './load/prefix-index.js';
import { createSidecarMetrics, type SidecarMetrics } from './metrics.js';
import { createRedisConnection, redactUrl } from './redis-connection.js';
import { createRegistration, type Registration } from './registration.js';

export { DEFAULT_PROBE_INTERVAL_MS, DEFAULT_REPORT_INTERVAL_MS };
/** Default in-flight limit when neither the options nor the engine give one. */
export const DEFAULT_MAX_IN_FLIGHT = 256;
/** Default drain grace period: fits Kubernetes' default terminationGracePeriodSeconds (30 s). */
export const DEFAULT_DRAIN_GRACE_MS = 25_000;

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
   * in-flight streams finish for up to `graceMs`, deregisters, then stops.
   */
  drain(graceMs?: number): Promise<void>;
  /** Stops at once (cancels in-flight streams). */
  close(): Promise<void>;
}

/** Starts a sidecar; resolves once its gRPC port is open (the engine may still be loading). */
export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const log = options.logger ?? createLogger('sidecar');
  const engine = createEngineClient({ url: options.engineUrl, apiKey: options.engineApiKey });
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const charsPerToken = options.prefixIndexCharsPerToken ?? DEFAULT_CHARS_PER_TOKEN;

  let draining = false;
  let grpcServer: RunningGrpcServer | undefined;
  let model = options.model ?? '';

  const prefixIndex = createPrefixIndex(
    options.prefixIndexBlocks !== undefined ? { capacity: options.prefixIndexBlocks } : {},
  );
  // Filled in below; the closures that read them run only after construction.
  let reporterRef: { changed(): void } | undefined;
  const changed = () => reporterRef?.changed();

  const admission: Admission = createAdmission(options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT, changed, {
    maxQueue: options.maxQueue,
    queuePushbackMs: options.queuePushbackMs,
  });

  let redis: Redis | undefined;
  let registration: Registration | undefined;
  let cache: ResponseCache | undefined;
  let handler: GenerateHandler | undefined;

  const metrics = createSidecarMetrics(
    { model, model_version: options.version },
    {
      queued: () => admission.queued,
      inFlight: () => admission.inFlight,
      activeStreams: () => handler?.active ?? 0,
      ready: () => prober.state.ready && !draining,
      draining: () => draining,
      l1Entries: () => cache?.l1Entries ?? 0,
      l1Bytes: () => cache?.l1Bytes ?? 0,
      l2Up: () => (cache && cache.l2State !== 'off' ? (cache.l2State === 'up' ? 1 : 0) : undefined),
      prefixIndexBlocks: () => prefixIndex.size,
      prefixIndexCapacity: () => prefixIndex.capacity,
      watchers: () => reporter.watcherCount,
    },
  );

  const prober = createEngineProber({
    engine,
    intervalMs: options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS,
    logger: log,
    onReadyChange(ready) {
      grpcServer?.setHealth(ENGINE_SERVICE, ready && !draining ? 'SERVING' : 'NOT_SERVING');
    },
    onChange(state) {
      if (!model && state.servedModelName) {
        model = state.servedModelName;
        metrics.setModel({ model, model_version: options.version });
        void registration?.beat();
      }
      if (options.maxInFlight === undefined && state.maxNumSeqs !== undefined) {
        admission.setLimit(state.maxNumSeqs);
      }
      if (options.prefixIndexBlocks === undefined && state.metrics.numGpuBlocks && state.metrics.blockSize) {
        prefixIndex.setCapacity(
          prefixIndexCapacity(state.metrics.numGpuBlocks, state.metrics.blockSize, charsPerToken),
        );
      }
      changed();
    },
  });

  const reporter = createLoadReporter({
    intervalMs: options.reportIntervalMs ?? DEFAULT_REPORT_INTERVAL_MS,
    prefixIndex,
    onReport: (r) => events.emit('report', r),
    build: () => {
      const s = prober.state;
      return {
        model,
        version: options.version,
        servedModelName: s.servedModelName,
        ready: s.ready && !draining,
        draining,
        inFlight: admission.inFlight,
        queued: admission.queued,
        reason: draining ? 'draining' : s.ready ? '' : s.reason,
        engine: {
          numRequestsRunning: s.metrics.numRequestsRunning ?? 0,
          numRequestsWaiting: s.metrics.numRequestsWaiting ?? 0,
          kvCacheUsagePerc: s.metrics.kvCacheUsagePerc ?? 0,
        },
        capacity: {
          maxNumSeqs: admission.limit,
          numGpuBlocks: s.metrics.numGpuBlocks ?? 0,
          blockSize: s.metrics.blockSize ?? 0,
          maxModelLen: s.maxModelLen,
        },
      };
    },
  });
  reporterRef = reporter;

  if (options.redis) {
    redis = createRedisConnection({
      url: options.redis,
      commandTimeoutMs: options.redisTimeoutMs,
      logger: log,
      onState(up) {
        events.emit('redis', up);
        if (up) void registration?.beat();
      },
    });
  }
  if (options.responseCache ?? true) {
    cache = createResponseCache({
      ttlMs: options.cacheTtlMs,
      l1MaxBytes: options.cacheL1MaxBytes,
      keyPrefix: options.cacheKeyPrefix,
      l2TimeoutMs: options.redisTimeoutMs,
      redis,
      now: options.now,
      logger: log,
    });
    cache.events.on('stored', (e) => events.emit('cache-stored', e));
    cache.events.on('l2-error', (e: { op: string }) => metrics.l2Errors.inc({ op: e.op }));
  }

  handler = createGenerateHandler({
    version: options.version,
    model: () => model,
    servedModelName: () => prober.state.servedModelName,
    refusal: () => {
      if (draining) return { reason: 'draining', message: `sidecar for ${engine.url} is draining` };
      if (!prober.state.ready) return { reason: 'not_ready', message: prober.state.reason };
      return undefined;
    },
    engine,
    admission,
    prefixIndex,
    cache,
    metrics,
    logger: log,
    tracer: options.tracer,
  });
  handler.events.on('cache', (e) => events.emit('cache', e));
  const generate = handler;

  const handlers: EngineHandlers = {
    GenerateStream(call) {
      void generate.handle(call);
    },
    WatchLoad(call) {
      watch(call);
    },
  };

  const watch = (call: grpc.ServerWritableStream<WatchLoadRequest__Output, LoadReport>) => {
    const remove = reporter.addWatcher(call);
    log.debug('load watcher connected', { watcher: call.request.watcherId, watchers: reporter.watcherCount });
    call.once('cancelled', remove);
    call.once('close', remove);
    call.once('error', remove);
  };

  const stopBackground = async () => {
    prober.stop();
    reporter.close();
    await registration?.stop();
    redis?.disconnect();
  };

  const protos = loadProtos();
  try {
    grpcServer = await startGrpcServer({
      credentials: options.tls ? serverCredentials(options.tls, 'tls') : undefined,
      address: options.listen,
      services: [{ definition: protos.engine.Engine.service, implementation: handlers }],
      reflect: [ENGINE_SERVICE],
    });
  } catch (err) {
    await stopBackground();
    engine.close();
    throw err;
  }
  grpcServer.setHealth('', 'SERVING');
  grpcServer.setHealth(ENGINE_SERVICE, prober.state.ready ? 'SERVING' : 'NOT_SERVING');
  const server = grpcServer;

  let admin: SidecarAdminServer | undefined;
  if (!adminDisabled(options.admin)) {
    try {
      admin = await startSidecarAdmin(options.admin as string, {
        metrics: async () => ({
          contentType: metrics.registry.contentType,
          body: await metrics.registry.metrics(),
        }),
        readiness: () => ({
          ready: prober.state.ready && !draining,
          reason: draining ? 'draining' : prober.state.reason,
        }),
        status: () => ({ ...reporter.current(), prefixIndexBlocks: prefixIndex.size }),
      });
    } catch (err) {
      await server.shutdown(0);
      await stopBackground();
      engine.close();
      throw err;
    }
  }

  if (redis && (options.register ?? true)) {
    registration = createRegistration({
      redis,
      address: options.advertiseAddress ?? advertisedAddress(options.listen, server.port),
      identity: () => ({ model, version: options.version }),
      prefix: options.discoveryPrefix,
      ttlMs: options.registrationTtlMs,
      heartbeatMs: options.heartbeatMs,
      logger: log,
    });
  }

  log.info('sidecar listening', {
    address: server.address,
    engine: engine.url,
    version: options.version,
    admin: admin?.url,
    redis: options.redis ? redactUrl(options.redis) : undefined,
  });

  let closing: Promise<void> | undefined;
  // close() during a drain cuts the grace period short.
  let force: () => void = () => {};
  const forced = new Promise<true>((resolve) => {
    force = () => resolve(true);
  });
  const finish = async (graceMs: number) => {
    // Load watchers are endless streams: end them so shutdown need not wait.
    reporter.endAll();
    await registration?.stop();
    await server.shutdown(graceMs);
    await stopBackground();
    await admin?.close();
    engine.close();
  };

  return {
    address: server.address,
    port: server.port,
    adminUrl: admin?.url,
    events,
    metrics,
    prefixIndex,
    cache,
    get registration() {
      return registration;
    },
    report: () => reporter.current(),
    drain(graceMs = DEFAULT_DRAIN_GRACE_MS) {
      closing ??= (async () => {
        draining = true;
        server.setHealth(ENGINE_SERVICE, 'NOT_SERVING');
        log.info('draining', { inFlight: admission.inFlight, queued: admission.queued, graceMs });
        reporter.publish();
        const deadline = Date.now() + graceMs;
        let timer: NodeJS.Timeout | undefined;
        const cut = await Promise.race([
          generate.idle().then(() => false),
          forced,
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), graceMs);
          }),
        ]);
        clearTimeout(timer);
        if (cut) {
          log.warn('drain grace period over; cancelling what is left', { active: generate.active });
        }
        await finish(cut ? 0 : Math.max(0, deadline - Date.now()));
        log.info('drained');
      })();
      return closing;
    },
    close() {
      force();
      closing ??= (async () => {
        draining = true;
        await finish(0);
      })();
      return closing;
    },
  };
}

/**
 * The address to announce for `listen` bound on `port`: a wildcard host
 * (`0.0.0.0`, `::`) is replaced by this host's first non-internal IPv4
 * address (the pod IP in Kubernetes), or its hostname.
 */
export function advertisedAddress(listen: string, port: number): string {
  const { host } = parseHostPort(listen, 'listen');
  if (host !== '0.0.0.0' && host !== '::' && host !== '') return formatHostPort(host, port);
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === 'IPv4' && !a.internal) return formatHostPort(a.address, port);
    }
  }
  return formatHostPort(hostname(), port);
}
