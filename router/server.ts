/**
 * The router: serves `llmmesh.v1.Inference`; admits each request (bounded
 * concurrency, priority queue when the pool is saturated), chooses a model
 * version by configured weights, chooses an endpoint of that version with the
 * model's scheduling profile, guards every endpoint with a circuit breaker,
 * retries on another endpoint before the first token (within a retry budget
 * and the deadline), and streams chunks back.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { type Context, trace as otelTrace, type Span, SpanKind, type Tracer } from '@opentelemetry/api';
import { errors, MeshError, Status } from '../common/errors.js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk, GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest__Output } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import type { GenerateResponse } from '../common/generated/llmmesh/v1/GenerateResponse.js';
import type { InferenceHandlers } from '../common/generated/llmmesh/v1/Inference.js';
import type { ListModelsResponse } from '../common/generated/llmmesh/v1/ListModelsResponse.js';
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.js';
import { createLogger, type Logger } from '../common/log.js';
import { INFERENCE_SERVICE, loadProtos } from '../common/proto.js';
import { channelCredentials, serverCredentials } from '../common/tls.js';
import { childContext, formatTraceparent, type TraceContext } from '../common/trace-context.js';
import { contextFromMetadata, propagationFor, setSpanError } from '../common/trace-propagation.js';
import { estimatePromptTokens, validateGenerateRequest } from '../common/validate.js';
import { type AdminServer, startAdminServer } from './admin/server.js';
import { type Admission, type AdmissionTimers, createAdmission } from './admission/admission.js';
import { type Admitted, createGate } from './auth/gate.js';
import { ConfigError } from './config/load.js';
import { defaultDeadlineMs, profileFor, type RouterConfig } from './config/schema.js';
import { type ConfigWatch, watchConfigFile } from './config/watch.js';
import { createDiscovery, type Discovery, sameDiscovery } from './discovery/discovery.js';
import type { DnsResolver } from './discovery/dns.js';
import type { RedisLike } from './discovery/redis.js';
import { BREAKER_STATE_VALUE, createRouterMetrics, type RouterMetrics } from './metrics.js';
import type { AttemptTrace, RequestTrace } from './request-trace.js';
import { createSplitTracker } from './routing/split-tracker.js';
import { chooseVersion, type VersionChoice } from './routing/version-split.js';
import { isSaturated, queueDepth, usable } from './scheduling/load.js';
import { createScheduler, type Scheduler } from './scheduling/profile.js';
import { createBuiltinRegistry, type PluginRegistry } from './scheduling/registry.js';
import { createSchedulingRequest } from './scheduling/request.js';
import { type Breakers, type BreakerTransition, createBreakers, isBreakerOpen } from './upstream/breakers.js';
import {
  type BreakerState,
  createEndpointSet,
  type EndpointSet,
  type EndpointView,
} from './upstream/endpoints.js';
import { createRetryBudget, type RetryBudget } from './upstream/retry-budget.js';

/** Initial-metadata key: the model version serving the request. */
export const VERSION_HEADER = 'x-llmmesh-version';
/** Initial-metadata key: the serving sidecar's `host:port`. */
export const ENDPOINT_HEADER = 'x-llmmesh-endpoint';
/** Trailer key: the request's trace id (paste into Jaeger). */
export const TRACE_ID_TRAILER = 'x-llmmesh-trace-id';
/** Output tokens charged to a tenant's budget at a time while a stream runs. */
const CHARGE_BATCH_TOKENS = 16;

/** Metadata key of the request id (also sent to the engine). */
export const REQUEST_ID_HEADER = 'x-request-id';

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

/** The spans of one request, passed down so each stage can add children. */
interface RequestSpans {
  /** The router's server span. */
  server: Span;
  /** Context whose active span is the server span. */
  ctx: Context;
  /** The request's trace id (continued from the caller, or new). */
  trace: TraceContext;
}

/** Outcome of a config reload, as emitted on {@link Router.events} `config`. */
export type ConfigReloadEvent =
  | { result: 'applied'; config: RouterConfig }
  | { result: 'rejected'; error: string; problems: string[] };

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

/** The router's state for `/status` and `llmmesh status`. */
export interface RouterStatus {
  listen: string;
  discovery: string;
  models: Array<{
    name: string;
    profile: string;
    fallback: boolean;
    versions: Array<{
      name: string;
      weight: number;
      /** Configured share of the model's traffic (0..1). */
      configuredShare: number;
      /** Observed share over the last minute (0..1). */
      observedShare: number;
      readyEndpoints: number;
      endpoints: number;
    }>;
  }>;
  endpoints: Array<{
    address: string;
    model: string;
    version: string;
    ready: boolean;
    draining: boolean;
    reason: string;
    breaker: BreakerState;
    routerInFlight: number;
    inFlight: number;
    queued: number;
    engineRunning: number;
    engineWaiting: number;
    kvCacheUsage: number;
    prefixBlocks: number;
  }>;
  admission: { inFlight: number; queued: number; maxConcurrency: number };
  retryBudget: { requests: number; retries: number; allowed: number };
  config: { reloads: number; rejected: number; lastError: string };
}

interface Served {
  version: string;
  endpoint: string;
  /** How the sidecar served it (its `x-llmmesh-cache` header), passed on to the client. */
  cache?: string;
}

/** Header naming how the pod served the request: hit-l1, hit-l2, coalesced, miss, bypass, uncacheable. */
export const CACHE_HEADER = 'x-llmmesh-cache';

