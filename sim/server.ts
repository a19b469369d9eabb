/**
 * A vLLM-compatible simulator: an HTTP server a client cannot tell from vLLM's
 * OpenAI-compatible server by its API (same routes, bodies, SSE framing, error
 * JSON and `vllm:` metrics), backed by a simulated engine whose timing comes
 * from a scheduler model instead of a GPU. It is the embedded default engine
 * for tests, the local mesh and benchmarks.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSystemClock, type SimClock } from './clock.js';
import { createSimpleCostModel, type StepCostModel } from './cost-model.js';
import { createEngine, type FinishReason } from './engine.js';
import { apiError, methodNotAllowed, modelLoading, routeNotFound, SimHttpError } from './errors.js';
import { readJsonBody, sendJson, sendText } from './http-io.js';
import { createKvCacheManager, DEFAULT_BLOCK_SIZE } from './kv-cache.js';
import {
  type Endpoint,
  parseGenerationRequest,
  parseTokenizeRequest,
  type RequestContext,
} from './openai-request.js';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus.js';
import { serveGeneration } from './serve-generation.js';
import { createTextGenerator } from './text-generator.js';
import { createTokenizer } from './tokenizer.js';
import { createVllmMetrics } from './vllm-metrics.js';

/** Defaults of {@link SimOptions}. */
export const SIM_DEFAULTS = {
  maxModelLen: 8192,
  maxNumSeqs: 256,
  /** vLLM's default per-step token budget for the API server on large GPUs. */
  maxNumBatchedTokens: 8192,
  loadDelayMs: 0,
  interTokenLatencyMs: 10,
  timeToFirstTokenMs: 20,
  /** ≈ the fitted prefill cost of an 8B model on one H100 (0.023 ms/token). */
  prefillTimePerTokenMs: 0.02,
  timeScale: 1,
  /** ≈ the KV capacity of an 8B model on one H100 at 0.9 GPU memory utilisation. */
  numGpuBlocks: 26_300,
  version: '0.11.0',
} as const;

