/**
 * A vLLM-compatible simulator: an HTTP server a client cannot tell from vLLM's
 * OpenAI-compatible server by its API (same routes, bodies, SSE framing, error
 * JSON and `vllm:` metrics), backed by a simulated engine whose timing comes
 * from a scheduler model instead of a GPU, calibrated per preset on published
 * vLLM measurements, and with faults to inject on demand (`/sim/faults`). It
 * is the embedded default engine for tests, the local mesh and benchmarks.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { contextFromHeaders } from '../common/trace-propagation.js';
import { createSystemClock, type SimClock } from './clock.js';
import type { StepCostModel } from './cost-model.js';
import { createEngine, type FinishReason } from './engine.js';
import {
  apiError,
  injectedFault,
  methodNotAllowed,
  modelLoading,
  routeNotFound,
  SimHttpError,
} from './errors.js';
import { createFaultState, faultsToJson, parseFaultsPatch, type SimFaults } from './faults.js';
import { readJsonBody, sendJson, sendText } from './http-io.js';
import { createKvCacheManager } from './kv-cache.js';
import {
  type Endpoint,
  parseDetokenizeRequest,
  parseGenerationRequest,
  parseTokenizeRequest,
  type RequestContext,
} from './openai-request.js';
import { DEFAULT_PRESET_NAME } from './presets.js';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus.js';
import { serveGeneration } from './serve-generation.js';
import { resolveSimConfig } from './sim-config.js';
import { createTextGenerator } from './text-generator.js';
import { createTokenizer } from './tokenizer.js';
import { createVllmMetrics } from './vllm-metrics.js';

/** Defaults of {@link SimOptions} that do not come from the preset. */
export const SIM_DEFAULTS = {
  preset: DEFAULT_PRESET_NAME,
  loadDelayMs: 0,
  timeScale: 1,
  version: '0.11.0',
} as const;

/** What a simulated crash passes to {@link SimOptions.onCrash}. */
export interface SimCrashInfo {
  /** The response id of the stream that reached `crash_after_tokens`. */
  id: string;
  /** Tokens that stream had emitted. */
  afterTokens: number;
}

/**
 * Options of {@link createSimServer}; engine options are named after vLLM's
 * flags. Values not given come from the preset.
 */
