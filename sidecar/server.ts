/**
 * The sidecar: runs beside the engine in every inference pod, serves
 * `llmmesh.v1.Engine` to routers, forwards requests to the engine's
 * OpenAI-compatible HTTP API through admission and the response cache, and
 * pushes the pod's load and prefix index to every router that watches it.
 * Optional: an admin HTTP server (metrics, probes) and Redis (shared L2 cache,
 * discovery registration); without Redis everything works in memory.
 *
 * This file wires the parts together; the pod's serving state lives in
 * `pod-state.ts`, the request path in `generate/`.
 */
import { EventEmitter } from 'node:events';
import { hostname, networkInterfaces } from 'node:os';
import type * as grpc from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { formatHostPort, parseHostPort } from '../common/address.js';
import { adminDisabled } from '../common/admin-http.js';
import { encodeChunk } from '../common/chunk-codec.js';
import type { EngineHandlers } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { LoadReport } from '../common/generated/llmmesh/v1/LoadReport.js';
import type { WatchLoadRequest__Output } from '../common/generated/llmmesh/v1/WatchLoadRequest.js';
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.js';
import { createLogger, type Logger } from '../common/log.js';
import { ENGINE_SERVICE, loadProtos } from '../common/proto.js';
import { createRedisConnection, DEFAULT_REDIS_TIMEOUT_MS, redactUrl } from '../common/redis.js';
import { serverCredentials } from '../common/tls.js';
import { type SidecarAdminServer, startSidecarAdmin } from './admin-server.js';
import { createAdmission } from './admission.js';
import { createResponseCache, type ResponseCache } from './cache/response-cache.js';
import { createEngineClient } from './engine-client.js';
import { createGenerateHandler, type GenerateHandler } from './generate/handler.js';
import { createLifecycle } from './lifecycle.js';
import { DEFAULT_PROBE_INTERVAL_MS } from './load/engine-prober.js';
import { DEFAULT_REPORT_INTERVAL_MS } from './load/load-reporter.js';
import { createPodMonitor, type PodMonitor } from './load/pod-monitor.js';
import { createPrefixIndex } from './load/prefix-index.js';
import { DEFAULT_MAX_IN_FLIGHT, type Sidecar, type SidecarOptions } from './options.js';
import { createRegistration, type Registration } from './registration.js';

export {
  DEFAULT_DRAIN_GRACE_MS,
  DEFAULT_DRAIN_HANDBACK_MS,
  DEFAULT_MAX_IN_FLIGHT,
  handbackDelayMs,
  type Sidecar,
  type SidecarOptions,
} from './options.js';
export { DEFAULT_PROBE_INTERVAL_MS, DEFAULT_REPORT_INTERVAL_MS };

