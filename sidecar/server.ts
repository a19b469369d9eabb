/**
 * The sidecar: runs beside the engine in every inference pod, serves
 * `llmmesh.v1.Engine` to routers, forwards requests to the engine's
 * OpenAI-compatible HTTP API, and pushes the pod's load to every router that
 * watches it.
 */
import { EventEmitter, once } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { errors, MeshError, Status } from '../common/errors.js';
import type { EngineHandlers } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest__Output } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import type { LoadReport } from '../common/generated/llmmesh/v1/LoadReport.js';
import type { WatchLoadRequest__Output } from '../common/generated/llmmesh/v1/WatchLoadRequest.js';
import { finishReasonToProto, usageToProto } from '../common/grpc-mapping.js';
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.js';
import { createLogger, type Logger } from '../common/log.js';
import { ENGINE_SERVICE, loadProtos } from '../common/proto.js';
import { validateGenerateRequest } from '../common/validate.js';
import { type Admission, createAdmission } from './admission.js';
import { createEngineClient } from './engine-client.js';
import { parseEngineMetrics, type ScrapedEngineMetrics } from './engine-metrics.js';
import { toOpenAiRequest } from './openai.js';

/** Default interval between load reports when nothing changes (DESIGN §1). */
export const DEFAULT_REPORT_INTERVAL_MS = 250;
/** Default interval between engine probes (`/health`, `/metrics`). */
export const DEFAULT_PROBE_INTERVAL_MS = 1000;
/** Default in-flight limit before the engine's capacity is known. */
export const DEFAULT_MAX_IN_FLIGHT = 256;

/** Options of {@link startSidecar}. */
export interface SidecarOptions {
  /** The engine's base URL, e.g. `http://127.0.0.1:8000`. */
  engineUrl: string;
  /** gRPC listen address, `host:port` (port 0 picks one). */
  listen: string;
  /** Logical model name announced to routers; defaults to the engine's first served model. */
  model?: string;
  /** Model version announced to routers. */
  version: string;
  reportIntervalMs?: number;
  probeIntervalMs?: number;
  /** Requests in flight to the engine before the sidecar queues (≈ vLLM max_num_seqs). */
  maxInFlight?: number;
  /** API key for the engine (vLLM --api-key). */
  engineApiKey?: string;
  logger?: Logger;
}

