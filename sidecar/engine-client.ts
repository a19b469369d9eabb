/**
 * HTTP client for an OpenAI-compatible engine (vLLM, SGLang, llama.cpp or the
 * simulator) on the pod's loopback: keep-alive connection pool, streaming SSE
 * completions, health, models and metrics. Aborting the signal destroys the
 * HTTP request, which makes vLLM abort the sequence and free its KV cache.
 */
import http from 'node:http';
import https from 'node:https';
import type { CancelSignal } from '../common/cancellation.js';
import { errors, fromHttpStatus, fromSocketError, MeshError } from '../common/errors.js';
import { type EngineEvent, eachEvent, streamEvents } from './engine-stream.js';
import type { OpenAiRequest } from './openai.js';

export type { EngineEvent } from './engine-stream.js';

/** Per-call options. */
export interface EngineCallOptions {
  /** Aborts the request (an `AbortSignal`, or the call's {@link CancelSignal}). */
  signal?: CancelSignal;
  /** Extra HTTP headers, e.g. `traceparent`, `x-request-id`. */
  headers?: Record<string, string>;
}

/** A model the engine serves, from `GET /v1/models`. */
export interface EngineModel {
  id: string;
  maxModelLen?: number;
}

/** A client for one engine. */
export interface EngineClient {
  /** The engine's base URL, for messages. */
  readonly url: string;
  /**
   * Streams one completion. Text events are yielded as they arrive; the last
   * event carries `finishReason` and `usage` (and any text of the last token).
   * Throws a {@link MeshError} on HTTP errors, in-band errors, and streams that
   * end without a finish.
   */
  stream(req: OpenAiRequest, options?: EngineCallOptions): AsyncGenerator<EngineEvent>;
  /**
   * Streams one completion as {@link stream} does, handing each event to
   * `onEvent` in the read that brought it (no promise per event). `onEvent`
   * returning `false` stops the stream: the HTTP request is destroyed, as an
   * abandoned stream's is, and no last event follows. Resolves after the last
   * event (or the stop); rejects with what {@link stream} throws, or with what
   * `onEvent` threw.
   */
  each(
    req: OpenAiRequest,
    onEvent: (ev: EngineEvent) => boolean | undefined,
    options?: EngineCallOptions,
  ): Promise<void>;
  /**
   * `POST /tokenize` (vLLM, the simulator): the token ids of a prompt as the
   * engine renders it. Throws a {@link MeshError} when the engine has no such
   * endpoint (NOT_FOUND) or refuses the body.
   */
  tokenize(body: Record<string, unknown>, options?: EngineCallOptions): Promise<number[]>;
  /**
   * `POST /detokenize` (vLLM, the simulator): the text of `tokens` as the
   * engine's tokenizer decodes them. Throws a {@link MeshError} when the
   * engine has no such endpoint (NOT_FOUND) or refuses the ids.
   */
  detokenize(model: string, tokens: readonly number[], options?: EngineCallOptions): Promise<string>;
  /** True when `GET /health` answers 200. */
  health(options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<boolean>;
  /** `GET /v1/models`. */
  models(options?: { timeoutMs?: number }): Promise<EngineModel[]>;
  /** `GET /metrics` as text. */
  metrics(options?: { timeoutMs?: number }): Promise<string>;
  /**
   * The engine's concurrent-sequence limit where the engine tells it: vLLM's
   * `GET /server_info?config_format=json` (`vllm_config.scheduler_config.max_num_seqs`,
   * served with `VLLM_SERVER_DEV_MODE=1`) or SGLang's `GET /get_server_info`
   * (`max_running_requests`). Undefined when neither answers.
   */
  maxNumSeqs(options?: { timeoutMs?: number }): Promise<number | undefined>;
  /** Closes pooled connections. */
  close(): void;
}

/** Options of {@link createEngineClient}. */
export interface EngineClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:8000`. */
  url: string;
  /** Maximum pooled sockets (concurrent streams); default 1024. */
  maxSockets?: number;
  /** Optional `Authorization: Bearer` key for engines started with --api-key. */
  apiKey?: string;
}

/** Creates a pooled HTTP client for one engine. */
export function createEngineClient(options: EngineClientOptions): EngineClient {
  const base = new URL(options.url);
  const transport = base.protocol === 'https:' ? https : http;
  const agent = new transport.Agent({
    keepAlive: true,
    maxSockets: options.maxSockets ?? 1024,
    maxFreeSockets: 64,
    scheduling: 'lifo',
  });
  const label = base.host;
  const authHeaders: Record<string, string> = options.apiKey
    ? { authorization: `Bearer ${options.apiKey}` }
    : {};

  const conn: Connection = { base, transport, agent, label, authHeaders };
  const request = (
    method: string,
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
    signal: CancelSignal | undefined,
  ) => send(conn, method, path, headers, body, signal);

  const readBody = async (res: http.IncomingMessage): Promise<string> => {
    const parts: Buffer[] = [];
    for await (const part of res) parts.push(part as Buffer);
    return Buffer.concat(parts).toString('utf8');
  };

  /** POSTs `body`; the parsed JSON answer (undefined when not JSON), or the HTTP error as a MeshError. */
  const postJson = async (path: string, body: unknown, callOptions: EngineCallOptions): Promise<unknown> => {
    const res = await request(
      'POST',
      path,
      { accept: 'application/json', ...callOptions.headers },
      JSON.stringify(body),
      callOptions.signal,
    );
    let text: string;
    try {
      text = await readBody(res);
    } catch (err) {
      throw MeshError.from(err, `engine at ${label}`);
    }
    const status = res.statusCode ?? 0;
    if (status !== 200) throw fromHttpStatus(status, text, label, headerValue(res.headers['retry-after']));
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  };

  /** POSTs a streamed completion; the response once its headers say 200, or the HTTP error as a MeshError. */
  const openStream = async (req: OpenAiRequest, callOptions: EngineCallOptions) => {
    const res = await request(
      'POST',
      req.path,
      { accept: 'text/event-stream', ...callOptions.headers },
      JSON.stringify(req.body),
      callOptions.signal,
    );
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      let text = '';
      try {
        text = await readBody(res);
      } catch {
        // The status alone still says what happened.
      }
      throw fromHttpStatus(status, text, label, headerValue(res.headers['retry-after']));
    }
    return res;
  };

  const simpleGet = async (path: string, timeoutMs: number, signal?: AbortSignal) => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const res = await request('GET', path, { accept: '*/*' }, undefined, combined);
    try {
      return { status: res.statusCode ?? 0, body: await readBody(res), headers: res.headers };
    } catch (err) {
      throw MeshError.from(err, `engine at ${label}`);
    }
  };

  return {
    url: base.origin,
    async *stream(req, callOptions = {}) {
      yield* streamEvents(await openStream(req, callOptions), label);
    },

    async each(req, onEvent, callOptions = {}) {
      return eachEvent(await openStream(req, callOptions), label, onEvent);
    },

    async tokenize(body, callOptions = {}) {
      const json = await postJson('/tokenize', body, callOptions);
      const tokens = (json as { tokens?: unknown } | undefined)?.tokens;
      if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'number' && Number.isInteger(t))) {
        throw errors.internal(`engine at ${label} answered /tokenize without token ids`);
      }
      return tokens as number[];
    },

    async detokenize(model, tokens, callOptions = {}) {
      const json = await postJson('/detokenize', { model, tokens }, callOptions);
      const prompt = (json as { prompt?: unknown } | undefined)?.prompt;
      if (typeof prompt !== 'string') {
        throw errors.internal(`engine at ${label} answered /detokenize without text`);
      }
      return prompt;
    },

    async health(opts = {}) {
      try {
        const r = await simpleGet('/health', opts.timeoutMs ?? 2000, opts.signal);
        return r.status === 200;
      } catch {
        return false;
      }
    },

    async models(opts = {}) {
      const r = await simpleGet('/v1/models', opts.timeoutMs ?? 2000);
      if (r.status !== 200) throw fromHttpStatus(r.status, r.body, label);
      const parsed = JSON.parse(r.body) as { data?: Array<{ id?: unknown; max_model_len?: unknown }> };
      return (parsed.data ?? [])
        .filter((m) => typeof m.id === 'string')
        .map((m) => {
          const model: EngineModel = { id: m.id as string };
          if (typeof m.max_model_len === 'number') model.maxModelLen = m.max_model_len;
          return model;
        });
    },

    async metrics(opts = {}) {
      const r = await simpleGet('/metrics', opts.timeoutMs ?? 2000);
      if (r.status !== 200) throw fromHttpStatus(r.status, r.body, label);
      return r.body;
    },

    async maxNumSeqs(opts = {}) {
      const timeoutMs = opts.timeoutMs ?? 2000;
      const readJson = async (path: string): Promise<unknown> => {
        try {
          const r = await simpleGet(path, timeoutMs);
          return r.status === 200 ? JSON.parse(r.body) : undefined;
        } catch {
          return undefined;
        }
      };
      const positive = (v: unknown) =>
        typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
      const vllm = (await readJson('/server_info?config_format=json')) as {
        vllm_config?: { scheduler_config?: { max_num_seqs?: unknown } };
      } | null;
      const fromVllm = positive(vllm?.vllm_config?.scheduler_config?.max_num_seqs);
      if (fromVllm) return fromVllm;
      const sglang = (await readJson('/get_server_info')) as { max_running_requests?: unknown } | null;
      return positive(sglang?.max_running_requests);
    },

    close() {
      agent.destroy();
    },
  };
}

/** Times a request is sent again after its pooled socket turned out closed (see {@link send}). */
const MAX_STALE_SOCKET_RESENDS = 2;

/** One engine's HTTP connection pool and identity. */
interface Connection {
  base: URL;
  transport: typeof http | typeof https;
  agent: http.Agent;
  label: string;
  authHeaders: Record<string, string>;
}

/**
 * Sends one request; resolves with the response once its headers arrive.
 * Aborting `signal` destroys the request (or, later, the response).
 *
 * A pooled keep-alive socket may be closed by the engine (its idle timeout)
 * just as a request is written to it: the request then fails with a reset
 * before any answer, and the engine never read it. Such a request is sent
 * again on another socket (as Node's documentation advises, `reusedSocket`),
 * so a race in the connection pool is not an engine fault the router counts
 * against the pod. A reset after the answer began, or on a fresh
 * connection, is the engine's.
 */
function send(
  conn: Connection,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: CancelSignal | undefined,
  resends = MAX_STALE_SOCKET_RESENDS,
): Promise<http.IncomingMessage> {
  const { base, transport, agent, label, authHeaders } = conn;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(errors.cancelled(`request to engine at ${label} cancelled`));
      return;
    }
    const req = transport.request(
      {
        protocol: base.protocol,
        hostname: base.hostname,
        port: base.port,
        method,
        path: base.pathname.replace(/\/$/, '') + path,
        agent,
        headers: {
          ...authHeaders,
          ...headers,
          ...(body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
      },
      (res) => {
        answered = true;
        if (signal) {
          // From here on an abort destroys the response (and so the request).
          response = res;
          if (signal.aborted) onAbort();
          else res.once('close', () => signal.removeEventListener('abort', onAbort));
        }
        resolve(res);
      },
    );
    let answered = false;
    let response: http.IncomingMessage | undefined;
    const onAbort = () =>
      (response ?? req).destroy(errors.cancelled(`request to engine at ${label} cancelled`));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      const code = (err as NodeJS.ErrnoException).code;
      if (
        !answered &&
        req.reusedSocket &&
        (code === 'ECONNRESET' || code === 'EPIPE') &&
        resends > 0 &&
        !signal?.aborted
      ) {
        resolve(send(conn, method, path, headers, body, signal, resends - 1));
        return;
      }
      reject(err instanceof MeshError ? err : fromSocketError(err, `engine at ${label}`));
    });
    req.end(body);
  });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
