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
import type { EngineHandlers } from '../common/generated/llmmesh/v1/Engine.js';
import type { LoadReport } from '../common/generated/llmmesh/v1/LoadReport.js';
import type { WatchLoadRequest__Output } from '../common/generated/llmmesh/v1/WatchLoadRequest.js';
import { startGrpcServer } from '../common/grpc-server.js';
import { createLogger } from '../common/log.js';
import { ENGINE_SERVICE, loadProtos } from '../common/proto.js';
import { createRedisConnection, DEFAULT_REDIS_TIMEOUT_MS, redactUrl } from '../common/redis.js';
import { serverCredentials } from '../common/tls.js';
import { type SidecarAdminServer, startSidecarAdmin } from './admin-server.js';
import { type Admission, createAdmission } from './admission.js';
import { createResponseCache, type ResponseCache } from './cache/response-cache.js';
import { createEngineClient } from './engine-client.js';
import { createGenerateHandler, type GenerateHandler } from './generate/handler.js';
import { createEngineProber, DEFAULT_PROBE_INTERVAL_MS } from './load/engine-prober.js';
import { createLoadReporter, DEFAULT_REPORT_INTERVAL_MS } from './load/load-reporter.js';
import { createPrefixIndex, DEFAULT_CHARS_PER_TOKEN, prefixIndexCapacity } from './load/prefix-index.js';
import { createSidecarMetrics } from './metrics.js';
import {
  DEFAULT_DRAIN_GRACE_MS,
  DEFAULT_MAX_IN_FLIGHT,
  handbackDelayMs,
  type Sidecar,
  type SidecarOptions,
} from './options.js';
import { createPodState } from './pod-state.js';
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
  const charsPerToken = options.prefixIndexCharsPerToken ?? DEFAULT_CHARS_PER_TOKEN;
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

  const prober = createEngineProber({
    engine,
    intervalMs: options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS,
    logger: log,
    onReadyChange: () => pod.engineChanged(),
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
  const pod = createPodState(() => prober.state, engine.url);

  const metrics = createSidecarMetrics(
    { model, model_version: options.version },
    {
      queued: () => admission.queued,
      inFlight: () => admission.inFlight,
      activeStreams: () => handler?.active ?? 0,
      ready: () => pod.ready,
      draining: () => pod.draining,
      l1Entries: () => cache?.l1Entries ?? 0,
      l1Bytes: () => cache?.l1Bytes ?? 0,
      l2Up: () => (cache && cache.l2State !== 'off' ? (cache.l2State === 'up' ? 1 : 0) : undefined),
      prefixIndexBlocks: () => prefixIndex.size,
      prefixIndexCapacity: () => prefixIndex.capacity,
      watchers: () => reporter.watcherCount,
    },
  );

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
        ready: pod.ready,
        draining: pod.draining,
        inFlight: admission.inFlight,
        queued: admission.queued,
        reason: pod.reason,
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
      commandTimeoutMs: options.redisTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS,
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

  const generate = createGenerateHandler({
    version: options.version,
    model: () => model,
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
  handler = generate;
  generate.events.on('cache', (e) => events.emit('cache', e));

  const watch = (call: grpc.ServerWritableStream<WatchLoadRequest__Output, LoadReport>) => {
    const remove = reporter.addWatcher(call);
    log.debug('load watcher connected', { watcher: call.request.watcherId, watchers: reporter.watcherCount });
    call.once('cancelled', remove);
    call.once('close', remove);
    call.once('error', remove);
  };
  const handlers: EngineHandlers = {
    GenerateStream: (call) => void generate.handle(call),
    WatchLoad: watch,
  };

  const stopBackground = async () => {
    prober.stop();
    reporter.close();
    await registration?.stop();
    redis?.disconnect();
  };

  let server: Awaited<ReturnType<typeof startGrpcServer>>;
  try {
    server = await startGrpcServer({
      credentials: options.tls ? serverCredentials(options.tls, 'tls') : undefined,
      address: options.listen,
      services: [{ definition: loadProtos().engine.Engine.service, implementation: handlers }],
      reflect: [ENGINE_SERVICE],
    });
  } catch (err) {
    await stopBackground();
    engine.close();
    throw err;
  }
  const grpcServer = server;
  const serving = () => grpcServer.setHealth(ENGINE_SERVICE, pod.ready ? 'SERVING' : 'NOT_SERVING');
  grpcServer.setHealth('', 'SERVING');
  serving();
  pod.onChange(() => {
    serving();
    // A pod that stops taking work says so at once, not at the next tick.
    if (pod.draining) reporter.publish();
    else changed();
  });

  let admin: SidecarAdminServer | undefined;
  if (!adminDisabled(options.admin)) {
    try {
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
  const forced = new Promise<'forced'>((resolve) => {
    force = () => resolve('forced');
  });
  const finish = async (graceMs: number) => {
    // Load watchers are endless streams: end them so shutdown need not wait.
    reporter.endAll();
    await registration?.stop();
    await grpcServer.shutdown(graceMs);
    await stopBackground();
    await admin?.close();
    engine.close();
  };
  const after = (ms: number, timers: NodeJS.Timeout[]) =>
    new Promise<'timeout'>((resolve) => {
      timers.push(setTimeout(() => resolve('timeout'), ms));
    });

  /** Lets streams run until the hand-back point, hands back the rest, and waits for them to end. */
  const drainStreams = async (graceMs: number): Promise<'idle' | 'forced' | 'timeout'> => {
    const start = Date.now();
    const timers: NodeJS.Timeout[] = [];
    const idle = () => generate.idle().then(() => 'idle' as const);
    try {
      const first = await Promise.race([
        idle(),
        forced,
        after(handbackDelayMs(graceMs, options.drainHandbackMs), timers),
      ]);
      if (first !== 'timeout') return first;
      const handed = generate.handBack('draining');
      log.warn('drain grace period nearly over; handing streams back to the router', { handedBack: handed });
      return await Promise.race([idle(), forced, after(Math.max(0, graceMs - (Date.now() - start)), timers)]);
    } finally {
      for (const t of timers) clearTimeout(t);
    }
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
        const deadline = Date.now() + graceMs;
        pod.startDraining();
        log.info('draining', { inFlight: admission.inFlight, queued: admission.queued, graceMs });
        const outcome = await drainStreams(graceMs);
        if (outcome === 'timeout')
          log.warn('drain grace period over; cancelling what is left', { active: generate.active });
        await finish(outcome === 'idle' ? Math.max(0, deadline - Date.now()) : 0);
        log.info('drained');
      })();
      return closing;
    },
    close() {
      force();
      closing ??= (async () => {
        pod.startDraining();
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