/** Options of {@link createSimServer}; engine options are named after vLLM's flags. */
export interface SimOptions {
  /** vLLM `--served-model-name`; callers set the default `llama-3-8b-chat`. */
  servedModelName: string;
  /** vLLM `--model`: reported as `root` by `/v1/models` (default: the served name). */
  model?: string;
  /** Context length (default 8192). */
  maxModelLen?: number;
  /** Requests running at once; the rest wait (default 256). */
  maxNumSeqs?: number;
  /** Tokens computed per engine step; longer prompts are prefilled in chunks (default 8192). */
  maxNumBatchedTokens?: number;
  /** Simulated model load: `/health` answers 503 until it elapsed from `listen()` (default 0). */
  loadDelayMs?: number;
  /** Duration of a decode step, i.e. the time per output token of a lone request (default 10). */
  interTokenLatencyMs?: number;
  /** Base duration of a step that prefills, i.e. the TTFT of a lone short request (default 20). */
  timeToFirstTokenMs?: number;
  /** Added prefill time per uncached prompt token (default 0.02). */
  prefillTimePerTokenMs?: number;
  /** Multiplies every simulated delay, the load delay included; 0 runs as fast as possible (default 1). */
  timeScale?: number;
  /** KV cache size in blocks of 16 tokens (default 26,300); must hold one `maxModelLen` request. */
  numGpuBlocks?: number;
  /** Automatic prefix caching (default true, as in vLLM V1). */
  enablePrefixCaching?: boolean;
  /**
   * vLLM `--enable-prompt-tokens-details`: usage carries
   * `prompt_tokens_details.cached_tokens` when prompt tokens came from the
   * prefix cache (default true, so the mesh can report cached tokens).
   */
  enablePromptTokensDetails?: boolean;
  /** Replaces the step cost model built from the latency options. */
  costModel?: StepCostModel;
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

/** Request counters and the engine's queue. */
export interface SimStats {
  /** Generation requests accepted (validated and submitted to the engine). */
  started: number;
  /** Generation requests answered completely. */
  finished: number;
  /** Generation requests whose client went away first. */
  aborted: number;
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
   * ({@link RequestEndEvent}) and `request-abort` ({@link RequestAbortEvent}).
   */
  readonly events: EventEmitter;
  /** A snapshot of the counters, taken on each read. */
  readonly stats: SimStats;
}

type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | void;

/** Creates a simulator; nothing listens until {@link SimServer.listen}. */
export function createSimServer(options: SimOptions): SimServer {
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
  if (config.numGpuBlocks * DEFAULT_BLOCK_SIZE < config.maxModelLen) {
    throw new RangeError(
      `numGpuBlocks (${config.numGpuBlocks}) × ${DEFAULT_BLOCK_SIZE} tokens cannot hold one request of maxModelLen ${config.maxModelLen}`,
    );
  }

  const tokenizer = createTokenizer();
  const generator = createTextGenerator(tokenizer);
  const kvCache = createKvCacheManager({
    numBlocks: config.numGpuBlocks,
    blockSize: DEFAULT_BLOCK_SIZE,
    enablePrefixCaching: config.enablePrefixCaching ?? true,
  });
  const metrics = createVllmMetrics({
    modelName: config.servedModelName,
    maxModelLen: config.maxModelLen,
    numGpuBlocks: config.numGpuBlocks,
    blockSize: DEFAULT_BLOCK_SIZE,
    enablePrefixCaching: kvCache.enablePrefixCaching,
    createdSeconds: clock.now() / 1000,
  });
  const engine = createEngine({
    clock,
    kvCache,
    costModel:
      config.costModel ??
      createSimpleCostModel({
        timeToFirstTokenMs: config.timeToFirstTokenMs,
        interTokenLatencyMs: config.interTokenLatencyMs,
        prefillTimePerTokenMs: config.prefillTimePerTokenMs,
      }),
    maxNumSeqs: config.maxNumSeqs,
    maxNumBatchedTokens: config.maxNumBatchedTokens,
    timeScale: config.timeScale,
    observer: metrics.observer,
  });
  const requestContext: RequestContext = {
    servedModelName: config.servedModelName,
    maxModelLen: config.maxModelLen,
    tokenizer,
  };
  const promptTokensDetails = config.enablePromptTokensDetails ?? true;
  const rootModel = config.model ?? config.servedModelName;
  const commonHeaders = { server: 'uvicorn' };

  const events = new EventEmitter();
  const counts = { started: 0, finished: 0, aborted: 0 };
  let loadEndsAtMs: number | undefined;
  let closing: Promise<void> | undefined;
  const loaded = () => loadEndsAtMs !== undefined && clock.now() >= loadEndsAtMs;

  const health: RouteHandler = (_req, res) => {
    sendText(res, loaded() ? 200 : 503, '', undefined, commonHeaders);
  };

  const generate =
    (endpoint: Endpoint, path: string): RouteHandler =>
    async (req, res) => {
      const body = await readJsonBody(req);
      if (closing) throw apiError(503, 'ServiceUnavailableError', 'The server is shutting down.');
      if (!loaded()) throw modelLoading();
      const request = parseGenerationRequest(endpoint, body, requestContext);
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
        onEnd(reason: FinishReason) {
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
            max_model_len: config.maxModelLen,
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
        max_model_len: config.maxModelLen,
        tokens: parsed.promptTokenIds,
        token_strs: parsed.returnTokenStrs ? parsed.pieces : null,
      },
      commonHeaders,
    );
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
    ['/tokenize', new Map([['POST', tokenize]])],
    ['/v1/completions', new Map([['POST', generate('completions', '/v1/completions')]])],
    ['/v1/chat/completions', new Map([['POST', generate('chat', '/v1/chat/completions')]])],
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
          loadEndsAtMs = clock.now() + config.loadDelayMs * config.timeScale;
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