/** A running sidecar. */
export interface Sidecar {
  /** `host:port` routers dial. */
  readonly address: string;
  readonly port: number;
  /** The current load report. */
  report(): LoadReport;
  /** Emits `report` (LoadReport) whenever the state changes. */
  readonly events: EventEmitter;
  /**
   * Drains: reports `draining`, refuses new work with UNAVAILABLE, lets
   * in-flight streams finish for up to `graceMs`, then stops.
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
  const reportIntervalMs = options.reportIntervalMs ?? DEFAULT_REPORT_INTERVAL_MS;
  const probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;

  const state = {
    model: options.model ?? '',
    servedModelName: '',
    ready: false,
    draining: false,
    reason: 'engine not probed yet',
    metrics: {} as ScrapedEngineMetrics,
    maxModelLen: 0,
    sequence: 0,
  };
  let grpcServer: RunningGrpcServer | undefined;
  let changeScheduled = false;

  const buildReport = (): LoadReport => ({
    model: state.model,
    version: options.version,
    servedModelName: state.servedModelName,
    ready: state.ready && !state.draining,
    draining: state.draining,
    inFlight: admission.inFlight,
    queued: admission.queued,
    reason: state.ready ? (state.draining ? 'draining' : '') : state.reason,
    sequence: ++state.sequence,
    engine: {
      numRequestsRunning: state.metrics.numRequestsRunning ?? 0,
      numRequestsWaiting: state.metrics.numRequestsWaiting ?? 0,
      kvCacheUsagePerc: state.metrics.kvCacheUsagePerc ?? 0,
    },
    capacity: {
      maxNumSeqs: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
      numGpuBlocks: state.metrics.numGpuBlocks ?? 0,
      blockSize: state.metrics.blockSize ?? 0,
      maxModelLen: state.maxModelLen,
    },
  });

  // Many state changes in one tick (a burst of requests) become one report.
  const changed = () => {
    if (changeScheduled) return;
    changeScheduled = true;
    setImmediate(() => {
      changeScheduled = false;
      events.emit('report', buildReport());
    });
  };
  const admission: Admission = createAdmission(options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT, changed);

  const setReady = (ready: boolean, reason: string) => {
    if (state.ready === ready && state.reason === reason) return;
    const wasReady = state.ready;
    state.ready = ready;
    state.reason = reason;
    if (ready !== wasReady) {
      log.info(ready ? 'engine ready' : 'engine not ready', { engine: engine.url, reason });
      grpcServer?.setHealth(ENGINE_SERVICE, ready && !state.draining ? 'SERVING' : 'NOT_SERVING');
    }
    changed();
  };

  // One probe loop per sidecar, however many routers watch.
  let probing = false;
  const probe = async () => {
    if (probing) return;
    probing = true;
    try {
      const healthy = await engine.health({ timeoutMs: Math.max(500, probeIntervalMs) });
      if (!healthy) {
        setReady(false, `engine at ${engine.url} /health is not 200 (loading or down)`);
        return;
      }
      if (!state.servedModelName) {
        const models = await engine.models();
        const first = models[0];
        if (!first) {
          setReady(false, `engine at ${engine.url} serves no model`);
          return;
        }
        state.servedModelName = first.id;
        state.maxModelLen = first.maxModelLen ?? 0;
        if (!state.model) state.model = first.id;
      }
      try {
        const before = JSON.stringify(state.metrics);
        state.metrics = parseEngineMetrics(await engine.metrics());
        if (JSON.stringify(state.metrics) !== before) changed();
      } catch (err) {
        // Metrics are optional (some engines have none); readiness is /health.
        log.debug('metrics scrape failed', { err });
      }
      setReady(true, '');
    } catch (err) {
      setReady(false, MeshError.from(err, `engine at ${engine.url}`).message);
    } finally {
      probing = false;
    }
  };
  const probeTimer = setInterval(() => void probe(), probeIntervalMs);
  const reportTimer = setInterval(() => events.emit('report', buildReport()), reportIntervalMs);

  const handlers: EngineHandlers = {
    GenerateStream(call) {
      void generate(call);
    },
    WatchLoad(call) {
      watch(call);
    },
  };

  const watchers = new Set<grpc.ServerWritableStream<WatchLoadRequest__Output, LoadReport>>();
  const watch = (call: grpc.ServerWritableStream<WatchLoadRequest__Output, LoadReport>) => {
    watchers.add(call);
    const send = (r: LoadReport) => {
      // A slow watcher gets the newest report, never an unbounded backlog.
      if (call.writableLength === 0) call.write(r);
    };
    events.on('report', send);
    const stop = () => {
      events.off('report', send);
      watchers.delete(call);
    };
    call.once('cancelled', stop);
    call.once('close', stop);
    call.once('error', stop);
    call.write(buildReport());
  };

  const generate = async (call: grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>) => {
    const controller = new AbortController();
    const onCancel = () => controller.abort();
    call.once('cancelled', onCancel);
    let release: (() => void) | undefined;
    try {
      const req = call.request;
      validateGenerateRequest(req);
      if (state.model && req.model !== state.model) {
        throw errors.notFound(`model "${req.model}" is not served here (this pod serves "${state.model}")`);
      }
      if (state.draining) throw errors.unavailable(`sidecar for ${engine.url} is draining`);
      if (!state.ready) throw errors.unavailable(state.reason);
      release = await admission.acquire(controller.signal);

      const headers: Record<string, string> = {};
      const requestId = req.requestId || String(call.metadata.get('x-request-id')[0] ?? '');
      if (requestId) headers['x-request-id'] = requestId;
      const traceparent = call.metadata.get('traceparent')[0];
      if (traceparent) headers.traceparent = String(traceparent);

      let first = true;
      for await (const ev of engine.stream(toOpenAiRequest(req, state.servedModelName), {
        signal: controller.signal,
        headers,
      })) {
        const chunk: GenerateChunk = { text: ev.text };
        if (first) {
          chunk.modelVersion = options.version;
          first = false;
        }
        if (ev.finishReason !== undefined) {
          chunk.finishReason = finishReasonToProto(ev.finishReason);
          chunk.usage = usageToProto(ev.usage);
        }
        if (!call.write(chunk)) {
          await Promise.race([once(call, 'drain'), once(controller.signal, 'abort')]);
        }
        if (controller.signal.aborted) return;
      }
      call.end();
    } catch (err) {
      if (controller.signal.aborted) return; // the caller is gone; nobody to tell
      const e = MeshError.from(err, `engine at ${engine.url}`);
      if (e.code !== Status.INVALID_ARGUMENT && e.code !== Status.NOT_FOUND) {
        log.warn('generate failed', { code: e.codeName, err: e.message });
      }
      call.emit('error', e.toStatusObject());
    } finally {
      call.off('cancelled', onCancel);
      release?.();
    }
  };

  const protos = loadProtos();
  try {
    grpcServer = await startGrpcServer({
      address: options.listen,
      services: [{ definition: protos.engine.Engine.service, implementation: handlers }],
      reflect: [ENGINE_SERVICE],
    });
  } catch (err) {
    clearInterval(probeTimer);
    clearInterval(reportTimer);
    engine.close();
    throw err;
  }
  grpcServer.setHealth('', 'SERVING');
  grpcServer.setHealth(ENGINE_SERVICE, 'NOT_SERVING');
  void probe();
  log.info('sidecar listening', {
    address: grpcServer.address,
    engine: engine.url,
    version: options.version,
  });

  const stopTimers = () => {
    clearInterval(probeTimer);
    clearInterval(reportTimer);
  };
  const server = grpcServer;
  return {
    address: server.address,
    port: server.port,
    events,
    report: buildReport,
    async drain(graceMs = 30_000) {
      if (!state.draining) {
        state.draining = true;
        server.setHealth(ENGINE_SERVICE, 'NOT_SERVING');
        log.info('draining', { inFlight: admission.inFlight, queued: admission.queued, graceMs });
        events.emit('report', buildReport());
      }
      const deadline = Date.now() + graceMs;
      while (admission.inFlight + admission.queued > 0 && Date.now() < deadline) {
        const wait = new AbortController();
        const timer = setTimeout(() => wait.abort(), deadline - Date.now());
        await once(events, 'report', { signal: wait.signal }).catch(() => {});
        clearTimeout(timer);
      }
      // Load watchers are endless streams: end them so shutdown need not wait.
      for (const w of watchers) w.end();
      await server.shutdown(Math.max(0, deadline - Date.now()));
      stopTimers();
      engine.close();
    },
    async close() {
      stopTimers();
      await server.shutdown(0);
      engine.close();
    },
  };
}