/** Starts a sidecar; resolves once its gRPC port is open (the engine may still be loading). */
export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const log = options.logger ?? createLogger('sidecar');
  const engine = createEngineClient({ url: options.engineUrl, apiKey: options.engineApiKey });
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const prefixIndex = createPrefixIndex(
    options.prefixIndexBlocks !== undefined ? { capacity: options.prefixIndexBlocks } : {},
  );
  // Filled in below; the closures that read them run only after construction.
  let monitor: PodMonitor | undefined;
  let generate: GenerateHandler | undefined;
  let registration: Registration | undefined;
  const admission = createAdmission(
    options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
    () => monitor?.reporter.changed(),
    { maxQueue: options.maxQueue, queuePushbackMs: options.queuePushbackMs },
  );
  const { redis, cache } = sharedState(options, log, events, () => registration);
  monitor = createPodMonitor({
    ...options,
    engine,
    admission,
    prefixIndex,
    logger: log,
    gauges: { activeStreams: () => generate?.active ?? 0, cache: () => cache },
    onReport: (r) => events.emit('report', r),
    onModel: () => void registration?.beat(),
  });
  const { pod, reporter, metrics, prober } = monitor;
  if (cache) cache.events.on('l2-error', (e: { op: string }) => metrics.l2Errors.inc({ op: e.op }));

  const handler = createGenerateHandler({
    version: options.version,
    model: monitor.model,
    servedModelName: () => prober.state.servedModelName,
    refusal: () => pod.refusal(),
    engine,
    admission,
    prefixIndex,
    cache,
    metrics,
    logger: log,
    tracer: options.tracer,
  });
  generate = handler;
  handler.events.on('cache', (e) => events.emit('cache', e));

  const watch = (call: grpc.ServerWritableStream<WatchLoadRequest__Output, LoadReport>) => {
    const remove = reporter.addWatcher(call);
    log.debug('load watcher connected', { watcher: call.request.watcherId, watchers: reporter.watcherCount });
    call.once('cancelled', remove);
    call.once('close', remove);
    call.once('error', remove);
  };
  const handlers: EngineHandlers = { GenerateStream: (call) => void handler.handle(call), WatchLoad: watch };

  let server: RunningGrpcServer | undefined;
  let admin: SidecarAdminServer | undefined;
  const stop = async (graceMs: number) => {
    // Load watchers are endless streams: end them so shutdown need not wait.
    reporter.endAll();
    await registration?.stop();
    await server?.shutdown(graceMs);
    prober.stop();
    reporter.close();
    redis?.disconnect();
    await admin?.close();
    engine.close();
  };
  try {
    server = await startGrpcServer({
      credentials: options.tls ? serverCredentials(options.tls, 'tls') : undefined,
      address: options.listen,
      services: [{ definition: engineService(), implementation: handlers }],
      reflect: [ENGINE_SERVICE],
    });
    const grpcServer = server;
    const serving = () => grpcServer.setHealth(ENGINE_SERVICE, pod.ready ? 'SERVING' : 'NOT_SERVING');
    grpcServer.setHealth('', 'SERVING');
    serving();
    pod.onChange(serving);
    if (!adminDisabled(options.admin)) {
      admin = await startSidecarAdmin(
        options.admin as string,
        {
          metrics: async () => ({
            contentType: metrics.registry.contentType,
            body: await metrics.registry.metrics(),
          }),
          readiness: () => ({ ready: pod.ready, reason: pod.reason }),
          status: () => ({ ...reporter.current(), prefixIndexBlocks: prefixIndex.size }),
        },
        { tokenSha256: options.adminTokenSha256 },
      );
    }
  } catch (err) {
    await stop(0);
    throw err;
  }

  if (redis && (options.register ?? true)) {
    registration = createRegistration({
      redis,
      address: options.advertiseAddress ?? advertisedAddress(options.listen, server.port),
      identity: () => ({ model: monitor.model(), version: options.version }),
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

  const lifecycle = createLifecycle({
    pod,
    generate: handler,
    handbackMs: options.drainHandbackMs,
    logger: log,
    finish: stop,
    load: () => ({ inFlight: admission.inFlight, queued: admission.queued }),
  });
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
    drain: lifecycle.drain,
    close: lifecycle.close,
  };
}

/**
 * `llmmesh.v1.Engine` with streamed chunks written by the hand-written codec
 * (common/chunk-codec.ts, wire-compatible with proto-loader's) instead of
 * protobufjs' generic `fromObject` + encode, once per token.
 */
function engineService(): grpc.ServiceDefinition {
  const service = loadProtos().engine.Engine.service;
  return {
    ...service,
    GenerateStream: {
      ...service.GenerateStream,
      responseSerialize: encodeChunk as (value: GenerateChunk) => Buffer,
    },
  };
}

/** The Redis connection and the response cache, as the options ask. */
function sharedState(
  options: SidecarOptions,
  log: Logger,
  events: EventEmitter,
  registration: () => Registration | undefined,
): { redis: Redis | undefined; cache: ResponseCache | undefined } {
  const redis = options.redis
    ? createRedisConnection({
        url: options.redis,
        commandTimeoutMs: options.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS,
        logger: log,
        onState(up) {
          events.emit('redis', up);
          if (up) void registration()?.beat();
        },
      })
    : undefined;
  if (!(options.responseCache ?? true)) return { redis, cache: undefined };
  const cache = createResponseCache({
    ttlMs: options.cacheTtlMs,
    l1MaxBytes: options.cacheL1MaxBytes,
    keyPrefix: options.cacheKeyPrefix,
    l2TimeoutMs: options.redisTimeoutMs,
    redis,
    now: options.now,
    logger: log,
  });
  cache.events.on('stored', (e) => events.emit('cache-stored', e));
  return { redis, cache };
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
