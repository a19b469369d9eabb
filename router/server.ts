/**
 * The router: serves `llmmesh.v1.Inference`, chooses a model version by
 * configured weights, chooses an endpoint of that version from live load,
 * retries on another endpoint before the first token, and streams chunks back.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { errors, MeshError, Status } from '../common/errors.js';
import type { GenerateChunk, GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest__Output } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import type { GenerateResponse } from '../common/generated/llmmesh/v1/GenerateResponse.js';
import type { InferenceHandlers } from '../common/generated/llmmesh/v1/Inference.js';
import type { ListModelsResponse } from '../common/generated/llmmesh/v1/ListModelsResponse.js';
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.js';
import { createLogger, type Logger } from '../common/log.js';
import { INFERENCE_SERVICE, loadProtos } from '../common/proto.js';
import {
  childContext,
  formatTraceparent,
  parseTraceparent,
  type TraceContext,
} from '../common/trace-context.js';
import { validateGenerateRequest } from '../common/validate.js';
import { type AdminServer, startAdminServer } from './admin/server.js';
import type { RouterConfig } from './config/schema.js';
import { createRouterMetrics, type RouterMetrics } from './metrics.js';
import { pickEndpoint, usable } from './routing/pick-endpoint.js';
import { chooseVersion, type VersionChoice } from './routing/version-split.js';
import { createEndpointSet, type EndpointSet, type EndpointView } from './upstream/endpoints.js';

/** Initial-metadata key: the model version serving the request. */
export const VERSION_HEADER = 'x-llmmesh-version';
/** Initial-metadata key: the serving sidecar's `host:port`. */
export const ENDPOINT_HEADER = 'x-llmmesh-endpoint';
/** Trailer key: the request's trace id (paste into Jaeger). */
export const TRACE_ID_TRAILER = 'x-llmmesh-trace-id';
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
  /** The config in force. */
  config(): RouterConfig;
  /**
   * Replaces the config for new requests (in-flight streams keep the decisions
   * they made). Listen and admin addresses are not changed at run time.
   */
  applyConfig(config: RouterConfig): void;
  /** Machine-readable state, as `/status` serves it. */
  status(): RouterStatus;
  /** Stops accepting requests, lets streams finish for up to `graceMs`, then stops. */
  close(graceMs?: number): Promise<void>;
}

/** The router's state for `/status` and `llmmesh status`. */
export interface RouterStatus {
  listen: string;
  models: Array<{
    name: string;
    versions: Array<{ name: string; weight: number; readyEndpoints: number; endpoints: number }>;
  }>;
  endpoints: Array<{
    address: string;
    model: string;
    version: string;
    ready: boolean;
    draining: boolean;
    reason: string;
    routerInFlight: number;
    inFlight: number;
    queued: number;
    engineRunning: number;
    engineWaiting: number;
    kvCacheUsage: number;
  }>;
}

interface Served {
  version: string;
  endpoint: string;
}