export interface SimOptions {
  /** vLLM `--served-model-name`; callers set the default `llama-3-8b-chat`. */
  servedModelName: string;
  /**
   * Tracer for the engine-side span of each request, continuing the caller's
   * `traceparent` as vLLM does with tracing on (default: the API's tracer,
   * a no-op unless an SDK is started).
   */
  tracer?: Tracer;
  /** Model and hardware the engine behaves like (default `llama-3.1-8b-h100`; see `presets.ts`). */
  preset?: string;
  /** vLLM `--model`: reported as `root` by `/v1/models` (default: the preset's model). */
  model?: string;
  /** Context length, vLLM `--max-model-len` (default: the model's own, 131072, cut to what the KV cache holds). */
  maxModelLen?: number;
  /** Requests running at once, the rest wait; vLLM `--max-num-seqs` (default: the preset's, 1024). */
  maxNumSeqs?: number;
  /**
   * Serve `GET /server_info` with the engine's `max_num_seqs`, as vLLM does
   * with `VLLM_SERVER_DEV_MODE=1` (default false: 404, like vLLM without it).
   */
  serverInfo?: boolean;
  /** Tokens computed per engine step, longer prompts are prefilled in chunks; vLLM `--max-num-batched-tokens` (default: the preset's, 8192). */
  maxNumBatchedTokens?: number;
  /** Tokens per KV block, vLLM `--block-size` (default 16). */
  blockSize?: number;
  /** KV cache size in blocks, vLLM `--num-gpu-blocks-override` (default: the preset's capacity ÷ block size); must hold one `maxModelLen` request. */
  numGpuBlocks?: number;
  /**
   * Simulated model load: `/health` answers 503 until it elapsed from
   * `listen()` (default 0; `'preset'` takes the preset's measured load time).
   */
  loadDelayMs?: number | 'preset';
  /**
   * Fixed decode step duration, i.e. the time per output token whatever the
   * batch. Giving any of the three fixed latencies replaces the preset's
   * fitted step model with a fixed one (the others from the preset's lone-request values).
   */
  interTokenLatencyMs?: number;
  /** Fixed base duration of a step that prefills, i.e. the TTFT of a lone short request. */
  timeToFirstTokenMs?: number;
  /** Fixed added prefill time per uncached prompt token. */
  prefillTimePerTokenMs?: number;
  /** Multiplies every simulated delay, the load delay included; 0 runs as fast as possible (default 1). */
  timeScale?: number;
  /** Automatic prefix caching (default true, as in vLLM V1). */
  enablePrefixCaching?: boolean;
  /**
   * vLLM `--enable-prompt-tokens-details`: usage carries
   * `prompt_tokens_details.cached_tokens` when prompt tokens came from the
   * prefix cache (default true, so the mesh can report cached tokens).
   */
  enablePromptTokensDetails?: boolean;
  /** Replaces the step cost model. */
  costModel?: StepCostModel;
  /** The API server's CPU costs (default: the preset's with its cost model); `false` for none. */
  frontEnd?: import('./front-end.js').FrontEndCosts | false;
  /** Faults in force from the start (default none); `/sim/faults` changes them at run time. */
  faults?: Partial<SimFaults>;
  /** Injectable randomness in [0, 1) for the injected error rate (default `Math.random`). */
  faultRandom?: () => number;
  /**
   * Called when a stream reaches `crash_after_tokens`, after the server
   * dropped every connection and stopped listening. Default: `process.exit(1)`,
   * a real crash; tests pass their own.
   */
  onCrash?: (info: SimCrashInfo) => void;
  /** Injectable clock (ms). Overrides `clock.now` when both are given. */
  now?: () => number;
  /** Injectable clock and timers (default: the system clock). */
  clock?: SimClock;
  /** Injectable randomness in [0, 1) for ids (default: crypto). */
  random?: () => number;
  /** Reported by `GET /version` (default '0.11.0'). */
  version?: string;
}

/** Payload of the `request-start` event. */
export interface RequestStartEvent {
  /** The response id (`cmpl-…` / `chatcmpl-…`). */
  id: string;
  path: string;
}

/** Payload of the `request-end` event. */
export interface RequestEndEvent {
  id: string;
  finishReason: 'stop' | 'length';
}

/** Payload of the `request-abort` event: the client went away before the answer was complete. */
export interface RequestAbortEvent {
  id: string;
}

/** Payload of the `request-error` event: a generation request answered with an injected error. */
export interface RequestErrorEvent {
  path: string;
  status: number;
}

/** Payload of the `request-stall` event: a stream stopped emitting (`stall_after_tokens`). */
export interface RequestStallEvent {
  id: string;
  afterTokens: number;
}

/** Request counters and the engine's queue. */
export interface SimStats {
  /** Generation requests accepted (validated and submitted to the engine). */
  started: number;
  /** Generation requests answered completely. */
  finished: number;
  /** Generation requests whose client went away first (stalled ones included, once their client left). */
  aborted: number;
  /** Generation requests answered with an injected error. */
  failed: number;
  /** Streams stopped by `stall_after_tokens`. */
  stalled: number;
  running: number;
  waiting: number;
}

/** Where a server listens. */
export interface SimAddress {
  port: number;
  host: string;
  /** `http://host:port`. */
  url: string;
}

/** A running simulator. */
export interface SimServer {
  /** Starts listening (port 0 picks a free port; host defaults to 127.0.0.1) and starts the model load. */
  listen(port: number, host?: string): Promise<SimAddress>;
  /** Closes the server and every open connection and stream at once; in-flight requests are aborted. */
  close(): Promise<void>;
  /**
   * Emits `request-start` ({@link RequestStartEvent}), `request-end`
   * ({@link RequestEndEvent}), `request-abort` ({@link RequestAbortEvent}),
   * and for injected faults `request-error` ({@link RequestErrorEvent}),
   * `request-stall` ({@link RequestStallEvent}) and `crash` ({@link SimCrashInfo}).
   */
  readonly events: EventEmitter;
  /** A snapshot of the counters, taken on each read. */
  readonly stats: SimStats;
}