/** Longest delay between an endpoint change and the gauges and health that show it. */
const GAUGE_REFRESH_MS = 100;
/** Up to this many endpoints, health is refreshed on every change; above, at most every GAUGE_REFRESH_MS. */
const EXACT_HEALTH_MAX_ENDPOINTS = 64;

const PRIORITY_VALUE: Record<string, number> = {
  PRIORITY_LOW: 1,
  PRIORITY_UNSPECIFIED: 2,
  PRIORITY_NORMAL: 2,
  PRIORITY_HIGH: 3,
};

/** Codes worth another endpoint before the first chunk: the endpoint, not the request, failed. */
function retryableBeforeFirstChunk(e: MeshError): boolean {
  return (
    e.code === Status.UNAVAILABLE ||
    e.code === Status.RESOURCE_EXHAUSTED ||
    e.code === Status.INTERNAL ||
    e.code === Status.UNKNOWN ||
    e.code === Status.ABORTED
  );
}

/** Starts the router: gRPC API, discovery, endpoint watching and (optionally) the admin server. */
export async function startRouter(options: RouterOptions): Promise<Router> {
  const log = options.logger ?? createLogger('router');
  const tracer = options.tracer ?? otelTrace.getTracer('llmmesh-router');
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const registry = options.registry ?? createBuiltinRegistry();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let config = options.config;
  const metrics = createRouterMetrics();
  const split = createSplitTracker(60_000, now);
  const reloadStats = { reloads: 0, rejected: 0, lastError: '' };

  const breakers = createBreakers({
    config: config.breaker,
    logger: log,
    rotateBucketController: options.breakerRotation,
  });
  const gate = createGate(log, (degraded) => metrics.rateLimitDegraded.set(degraded ? 1 : 0));
  gate.prepare(config.auth);
  const upstreamTls = config.upstream_tls;
  const endpoints = createEndpointSet([], {
    credentials: upstreamTls
      ? channelCredentials(
          { caFile: upstreamTls.ca_file, certFile: upstreamTls.cert_file, keyFile: upstreamTls.key_file },
          'upstream_tls',
        )
      : undefined,
    channelOptions: upstreamTls?.server_name
      ? { 'grpc.ssl_target_name_override': upstreamTls.server_name }
      : undefined,
    logger: log,
    watcherId: `router-${process.pid}-${randomUUID().slice(0, 8)}`,
    now,
    breakerState: (a) => breakers.state(a),
  });
  breakers.events.on('transition', (t: BreakerTransition) => {
    metrics.breakerState.set({ endpoint: t.endpoint }, BREAKER_STATE_VALUE[t.to]);
    metrics.breakerTransitions.inc({ endpoint: t.endpoint, to: t.to });
    endpoints.invalidate();
    events.emit('breaker', t);
  });
  const retryBudget: RetryBudget = createRetryBudget(config.upstream.retry_budget, now);
  const admission = createAdmission(config.admission, options.admissionTimers);
  admission.events.on('shed', ({ reason }: { reason: string }) => metrics.shed.inc({ reason }));
  admission.events.on('admitted', ({ waitedMs }: { waitedMs: number }) => {
    if (waitedMs > 0) metrics.admissionWait.observe(waitedMs / 1000);
  });

  /** Schedulers per profile name, rebuilt with the config. */
  const buildSchedulers = (cfg: RouterConfig): Map<string, Scheduler> => {
    const deps = {
      random,
      saturationQueueDepth: cfg.admission.saturation_queue_depth,
      maxEjectionPercent: cfg.breaker.max_ejection_percent,
    };
    const timer = (profile: string, plugin: string, ms: number) =>
      metrics.pluginDuration.observe({ profile, plugin }, ms / 1000);
    const out = new Map<string, Scheduler>();
    for (const model of Object.keys(cfg.models)) {
      const { name, profile } = profileFor(cfg, model);
      if (out.has(name)) continue;
      try {
        out.set(name, createScheduler(name, profile, registry, deps, timer));
      } catch (err) {
        throw new ConfigError('<config>', [`profiles.${name}: ${(err as Error).message}`]);
      }
    }
    return out;
  };
  let schedulers = buildSchedulers(config);

  const setAddresses = (addresses: string[]) => {
    endpoints.setAddresses(addresses);
    breakers.retain(addresses);
  };
  let discovery: Discovery = createDiscovery(config.discovery, {
    logger: log,
    onAddresses: setAddresses,
    resolver: options.resolver,
    redis: options.redis,
  });

  let grpcServer: RunningGrpcServer | undefined;
  const refreshGauges = () => {
    const snap = endpoints.snapshot();
    metrics.routeWeight.reset();
    metrics.routeConfiguredShare.reset();
    metrics.routeObservedShare.reset();
    metrics.endpointsReady.reset();
    for (const [model, m] of Object.entries(config.models)) {
      const total = Object.values(m.versions).reduce((s, v) => s + v.weight, 0) || 1;
      const observed = split.shares(model);
      for (const [version, v] of Object.entries(m.versions)) {
        const labels = { model, model_version: version };
        metrics.routeWeight.set(labels, v.weight);
        metrics.routeConfiguredShare.set(labels, v.weight / total);
        metrics.routeObservedShare.set(labels, observed[version] ?? 0);
        metrics.endpointsReady.set(labels, snap.pool(model, version).filter(usable).length);
      }
    }
    metrics.queueDepth.reset();
    for (const e of snap.endpoints) {
      if (!e.report) continue;
      metrics.queueDepth.set(
        { endpoint: e.address, model: e.model, model_version: e.version },
        queueDepth(e),
      );
    }
    metrics.admissionQueue.set(admission.queued);
    refreshHealth();
  };
  /** `llmmesh.v1.Inference` is SERVING while at least one endpoint of a configured version is ready. */
  let serving: boolean | undefined;
  const refreshHealth = () => {
    const anyReady = endpoints
      .snapshot()
      .endpoints.some(
        (e) => usable(e) && e.model in config.models && e.version in (config.models[e.model]?.versions ?? {}),
      );
    if (anyReady === serving || !grpcServer) return;
    serving = anyReady;
    grpcServer.setHealth(INFERENCE_SERVICE, anyReady ? 'SERVING' : 'NOT_SERVING');
  };
  // Reports arrive often (every pod, every 250 ms at least): gauges and health
  // are refreshed at most every GAUGE_REFRESH_MS (and on every scrape).
  let refreshTimer: NodeJS.Timeout | undefined;
  // Health needs a snapshot (O(endpoints)); refreshing it on every report is
  // O(endpoints²) per second for a large pool. Refresh at once when the last
  // refresh is older than GAUGE_REFRESH_MS, else once at the end of the window.
  let healthAt = 0;
  let healthTimer: NodeJS.Timeout | undefined;
  const throttledHealth = () => {
    const wait = healthAt + GAUGE_REFRESH_MS - now();
    // Small pools (the common case) stay exact: the snapshot costs nothing there.
    if (wait <= 0 || endpoints.size <= EXACT_HEALTH_MAX_ENDPOINTS) {
      healthAt = now();
      refreshHealth();
    } else if (!healthTimer) {
      healthTimer = setTimeout(() => {
        healthTimer = undefined;
        healthAt = now();
        refreshHealth();
      }, wait);
      healthTimer.unref();
    }
  };
  endpoints.events.on('change', () => {
    admission.poke();
    throttledHealth();
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = undefined;
      refreshGauges();
    }, GAUGE_REFRESH_MS);
    refreshTimer.unref();
  });

  /** Why no endpoint of a model can serve, endpoint by endpoint. */
  const whyUnavailable = (model: string, cfg: RouterConfig) => {
    const snap = endpoints.snapshot();
    return Object.keys(cfg.models[model]?.versions ?? {})
      .flatMap((v) => snap.pool(model, v).map((e) => `${e.address} (${v}): ${e.reason || 'busy'}`))
      .join('; ');
  };

  /** Runs one upstream attempt: the breaker covers it up to the first chunk. */
  const attemptOnce = async (
    endpoint: EndpointView,
    client: EngineClient,
    upstreamReq: GenerateRequest__Output,
    md: grpc.Metadata,
    deadline: number,
    signal: AbortSignal,
    firstTokenTimeoutMs: number,
    force: boolean,
    trace: AttemptTrace,
    receivedAt: number,
    onChunk: (chunk: GenerateChunk__Output) => Promise<void>,
  ): Promise<void> => {
    let iter: AsyncIterator<GenerateChunk__Output> | undefined;
    const release = endpoints.track(endpoint.address);
    let call: grpc.ClientReadableStream<GenerateChunk__Output> | undefined;
    let completed = false;
    const onAbort = () => call?.cancel();
    try {
      const first = await breakers.run(
        endpoint.address,
        async () => {
          // The call starts inside the breaker: an open breaker sends nothing.
          const c = client.GenerateStream(upstreamReq, md, { deadline });
          call = c;
          // Errors reach the iterator; this keeps a late one (after we stopped
          // reading) from becoming an uncaught exception.
          c.on('error', () => {});
          c.once('metadata', (m: grpc.Metadata) => {
            const cache = m.get(CACHE_HEADER)[0];
            if (cache !== undefined) trace.cache = String(cache);
          });
          signal.addEventListener('abort', onAbort, { once: true });
          const it = (c as AsyncIterable<GenerateChunk__Output>)[Symbol.asyncIterator]();
          iter = it;
          // The client's deadline is the client's business: the first-token
          // timeout (an endpoint fault) applies only when it comes sooner.
          if (firstTokenTimeoutMs >= deadline - now()) return it.next();
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              c.cancel();
              reject(
                errors.unavailable(
                  `endpoint ${endpoint.address} sent no first token within ${firstTokenTimeoutMs} ms`,
                ),
              );
            }, firstTokenTimeoutMs);
          });
          try {
            return await Promise.race([it.next(), timeout]);
          } finally {
            clearTimeout(timer);
          }
        },
        { force },
      );
      const rest = iter as AsyncIterator<GenerateChunk__Output>;
      trace.firstChunkMs = now() - receivedAt;
      if (!first.done) {
        trace.chunks++;
        await onChunk(first.value);
        for (;;) {
          const next = await rest.next();
          if (next.done) break;
          trace.chunks++;
          await onChunk(next.value);
        }
      }
      completed = true;
    } finally {
      signal.removeEventListener('abort', onAbort);
      release();
      if (!completed) call?.cancel();
    }
  };

  /**
   * Runs one request: admission, version and endpoint choice, upstream
   * attempts, and `onChunk` for each chunk. Returns what served it.
   */
  const execute = async (
    req: GenerateRequest__Output,
    incoming: grpc.Metadata,
    deadline: number,
    signal: AbortSignal,
    spans: RequestSpans,
    rt: RequestTrace,
    onChunk: (chunk: GenerateChunk__Output, served: Served) => Promise<void>,
  ): Promise<Served> => {
    const trace = spans.trace;
    // One config for the whole request: a reload mid-request changes nothing here.
    const cfg = config;
    // Who is calling comes first: an unauthenticated caller learns nothing else.
    const tenant = gate.authenticate(cfg.auth, incoming, req.model);
    if (tenant) {
      rt.tenant = tenant.name;
      spans.server.setAttribute('llmmesh.tenant', tenant.name);
    }
    validateGenerateRequest(req, {
      maxPromptChars: cfg.limits.max_prompt_chars,
      maxMessages: cfg.limits.max_messages,
      maxStopStrings: cfg.limits.max_stop_strings,
      maxStopChars: 256,
      maxIdChars: 256,
    });
    const model = cfg.models[req.model];
    if (!model) {
      throw errors.notFound(`unknown model "${req.model}" (models: ${Object.keys(cfg.models).join(', ')})`);
    }
    const requestedMaxTokens = req.sampling?.maxTokens ?? 0;
    if (model.max_tokens_cap !== undefined && requestedMaxTokens > model.max_tokens_cap) {
      throw errors.invalidArgument(
        'sampling.max_tokens',
        `${requestedMaxTokens} exceeds the limit of ${model.max_tokens_cap} for model "${req.model}"`,
      );
    }
    const promptTokens = estimatePromptTokens(req);
    let admitted: Admitted | undefined;
    let charged = 0;
    let pendingCharge = 0;
    if (tenant && cfg.auth) {
      admitted = await gate.admit(cfg.auth, tenant, promptTokens);
      metrics.tenantTokens.inc({ tenant: tenant.name, kind: 'prompt' }, promptTokens);
    }
    const { name: profileName } = profileFor(cfg, req.model);
    const scheduler = schedulers.get(profileName);
    if (!scheduler) throw errors.internal(`no scheduler for profile "${profileName}"`);
    const requestId = req.requestId || randomUUID();
    rt.requestId = requestId;
    const upstreamReq = { ...req, requestId };
    if (model.max_tokens_cap !== undefined && requestedMaxTokens === 0) {
      // No max_tokens means "until the context is full" for vLLM chat: with a
      // cap configured, ask for the cap instead.
      upstreamReq.sampling = { ...(req.sampling ?? { stop: [] }), maxTokens: model.max_tokens_cap };
    }

    const versionUsable = (v: string) => endpoints.snapshot().pool(req.model, v).some(usable);
    let choice: VersionChoice;
    try {
      choice = chooseVersion(
        {
          model: req.model,
          pinnedVersion: req.routing?.version || undefined,
          sessionKey: req.routing?.sessionKey || undefined,
        },
        model,
        versionUsable,
        random,
      );
    } catch (err) {
      if (!(err instanceof MeshError) || err.code !== Status.UNAVAILABLE) throw err;
      // Say why each endpoint of the model cannot serve, so the caller (and the
      // on-call engineer) sees "engine at 10.0.0.7:8000 unreachable", not just "no endpoint".
      const why = whyUnavailable(req.model, cfg);
      throw errors.unavailable(why ? `${err.message}: ${why}` : `${err.message}: no endpoint serves it`);
    }
    rt.version = choice;
    // Reject what certainly cannot fit the engine's context (as reported by the
    // pool's sidecars) before it reaches a GPU. The prompt's token count here is
    // a lower bound (8 characters per token); the engine checks the exact count.
    const contextLen = Math.min(
      ...endpoints
        .snapshot()
        .pool(req.model, choice.version)
        .map((e) => e.report?.capacity?.maxModelLen || Number.POSITIVE_INFINITY),
    );
    const maxTokens = upstreamReq.sampling?.maxTokens ?? 0;
    const promptChars =
      req.messages.length > 0 ? req.messages.reduce((n, m) => n + m.content.length, 0) : req.prompt.length;
    const promptLowerBound = Math.ceil(promptChars / 8);
    if (Number.isFinite(contextLen) && promptLowerBound + maxTokens > contextLen) {
      throw errors.invalidArgument(
        'sampling.max_tokens',
        `prompt (at least ${promptLowerBound} tokens) plus max_tokens ${maxTokens} exceeds the context length ${contextLen} of model "${req.model}" version "${choice.version}"`,
      );
    }
    spans.server.setAttribute('llmmesh.version', choice.version);
    spans.server.setAttribute('llmmesh.version_reason', choice.reason);
    if (choice.fallbackFrom) spans.server.setAttribute('llmmesh.fallback_from', choice.fallbackFrom);
    metrics.versionChoices.inc({ model: req.model, model_version: choice.version, reason: choice.reason });
    split.record(req.model, choice.version);
    if (choice.fallbackFrom) {
      metrics.versionFallbacks.inc({ model: req.model, from: choice.fallbackFrom, to: choice.version });
      log.warn('version fallback', {
        model: req.model,
        from: choice.fallbackFrom,
        to: choice.version,
        requestId,
      });
    }

    // Admission: wait (by priority) while the router is full or the pool saturated.
    const saturation = cfg.admission.saturation_queue_depth;
    const saturated = () => {
      const pool = endpoints.snapshot().pool(req.model, choice.version);
      let any = false;
      for (const e of pool) {
        if (!usable(e) || e.breaker === 'open') continue;
        any = true;
        if (!isSaturated(e, saturation)) return false;
      }
      return any;
    };
    const queuedAt = now();
    const releaseAdmission = await admission.admit({
      priority: rt.priority,
      poolKey: `${req.model}\u0000${choice.version}`,
      saturated,
      deadline,
      signal,
    });
    rt.queuedMs = now() - queuedAt;
    try {
      retryBudget.recordRequest();
      const tried = new Set<string>();
      const sreq = createSchedulingRequest(req, requestId, choice.version, tried);
      let lastError: MeshError | undefined;
      let attempts = 0;
      // The tenant sidecars see is the authenticated one, never a caller's claim.
      while (attempts < cfg.upstream.max_attempts) {
        if (signal.aborted) throw errors.cancelled('client cancelled');
        if (attempts > 0) {
          if (now() >= deadline) {
            throw errors.deadlineExceeded(
              `deadline passed before a retry${lastError ? ` (last error: ${lastError.message})` : ''}`,
            );
          }
          if (!retryBudget.tryRetry()) {
            metrics.retryBudgetExhausted.inc({ model: req.model });
            const e = lastError ?? errors.unavailable('retry budget exhausted');
            throw new MeshError(e.code, `${e.message} (not retried: retry budget exhausted)`, {
              cause: e,
              retryPushbackMs: e.retryPushbackMs,
            });
          }
        }
        const pool = endpoints.snapshot().pool(req.model, choice.version);
        const decision = scheduler.schedule(sreq, pool);
        metrics.scheduleDuration.observe({ profile: scheduler.name }, decision.totalMs / 1000);
        const endpoint = decision.picked;
        if (spans.server.isRecording()) {
          const s = tracer.startSpan(
            'schedule',
            {
              attributes: {
                'llmmesh.profile': decision.profile,
                'llmmesh.version': choice.version,
                'llmmesh.version_reason': choice.reason,
                'llmmesh.pool_size': decision.poolSize,
                'llmmesh.endpoint': endpoint?.address ?? '',
                'llmmesh.schedule_ms': decision.totalMs,
              },
            },
            spans.ctx,
          );
          for (const f of decision.filtered)
            s.addEvent(`filter ${f.type}`, { 'llmmesh.remaining': f.remaining });
          for (const c of decision.candidates()) {
            const attrs: Record<string, string | number> = {
              'llmmesh.endpoint': c.address,
              'llmmesh.score': c.total,
            };
            for (const [k, v] of Object.entries(c.scores)) attrs[`llmmesh.score.${k}`] = v;
            s.addEvent('candidate', attrs);
          }
          s.end();
        }
        if (!endpoint) {
          if (lastError) throw lastError;
          throw errors.unavailable(noEndpointMessage(req.model, choice.version, pool));
        }
        tried.add(endpoint.address);
        const client = endpoints.client(endpoint.address);
        if (!client) continue;
        const force = scheduler.filtersBreakers && endpoint.breaker === 'open';
        const at: AttemptTrace = {
          endpoint: endpoint.address,
          decision,
          forced: force,
          outcome: 'ok',
          chunks: 0,
          startMs: now() - rt.receivedAt,
        };
        rt.attempts.push(at);

        const attemptSpan = tracer.startSpan(
          'attempt',
          {
            kind: SpanKind.CLIENT,
            attributes: {
              'rpc.system': 'grpc',
              'rpc.service': 'llmmesh.v1.Engine',
              'rpc.method': 'GenerateStream',
              'llmmesh.endpoint': endpoint.address,
              'llmmesh.breaker_state': endpoint.breaker,
              'llmmesh.attempt': attempts + 1,
              'llmmesh.version': choice.version,
            },
          },
          spans.ctx,
        );
        const md = new grpc.Metadata();
        md.set(REQUEST_ID_HEADER, requestId);
        md.set(
          'traceparent',
          attemptSpan.isRecording()
            ? propagationFor(attemptSpan, spans.ctx).traceparent
            : formatTraceparent(childContext(trace)),
        );
        md.set('x-llmmesh-attempt', String(attempts + 1));
        if (tenant) md.set('x-llmmesh-tenant', tenant.name);
        const served: Served = { version: choice.version, endpoint: endpoint.address };
        try {
          await attemptOnce(
            endpoint,
            client,
            upstreamReq,
            md,
            deadline,
            signal,
            cfg.upstream.first_token_timeout_ms,
            force,
            at,
            rt.receivedAt,
            async (chunk) => {
              if (admitted) {
                // Output tokens are charged as they stream, in batches of
                // CHARGE_BATCH_TOKENS chunks, and reconciled with the engine's
                // count on the last chunk (awaited, so the budget is settled
                // before the caller sees the end of the stream).
                const final = chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED' && chunk.usage;
                if (final) {
                  const n = Math.max(0, (chunk.usage?.completionTokens ?? 0) - charged);
                  charged += n;
                  pendingCharge = 0;
                  metrics.tenantTokens.inc({ tenant: admitted.tenant.name, kind: 'output' }, n);
                  await admitted.charge(n);
                } else if (chunk.text) {
                  pendingCharge++;
                  if (pendingCharge >= CHARGE_BATCH_TOKENS) {
                    const n = pendingCharge;
                    pendingCharge = 0;
                    charged += n;
                    metrics.tenantTokens.inc({ tenant: admitted.tenant.name, kind: 'output' }, n);
                    void admitted.charge(n);
                  }
                }
              }
              if (at.cache !== undefined) served.cache = at.cache;
              return onChunk(chunk, served);
            },
          );
          metrics.attempts.inc({ endpoint: endpoint.address, outcome: 'ok' });
          if (at.firstChunkMs !== undefined)
            attemptSpan.addEvent('first_token', rt.receivedAt + at.firstChunkMs);
          attemptSpan.setAttribute('rpc.grpc.status_code', Status.OK);
          attemptSpan.end();
          return served;
        } catch (err) {
          const failure = MeshError.from(err);
          if (at.firstChunkMs !== undefined)
            attemptSpan.addEvent('first_token', rt.receivedAt + at.firstChunkMs);
          setSpanError(attemptSpan, failure.code, failure.codeName, failure.message);
          attemptSpan.end();
          if (signal.aborted) {
            at.outcome = 'failed';
            at.code = 'CANCELLED';
            throw errors.cancelled('client cancelled');
          }
          if (isBreakerOpen(err)) {
            // The breaker opened (or its probe was taken) since the snapshot:
            // nothing was sent, so this is no attempt; pick again.
            at.outcome = 'breaker_open';
            metrics.attempts.inc({ endpoint: endpoint.address, outcome: 'breaker_open' });
            lastError ??= err;
            continue;
          }
          const e = upstreamError(err, endpoint.address);
          at.code = e.codeName;
          at.error = e.message;
          attempts++;
          if (at.chunks > 0) {
            at.outcome = 'failed';
            metrics.attempts.inc({ endpoint: endpoint.address, outcome: 'failed' });
            throw midStreamError(e, endpoint.address, at.chunks);
          }
          const retryable = retryableBeforeFirstChunk(e) && attempts < cfg.upstream.max_attempts;
          at.outcome = retryable ? 'retried' : 'failed';
          metrics.attempts.inc({ endpoint: endpoint.address, outcome: at.outcome });
          if (!retryable) throw e;
          metrics.retries.inc({ model: req.model });
          log.info('retrying on another endpoint', {
            requestId,
            endpoint: endpoint.address,
            code: e.codeName,
            err: e.message,
          });
          lastError = e;
        }
      }
      throw (
        lastError ?? errors.unavailable(`no endpoint for model "${req.model}" version "${choice.version}"`)
      );
    } finally {
      releaseAdmission();
    }
  };

  /** Common bookkeeping around {@link execute} for both RPC shapes. */
  const run = async (
    method: 'Generate' | 'GenerateStream',
    call:
      | grpc.ServerUnaryCall<GenerateRequest__Output, GenerateResponse>
      | grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>,
    onChunk: (chunk: GenerateChunk__Output, served: Served) => Promise<void>,
  ): Promise<{ served: Served; trailer: grpc.Metadata }> => {
    const started = now();
    const req = call.request;
    const parentCtx = contextFromMetadata(call.metadata);
    const serverSpan = tracer.startSpan(
      `llmmesh.v1.Inference/${method}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'rpc.system': 'grpc',
          'rpc.service': 'llmmesh.v1.Inference',
          'rpc.method': method,
          'gen_ai.operation.name': req.messages.length > 0 ? 'chat' : 'text_completion',
          'gen_ai.request.model': req.model,
          'gen_ai.request.max_tokens': req.sampling?.maxTokens ?? 0,
        },
      },
      parentCtx,
    );
    const traceId = propagationFor(serverSpan, parentCtx).traceId;
    const trace: TraceContext = { traceId, spanId: serverSpan.spanContext().spanId, sampled: true };
    const spans: RequestSpans = { server: serverSpan, ctx: otelTrace.setSpan(parentCtx, serverSpan), trace };
    const trailer = new grpc.Metadata();
    trailer.set(TRACE_ID_TRAILER, trace.traceId);
    const controller = new AbortController();
    const onCancel = () => controller.abort();
    call.once('cancelled', onCancel);
    // Every request has a deadline: the client's, else its model's default.
    const rawDeadline = call.getDeadline();
    const clientDeadline =
      rawDeadline instanceof Date
        ? rawDeadline.getTime()
        : Number.isFinite(rawDeadline)
          ? Number(rawDeadline)
          : undefined;
    const deadline = clientDeadline ?? now() + defaultDeadlineMs(config, req.model);
    const modelLabel = config.models[req.model] ? req.model : '(unknown)';
    const rt: RequestTrace = {
      requestId: req.requestId,
      traceId: trace.traceId,
      receivedAt: started,
      model: req.model,
      version: undefined,
      priority: PRIORITY_VALUE[String(req.routing?.priority ?? '')] ?? 2,
      queuedMs: 0,
      deadline,
      deadlineFromClient: clientDeadline !== undefined,
      attempts: [],
      status: 'OK',
    };
    metrics.inFlight.inc({ model: modelLabel });
    let version = '';
    let firstAt = 0;
    let lastAt = 0;
    let itlLabels = { model: modelLabel, model_version: '' };
    try {
      const served = await execute(
        req,
        call.metadata,
        deadline,
        controller.signal,
        spans,
        rt,
        async (chunk, s) => {
          const at = now();
          if (!firstAt) {
            firstAt = at;
            version = s.version;
            itlLabels = { model: modelLabel, model_version: s.version };
            metrics.ttft.observe(itlLabels, (firstAt - started) / 1000);
          } else {
            metrics.itl.observe(itlLabels, (at - lastAt) / 1000);
          }
          lastAt = at;
          if (chunk.usage && chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') {
            serverSpan.setAttribute('gen_ai.usage.input_tokens', chunk.usage.promptTokens);
            serverSpan.setAttribute('gen_ai.usage.output_tokens', chunk.usage.completionTokens);
            serverSpan.setAttribute('gen_ai.response.finish_reasons', [
              chunk.finishReason === 'FINISH_REASON_LENGTH' ? 'length' : 'stop',
            ]);
            metrics.tokens.inc({ model: modelLabel, model_version: s.version }, chunk.usage.completionTokens);
          }
          await onChunk(chunk, s);
        },
      );
      metrics.requests.inc({ model: modelLabel, model_version: served.version, status: 'OK' });
      if (rt.tenant) metrics.tenantRequests.inc({ tenant: rt.tenant, status: 'OK' });
      serverSpan.setAttribute('llmmesh.endpoint', served.endpoint);
      serverSpan.setAttribute('rpc.grpc.status_code', Status.OK);
      metrics.latency.observe({ model: modelLabel, model_version: served.version }, (now() - started) / 1000);
      return { served, trailer };
    } catch (err) {
      const e = controller.signal.aborted ? errors.cancelled('client cancelled') : MeshError.from(err);
      rt.status = e.codeName;
      if (rt.tenant) metrics.tenantRequests.inc({ tenant: rt.tenant, status: e.codeName });
      setSpanError(serverSpan, e.code, e.codeName, e.message);
      metrics.requests.inc({ model: modelLabel, model_version: version || '(none)', status: e.codeName });
      const md = e.toStatusObject().metadata;
      md.merge(trailer);
      throw new MeshError(e.code, e.message, {
        cause: e,
        metadata: md,
        retryPushbackMs: e.retryPushbackMs,
      });
    } finally {
      call.off('cancelled', onCancel);
      metrics.inFlight.dec({ model: modelLabel });
      if (firstAt) serverSpan.addEvent('first_token', firstAt);
      serverSpan.end();
      if (options.onRequestTrace) {
        try {
          options.onRequestTrace(rt);
        } catch (err) {
          log.warn('request trace hook failed', { err });
        }
      }
    }
  };

  const headerFor = (served: Served): grpc.Metadata => {
    const md = new grpc.Metadata();
    md.set(VERSION_HEADER, served.version);
    md.set(ENDPOINT_HEADER, served.endpoint);
    if (served.cache) md.set(CACHE_HEADER, served.cache);
    return md;
  };

  const handlers: InferenceHandlers = {
    GenerateStream(call) {
      let headersSent = false;
      run('GenerateStream', call, async (chunk, served) => {
        const out: GenerateChunk = { text: chunk.text };
        if (!headersSent) {
          // Headers go out with the first chunk, not before: until then the
          // client's retry policy may still retry the call elsewhere.
          call.sendMetadata(headerFor(served));
          headersSent = true;
          out.modelVersion = chunk.modelVersion || served.version;
        }
        if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') {
          out.finishReason = chunk.finishReason;
          out.usage = chunk.usage;
        }
        if (!call.write(out)) await once(call, 'drain');
      }).then(
        ({ trailer }) => call.end(trailer),
        (err: unknown) => {
          if (call.cancelled) return;
          call.emit('error', MeshError.from(err).toStatusObject());
        },
      );
    },

    Generate(call, callback) {
      const response: GenerateResponse = { text: '', requestId: call.request.requestId };
      const parts: string[] = [];
      run('Generate', call, async (chunk, served) => {
        parts.push(chunk.text);
        if (!response.modelVersion) {
          response.modelVersion = chunk.modelVersion || served.version;
          call.sendMetadata(headerFor(served));
        }
        if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') {
          response.finishReason = chunk.finishReason;
          response.usage = chunk.usage;
        }
      }).then(
        ({ trailer }) => {
          response.text = parts.join('');
          callback(null, response, trailer);
        },
        (err: unknown) => callback(MeshError.from(err).toStatusObject()),
      );
    },

    ListModels(_call, callback) {
      const snap = endpoints.snapshot();
      const response: ListModelsResponse = {
        models: Object.entries(config.models).map(([name, m]) => ({
          name,
          versions: Object.entries(m.versions).map(([version, v]) => {
            const pool = snap.pool(name, version);
            return {
              name: version,
              weight: v.weight,
              endpoints: pool.length,
              readyEndpoints: pool.filter(usable).length,
              maxModelLen: Math.max(0, ...pool.map((e) => e.report?.capacity?.maxModelLen ?? 0)),
            };
          }),
        })),
      };
      callback(null, response);
    },
  };

  const cleanup = async () => {
    if (refreshTimer) clearTimeout(refreshTimer);
    if (healthTimer) clearTimeout(healthTimer);
    await discovery.close();
    gate.close();
    endpoints.close();
    breakers.close();
  };

  const protos = loadProtos();
  try {
    grpcServer = await startGrpcServer({
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
      services: [{ definition: protos.inference.Inference.service, implementation: handlers }],
      reflect: [INFERENCE_SERVICE],
    });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const server = grpcServer;

  const status = (): RouterStatus => {
    const snap = endpoints.snapshot();
    return {
      listen: server.address,
      discovery: config.discovery.kind,
      models: Object.entries(config.models).map(([name, m]) => {
        const total = Object.values(m.versions).reduce((s, v) => s + v.weight, 0) || 1;
        const observed = split.shares(name);
        return {
          name,
          profile: profileFor(config, name).name,
          fallback: m.fallback,
          versions: Object.entries(m.versions).map(([version, v]) => ({
            name: version,
            weight: v.weight,
            configuredShare: v.weight / total,
            observedShare: observed[version] ?? 0,
            readyEndpoints: snap.pool(name, version).filter(usable).length,
            endpoints: snap.pool(name, version).length,
          })),
        };
      }),
      endpoints: snap.endpoints.map((e) => ({
        address: e.address,
        model: e.model,
        version: e.version,
        ready: e.ready,
        draining: e.draining,
        reason: e.reason,
        breaker: e.breaker,
        routerInFlight: e.routerInFlight,
        inFlight: e.report?.inFlight ?? 0,
        queued: e.report?.queued ?? 0,
        engineRunning: e.report?.engine?.numRequestsRunning ?? 0,
        engineWaiting: e.report?.engine?.numRequestsWaiting ?? 0,
        kvCacheUsage: e.report?.engine?.kvCacheUsagePerc ?? 0,
        prefixBlocks: e.prefixIndex.size,
      })),
      admission: {
        inFlight: admission.inFlight,
        queued: admission.queued,
        maxConcurrency: config.admission.max_concurrency,
      },
      retryBudget: retryBudget.usage(),
      config: { ...reloadStats },
    };
  };

  let admin: AdminServer | undefined;
  const adminAddress = options.admin === undefined ? config.admin : options.admin;
  if (adminAddress !== false) {
    try {
      admin = await startAdminServer(
        adminAddress,
        {
          metrics: async () => {
            refreshGauges();
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

  const applyConfig = (next: RouterConfig) => {
    const nextSchedulers = buildSchedulers(next);
    const before = config;
    if (next.listen !== before.listen || next.admin !== before.admin) {
      log.warn('listen and admin addresses change only on restart', {
        listen: next.listen,
        admin: next.admin,
      });
    }
    config = next;
    schedulers = nextSchedulers;
    gate.prepare(next.auth);
    breakers.configure(next.breaker);
    retryBudget.configure(next.upstream.retry_budget);
    admission.configure(next.admission);
    if (!sameDiscovery(before.discovery, next.discovery)) {
      const old = discovery;
      void old.close();
      discovery = createDiscovery(next.discovery, {
        logger: log,
        onAddresses: setAddresses,
        resolver: options.resolver,
        redis: options.redis,
      });
    }
    endpoints.invalidate();
    refreshGauges();
  };

  const onReload = (next: RouterConfig) => {
    try {
      applyConfig(next);
    } catch (err) {
      onReloadError(err);
      return;
    }
    reloadStats.reloads++;
    metrics.configReloads.inc({ result: 'applied' });
    metrics.configLastReloadSuccess.set(1);
    metrics.configLastReloadTime.set(now() / 1000);
    log.info('config reloaded', { path: options.watch?.path, models: Object.keys(next.models) });
    events.emit('config', { result: 'applied', config: next } satisfies ConfigReloadEvent);
  };
  const onReloadError = (err: unknown) => {
    const problems = err instanceof ConfigError ? err.problems : [(err as Error).message ?? String(err)];
    reloadStats.rejected++;
    reloadStats.lastError = problems.join('; ');
    metrics.configReloads.inc({ result: 'rejected' });
    metrics.configLastReloadSuccess.set(0);
    metrics.configLastReloadTime.set(now() / 1000);
    log.error('config rejected; keeping the last good config', {
      path: options.watch?.path,
      problems,
    });
    events.emit('config', {
      result: 'rejected',
      error: (err as Error).message ?? String(err),
      problems,
    } satisfies ConfigReloadEvent);
  };
  let watcher: ConfigWatch | undefined;
  if (options.watch) {
    watcher = watchConfigFile({
      path: options.watch.path,
      load: options.watch.load,
      onReload,
      onError: onReloadError,
      debounceMs: options.watch.debounceMs,
    });
  }
  metrics.configLastReloadSuccess.set(1);
  metrics.configLastReloadTime.set(now() / 1000);

  server.setHealth('', 'SERVING');
  refreshGauges();
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
    config: () => config,
    applyConfig,
    reloadConfig() {
      watcher?.reload();
    },
    status,
    async close(graceMs = 10_000) {
      watcher?.close();
      await server.shutdown(graceMs);
      await cleanup();
      await admin?.close();
    },
  };
}

function upstreamError(err: unknown, endpoint: string): MeshError {
  const e = MeshError.from(err);
  const message = e.message.includes(endpoint) ? e.message : `endpoint ${endpoint}: ${e.message}`;
  return new MeshError(e.code, message, {
    cause: err,
    retryPushbackMs: e.retryPushbackMs,
    safeToRetry: e.safeToRetry,
  });
}

/**
 * A failure after chunks reached the client cannot be retried (the client
 * would see text twice): the stream ends UNAVAILABLE saying how far it got.
 * The client's own deadline or cancellation keep their status.
 */
function midStreamError(e: MeshError, endpoint: string, chunks: number): MeshError {
  if (e.code === Status.DEADLINE_EXCEEDED || e.code === Status.CANCELLED) return e;
  return errors.unavailable(
    `endpoint ${endpoint} failed after ${chunks} token${chunks === 1 ? '' : 's'} were delivered; not retried: ${e.message}`,
    { cause: e, safeToRetry: false },
  );
}

function noEndpointMessage(model: string, version: string, pool: readonly EndpointView[]): string {
  if (pool.length === 0) return `no endpoint serves model "${model}" version "${version}"`;
  const reasons = pool
    .map((e) => `${e.address}: ${e.reason || (e.breaker === 'open' ? 'circuit breaker open' : 'busy')}`)
    .join('; ');
  return `no ready endpoint for model "${model}" version "${version}" (${reasons})`;
}