/** Starts the router: gRPC API, endpoint watching and (optionally) the admin server. */
export async function startRouter(options: RouterOptions): Promise<Router> {
  const log = options.logger ?? createLogger('router');
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  let config = options.config;
  const metrics = createRouterMetrics();
  const endpoints = createEndpointSet(config.discovery.endpoints, {
    logger: log,
    watcherId: `router-${process.pid}-${randomUUID().slice(0, 8)}`,
    now,
  });

  let grpcServer: RunningGrpcServer | undefined;
  const refreshGauges = () => {
    const snap = endpoints.snapshot();
    metrics.routeWeight.reset();
    metrics.endpointsReady.reset();
    for (const [model, m] of Object.entries(config.models)) {
      for (const [version, v] of Object.entries(m.versions)) {
        metrics.routeWeight.set({ model, model_version: version }, v.weight);
        metrics.endpointsReady.set(
          { model, model_version: version },
          snap.pool(model, version).filter(usable).length,
        );
      }
    }
    const anyReady = snap.endpoints.some(
      (e) => usable(e) && e.model in config.models && e.version in (config.models[e.model]?.versions ?? {}),
    );
    grpcServer?.setHealth(INFERENCE_SERVICE, anyReady ? 'SERVING' : 'NOT_SERVING');
  };
  endpoints.events.on('change', refreshGauges);

  /**
   * Runs one request: version and endpoint choice, upstream attempts, and
   * `onChunk` for each chunk. Returns what served it.
   */
  const execute = async (
    req: GenerateRequest__Output,
    incoming: grpc.Metadata,
    deadline: number,
    signal: AbortSignal,
    trace: TraceContext,
    onChunk: (chunk: GenerateChunk__Output, served: Served) => Promise<void>,
  ): Promise<Served> => {
    validateGenerateRequest(req);
    const model = config.models[req.model];
    if (!model) {
      throw errors.notFound(
        `unknown model "${req.model}" (models: ${Object.keys(config.models).join(', ')})`,
      );
    }
    const requestId = req.requestId || randomUUID();
    const upstreamReq = { ...req, requestId };

    let snap = endpoints.snapshot();
    let choice: VersionChoice;
    try {
      choice = chooseVersion(
        {
          model: req.model,
          pinnedVersion: req.routing?.version || undefined,
          sessionKey: req.routing?.sessionKey || undefined,
        },
        model,
        (v) => snap.pool(req.model, v).some(usable),
        random,
      );
    } catch (err) {
      if (!(err instanceof MeshError) || err.code !== Status.UNAVAILABLE) throw err;
      // Say why each endpoint of the model cannot serve, so the caller (and the
      // on-call engineer) sees "engine at 10.0.0.7:8000 unreachable", not just "no endpoint".
      const why = Object.keys(model.versions)
        .flatMap((v) => snap.pool(req.model, v).map((e) => `${e.address} (${v}): ${e.reason || 'busy'}`))
        .join('; ');
      throw errors.unavailable(why ? `${err.message}: ${why}` : `${err.message}: no endpoint serves it`);
    }
    metrics.versionChoices.inc({ model: req.model, model_version: choice.version, reason: choice.reason });
    if (choice.fallbackFrom) {
      log.warn('version fallback', {
        model: req.model,
        from: choice.fallbackFrom,
        to: choice.version,
        requestId,
      });
    }

    const tried = new Set<string>();
    let lastError: MeshError | undefined;
    const maxAttempts = config.upstream.max_attempts;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      if (signal.aborted) throw errors.cancelled('client cancelled');
      if (attempt > 1) snap = endpoints.snapshot();
      const pool = snap.pool(req.model, choice.version);
      const endpoint = pickEndpoint(pool, tried, random);
      if (!endpoint) {
        if (lastError) throw lastError;
        throw errors.unavailable(noEndpointMessage(req.model, choice.version, pool));
      }
      tried.add(endpoint.address);
      const client = endpoints.client(endpoint.address);
      if (!client) continue;

      const md = new grpc.Metadata();
      md.set(REQUEST_ID_HEADER, requestId);
      md.set('traceparent', formatTraceparent(childContext(trace)));
      md.set('x-llmmesh-attempt', String(attempt));
      const tenant = incoming.get('x-llmmesh-tenant')[0];
      if (tenant) md.set('x-llmmesh-tenant', String(tenant));

      const release = endpoints.track(endpoint.address);
      const call = client.GenerateStream(upstreamReq, md, { deadline });
      const onAbort = () => call.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      const served: Served = { version: choice.version, endpoint: endpoint.address };
      let firstSeen = false;
      try {
        for await (const chunk of call as AsyncIterable<GenerateChunk__Output>) {
          firstSeen = true;
          await onChunk(chunk, served);
        }
        metrics.attempts.inc({ endpoint: endpoint.address, outcome: 'ok' });
        return served;
      } catch (err) {
        if (signal.aborted) throw errors.cancelled('client cancelled');
        const e = upstreamError(err, endpoint.address);
        // Before the first chunk nothing reached the client: another endpoint
        // can take the request when this one refused it or was unreachable.
        const retryable =
          !firstSeen &&
          (e.code === Status.UNAVAILABLE || e.code === Status.RESOURCE_EXHAUSTED) &&
          attempt < maxAttempts;
        metrics.attempts.inc({ endpoint: endpoint.address, outcome: retryable ? 'retried' : 'failed' });
        if (!retryable) throw e;
        log.info('retrying on another endpoint', {
          requestId,
          endpoint: endpoint.address,
          code: e.codeName,
          err: e.message,
        });
        lastError = e;
      } finally {
        signal.removeEventListener('abort', onAbort);
        release();
      }
    }
    throw lastError ?? errors.unavailable(`no endpoint for model "${req.model}" version "${choice.version}"`);
  };

  /** Common bookkeeping around {@link execute} for both RPC shapes. */
  const run = async (
    call:
      | grpc.ServerUnaryCall<GenerateRequest__Output, GenerateResponse>
      | grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>,
    onChunk: (chunk: GenerateChunk__Output, served: Served) => Promise<void>,
  ): Promise<{ served: Served; trailer: grpc.Metadata }> => {
    const started = now();
    const req = call.request;
    const parent = parseTraceparent(String(call.metadata.get('traceparent')[0] ?? ''));
    const trace = childContext(parent);
    const trailer = new grpc.Metadata();
    trailer.set(TRACE_ID_TRAILER, trace.traceId);
    const controller = new AbortController();
    const onCancel = () => controller.abort();
    call.once('cancelled', onCancel);
    const rawDeadline = call.getDeadline();
    const deadline =
      rawDeadline instanceof Date
        ? rawDeadline.getTime()
        : Number.isFinite(rawDeadline)
          ? Number(rawDeadline)
          : now() + config.upstream.default_timeout_ms;
    const modelLabel = config.models[req.model] ? req.model : '(unknown)';
    metrics.inFlight.inc({ model: modelLabel });
    let version = '';
    let firstAt = 0;
    try {
      const served = await execute(
        req,
        call.metadata,
        deadline,
        controller.signal,
        trace,
        async (chunk, s) => {
          if (!firstAt) {
            firstAt = now();
            version = s.version;
            metrics.ttft.observe({ model: modelLabel, model_version: s.version }, (firstAt - started) / 1000);
          }
          if (chunk.usage && chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') {
            metrics.tokens.inc({ model: modelLabel, model_version: s.version }, chunk.usage.completionTokens);
          }
          await onChunk(chunk, s);
        },
      );
      metrics.requests.inc({ model: modelLabel, model_version: served.version, status: 'OK' });
      metrics.latency.observe({ model: modelLabel, model_version: served.version }, (now() - started) / 1000);
      return { served, trailer };
    } catch (err) {
      const e = controller.signal.aborted ? errors.cancelled('client cancelled') : MeshError.from(err);
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
    }
  };

  const headerFor = (served: Served): grpc.Metadata => {
    const md = new grpc.Metadata();
    md.set(VERSION_HEADER, served.version);
    md.set(ENDPOINT_HEADER, served.endpoint);
    return md;
  };

  const handlers: InferenceHandlers = {
    GenerateStream(call) {
      let headersSent = false;
      run(call, async (chunk, served) => {
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
      run(call, async (chunk, served) => {
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

  const protos = loadProtos();
  try {
    grpcServer = await startGrpcServer({
      address: options.listen ?? config.listen,
      services: [{ definition: protos.inference.Inference.service, implementation: handlers }],
      reflect: [INFERENCE_SERVICE],
    });
  } catch (err) {
    endpoints.close();
    throw err;
  }
  const server = grpcServer;

  const status = (): RouterStatus => {
    const snap = endpoints.snapshot();
    return {
      listen: server.address,
      models: Object.entries(config.models).map(([name, m]) => ({
        name,
        versions: Object.entries(m.versions).map(([version, v]) => ({
          name: version,
          weight: v.weight,
          readyEndpoints: snap.pool(name, version).filter(usable).length,
          endpoints: snap.pool(name, version).length,
        })),
      })),
      endpoints: snap.endpoints.map((e) => ({
        address: e.address,
        model: e.model,
        version: e.version,
        ready: e.ready,
        draining: e.draining,
        reason: e.reason,
        routerInFlight: e.routerInFlight,
        inFlight: e.report?.inFlight ?? 0,
        queued: e.report?.queued ?? 0,
        engineRunning: e.report?.engine?.numRequestsRunning ?? 0,
        engineWaiting: e.report?.engine?.numRequestsWaiting ?? 0,
        kvCacheUsage: e.report?.engine?.kvCacheUsagePerc ?? 0,
      })),
    };
  };

  let admin: AdminServer | undefined;
  const adminAddress = options.admin === undefined ? config.admin : options.admin;
  if (adminAddress !== false) {
    try {
      admin = await startAdminServer(adminAddress, {
        metrics: async () => {
          refreshGauges();
          return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
        },
        status,
        ready: () => endpoints.snapshot().endpoints.some(usable),
      });
    } catch (err) {
      await server.shutdown(0);
      endpoints.close();
      throw err;
    }
  }

  server.setHealth('', 'SERVING');
  refreshGauges();
  log.info('router listening', {
    address: server.address,
    admin: admin?.url,
    endpoints: config.discovery.endpoints,
  });

  return {
    address: server.address,
    port: server.port,
    adminUrl: admin?.url,
    endpoints,
    metrics,
    config: () => config,
    applyConfig(next) {
      const before = new Set(config.discovery.endpoints);
      config = next;
      const after = next.discovery.endpoints;
      if (after.length !== before.size || after.some((a) => !before.has(a))) endpoints.setAddresses(after);
      refreshGauges();
    },
    status,
    async close(graceMs = 10_000) {
      await server.shutdown(graceMs);
      endpoints.close();
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

function noEndpointMessage(model: string, version: string, pool: readonly EndpointView[]): string {
  if (pool.length === 0) return `no endpoint serves model "${model}" version "${version}"`;
  const reasons = pool.map((e) => `${e.address}: ${e.reason || 'busy'}`).join('; ');
  return `no ready endpoint for model "${model}" version "${version}" (${reasons})`;
}