type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/** Creates a simulator; nothing listens until {@link SimServer.listen}. */
export function createSimServer(options: SimOptions): SimServer {
  const tracer = options.tracer ?? trace.getTracer('llmmesh-sim');
  const config = { ...SIM_DEFAULTS, ...withoutUndefined(options), servedModelName: options.servedModelName };
  const baseClock = options.clock ?? createSystemClock();
  const clock: SimClock = options.now ? { now: options.now, schedule: baseClock.schedule } : baseClock;
  const random = options.random;
  const randomHex = (): string =>
    random
      ? Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16)).join('')
      : randomUUID().replace(/-/g, '');
  const nowSeconds = () => Math.floor(clock.now() / 1000);

  if (!(config.timeScale >= 0)) throw new RangeError(`timeScale must be >= 0, got ${config.timeScale}`);
  const settings = resolveSimConfig(config);
  const loadDelayMs = config.loadDelayMs === 'preset' ? settings.preset.loadDelayMs : config.loadDelayMs;
  if (!(loadDelayMs >= 0)) throw new RangeError(`loadDelayMs must be >= 0, got ${loadDelayMs}`);
  const faults = createFaultState(options.faults);
  const faultRandom = options.faultRandom ?? Math.random;
  const onCrash = options.onCrash ?? (() => process.exit(1));

  const tokenizer = createTokenizer();
  const generator = createTextGenerator(tokenizer);
  const kvCache = createKvCacheManager({
    numBlocks: settings.numGpuBlocks,
    blockSize: settings.blockSize,
    enablePrefixCaching: config.enablePrefixCaching ?? true,
  });
  const metrics = createVllmMetrics({
    modelName: config.servedModelName,
    maxModelLen: settings.maxModelLen,
    numGpuBlocks: settings.numGpuBlocks,
    numGpuBlocksOverride: settings.numGpuBlocksOverridden ? settings.numGpuBlocks : undefined,
    blockSize: settings.blockSize,
    enablePrefixCaching: kvCache.enablePrefixCaching,
    createdSeconds: clock.now() / 1000,
  });
  const engine = createEngine({
    clock,
    kvCache,
    costModel: settings.costModel,
    maxNumSeqs: settings.maxNumSeqs,
    maxNumBatchedTokens: settings.maxNumBatchedTokens,
    timeScale: config.timeScale,
    stepTimeFactor: () => faults.get().slowFactor,
    frontEnd: settings.frontEnd,
    observer: metrics.observer,
  });
  const requestContext: RequestContext = {
    servedModelName: config.servedModelName,
    maxModelLen: settings.maxModelLen,
    tokenizer,
  };
  const promptTokensDetails = config.enablePromptTokensDetails ?? true;
  const rootModel = config.model ?? settings.preset.model;
  const commonHeaders = { server: 'uvicorn' };

  const events = new EventEmitter();
  const counts = { started: 0, finished: 0, aborted: 0, failed: 0, stalled: 0 };
  let loadEndsAtMs: number | undefined;
  let closing: Promise<void> | undefined;
  let crashed = false;
  const loaded = () => loadEndsAtMs !== undefined && clock.now() >= loadEndsAtMs;

  // A crash drops everything at once, as a dying process does; the callback then ends the process.
  const crash = (info: SimCrashInfo) => {
    if (crashed) return;
    crashed = true;
    // Let the tokens already written leave first: the stream ends right after its last token.
    setImmediate(() => {
      engine.shutdown();
      server.close();
      server.closeAllConnections();
      events.emit('crash', info);
      onCrash(info);
    });
  };

  const health: RouteHandler = (_req, res) => {
    const status = faults.get().healthStatus ?? (loaded() ? 200 : 503);
    sendText(res, status, '', undefined, commonHeaders);
  };

  const faultRoutes = new Map<string, RouteHandler>([
    ['GET', (_req, res) => sendJson(res, 200, faultsToJson(faults.get()), commonHeaders)],
    [
      'POST',
      async (req, res) => {
        const patch = parseFaultsPatch(await readJsonBody(req));
        sendJson(res, 200, faultsToJson(faults.merge(patch)), commonHeaders);
      },
    ],
    ['DELETE', (_req, res) => sendJson(res, 200, faultsToJson(faults.reset()), commonHeaders)],
  ]);

  const generate =
    (endpoint: Endpoint, path: string): RouteHandler =>
    async (req, res) => {
      const parent = contextFromHeaders(req.headers);
      const span = tracer.startSpan(
        `POST ${path}`,
        {
          kind: SpanKind.SERVER,
          attributes: {
            'http.request.method': 'POST',
            'url.path': path,
            'gen_ai.system': 'vllm',
            'gen_ai.operation.name': endpoint === 'chat' ? 'chat' : 'text_completion',
            'gen_ai.request.model': config.servedModelName,
          },
        },
        parent,
      );
      let request: ReturnType<typeof parseGenerationRequest>;
      try {
        const body = await readJsonBody(req);
        if (closing) throw apiError(503, 'ServiceUnavailableError', 'The server is shutting down.');
        if (!loaded()) throw modelLoading();
        request = parseGenerationRequest(endpoint, body, requestContext);
        const fault = faults.get();
        if (fault.errorRate > 0 && faultRandom() < fault.errorRate) {
          counts.failed++;
          events.emit('request-error', { path, status: fault.errorStatus } satisfies RequestErrorEvent);
          throw injectedFault(fault.errorStatus);
        }
      } catch (err) {
        const status = err instanceof SimHttpError ? err.status : 500;
        span.setAttribute('http.response.status_code', status);
        span.setStatus({
          code: SpanStatusCode.ERROR,
          message: err instanceof Error ? err.message : String(err),
        });
        span.end();
        throw err;
      }
      span.setAttribute('gen_ai.request.max_tokens', request.maxTokens);
      span.setAttribute('gen_ai.usage.input_tokens', request.promptTokenIds.length);
      const header = req.headers['x-request-id'];
      const baseId =
        (typeof header === 'string' && header !== '' ? header : undefined) ??
        request.requestId ??
        randomHex();
      const id = `${endpoint === 'chat' ? 'chatcmpl' : 'cmpl'}-${baseId}`;
      counts.started++;
      events.emit('request-start', { id, path } satisfies RequestStartEvent);
      serveGeneration({
        request,
        identity: { id, created: nowSeconds(), model: config.servedModelName },
        engineRequestId: endpoint === 'chat' ? id : `${id}-0`,
        engine,
        generator,
        promptTokensDetails,
        headers: commonHeaders,
        res,
        faults: faults.get,
        isCrashed: () => crashed,
        onCrashPoint(afterTokens) {
          crash({ id, afterTokens });
        },
        onStall(afterTokens) {
          counts.stalled++;
          events.emit('request-stall', { id, afterTokens } satisfies RequestStallEvent);
        },
        onEnd(reason: FinishReason) {
          span.setAttribute('gen_ai.response.finish_reasons', [reason]);
          span.setAttribute('http.response.status_code', 200);
          span.end();
          if (reason === 'abort') {
            counts.aborted++;
            events.emit('request-abort', { id } satisfies RequestAbortEvent);
          } else {
            counts.finished++;
            events.emit('request-end', { id, finishReason: reason } satisfies RequestEndEvent);
          }
        },
      });
    };

  const models: RouteHandler = (_req, res) => {
    const created = nowSeconds();
    sendJson(
      res,
      200,
      {
        object: 'list',
        data: [
          {
            id: config.servedModelName,
            object: 'model',
            created,
            owned_by: 'vllm',
            root: rootModel,
            parent: null,
            max_model_len: settings.maxModelLen,
            permission: [
              {
                id: `modelperm-${randomHex()}`,
                object: 'model_permission',
                created,
                allow_create_engine: false,
                allow_sampling: true,
                allow_logprobs: true,
                allow_search_indices: false,
                allow_view: true,
                allow_fine_tuning: false,
                organization: '*',
                group: null,
                is_blocking: false,
              },
            ],
          },
        ],
      },
      commonHeaders,
    );
  };

  const tokenize: RouteHandler = async (req, res) => {
    const parsed = parseTokenizeRequest(await readJsonBody(req), requestContext);
    sendJson(
      res,
      200,
      {
        count: parsed.promptTokenIds.length,
        max_model_len: settings.maxModelLen,
        tokens: parsed.promptTokenIds,
        token_strs: parsed.returnTokenStrs ? parsed.pieces : null,
      },
      commonHeaders,
    );
  };

  const detokenize: RouteHandler = async (req, res) => {
    const tokens = parseDetokenizeRequest(await readJsonBody(req), requestContext);
    let prompt = '';
    for (const id of tokens) {
      const piece = tokenizer.spell(id);
      if (piece === undefined) {
        // A real tokenizer spells every id; this one only those it has produced.
        throw apiError(
          400,
          'BadRequestError',
          `Token id ${id} was never produced by the simulator's tokenizer`,
        );
      }
      prompt += piece;
    }
    sendJson(res, 200, { prompt }, commonHeaders);
  };

  const routes = new Map<string, Map<string, RouteHandler>>([
    ['/health', new Map([['GET', health]])],
    [
      '/ping',
      new Map([
        ['GET', health],
        ['POST', health],
      ]),
    ],
    [
      '/version',
      new Map([['GET', (_req, res) => sendJson(res, 200, { version: config.version }, commonHeaders)]]),
    ],
    ['/v1/models', new Map([['GET', models]])],
    ...(config.serverInfo
      ? [
          [
            '/server_info',
            new Map<string, RouteHandler>([
              [
                'GET',
                (_req, res) =>
                  sendJson(
                    res,
                    200,
                    { vllm_config: { scheduler_config: { max_num_seqs: settings.maxNumSeqs } } },
                    commonHeaders,
                  ),
              ],
            ]),
          ] as const,
        ]
      : []),
    ['/tokenize', new Map([['POST', tokenize]])],
    ['/detokenize', new Map([['POST', detokenize]])],
    ['/v1/completions', new Map([['POST', generate('completions', '/v1/completions')]])],
    ['/v1/chat/completions', new Map([['POST', generate('chat', '/v1/chat/completions')]])],
    ['/sim/faults', faultRoutes],
    [
      '/metrics',
      new Map([
        [
          'GET',
          (_req, res) =>
            sendText(res, 200, metrics.render(engine.snapshot()), PROMETHEUS_CONTENT_TYPE, commonHeaders),
        ],
      ]),
    ],
  ]);

  const dispatch = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const methods = routes.get(path);
    if (!methods) throw routeNotFound();
    const handler = methods.get(req.method ?? 'GET');
    if (!handler) throw methodNotAllowed([...methods.keys()]);
    await handler(req, res);
  };

  const server = createServer((req, res) => {
    // A crashed process answers nothing.
    if (crashed) {
      req.socket.destroy();
      return;
    }
    dispatch(req, res).catch((err: unknown) => {
      const error =
        err instanceof SimHttpError
          ? err
          : apiError(500, 'InternalServerError', err instanceof Error ? err.message : String(err));
      // Drain what is left of the body so the keep-alive connection stays usable.
      req.resume();
      sendJson(res, error.status, error.body, { ...commonHeaders, ...error.headers });
    });
  });

  return {
    listen(port, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          loadEndsAtMs = clock.now() + loadDelayMs * config.timeScale;
          const address = server.address() as AddressInfo;
          const urlHost = address.address.includes(':') ? `[${address.address}]` : address.address;
          resolve({ port: address.port, host: address.address, url: `http://${urlHost}:${address.port}` });
        });
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (!server.listening) {
          engine.shutdown();
          resolve();
          return;
        }
        server.close(() => {
          engine.shutdown();
          resolve();
        });
        server.closeAllConnections();
      });
      return closing;
    },
    events,
    get stats(): SimStats {
      const snapshot = engine.snapshot();
      return { ...counts, running: snapshot.running, waiting: snapshot.waiting };
    },
  };
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
