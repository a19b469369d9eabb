/**
 * HTTP client for an OpenAI-compatible engine (vLLM, SGLang, llama.cpp or the
 * simulator) on the pod's loopback: keep-alive connection pool, streaming SSE
 * completions, health, models and metrics. Aborting the signal destroys the
 * HTTP request, which makes vLLM abort the sequence and free its KV cache.
 */
import http from 'node:http';
import https from 'node:https';
import { finished } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import {
  errors,
  fromEngineErrorObject,
  fromHttpStatus,
  fromSocketError,
  MeshError,
} from '../common/errors.js';
import { type EngineUsage, type OpenAiRequest, parseStreamChunk } from './openai.js';
import { createSseParser, type SseEvent } from './sse.js';

/** One event of a streamed completion. */
export interface EngineEvent {
  /** Generated text (may be empty on the final event). */
  text: string;
  /** Token ids of `text`, when the engine gives them. */
  tokenIds?: number[];
  /** Set on the final event only: `stop`, `length` or an engine-specific reason. */
  finishReason?: string;
  /** Set on the final event only, when the engine reported usage. */
  usage?: EngineUsage;
}

/** Per-call options. */
export interface EngineCallOptions {
  signal?: AbortSignal;
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
    signal: AbortSignal | undefined,
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

/**
 * The events of one streamed completion response, from its SSE `data`
 * fields in order: text as it arrives, then one last event with the finish
 * reason and usage (and any text or ids that came with or after the finish).
 * Throws on in-band errors and malformed events.
 */
interface EventReader {
  /** `[DONE]` was read. */
  readonly done: boolean;
  /** The event one `data` field yields now, if any. */
  read(data: string): EngineEvent | undefined;
  /** The last event; throws when the stream ended without a finish. */
  last(): EngineEvent;
}

function createEventReader(label: string): EventReader {
  let finishReason: string | undefined;
  let usage: EngineUsage | undefined;
  let pendingText = '';
  let pendingIds: number[] | undefined;
  let done = false;
  return {
    get done() {
      return done;
    },
    read(data) {
      if (data.trim() === '[DONE]') {
        done = true;
        return undefined;
      }
      let json: unknown;
      try {
        json = JSON.parse(data);
      } catch {
        throw errors.internal(`engine at ${label} sent a malformed stream event: ${data.slice(0, 200)}`);
      }
      if (typeof json === 'object' && json !== null && 'error' in json) {
        throw fromEngineErrorObject(json, label);
      }
      const chunk = parseStreamChunk(json);
      if (!chunk) return undefined;
      if (chunk.usage) usage = chunk.usage;
      if (finishReason !== undefined || chunk.finishReason !== undefined) {
        // Hold the finish chunk until usage (vLLM sends it right after), so
        // the last text, finish reason and usage travel as one chunk. Text
        // after the finish chunk is unusual but must not be lost.
        finishReason ??= chunk.finishReason;
        pendingText += chunk.text;
        if (chunk.tokenIds?.length) pendingIds = [...(pendingIds ?? []), ...chunk.tokenIds];
        return undefined;
      }
      // A token may decode to no text yet (part of a character): its id still counts.
      if (!chunk.text && !chunk.tokenIds?.length) return undefined;
      // Usage travels on the last event only.
      if (!chunk.usage && (chunk.tokenIds === undefined || chunk.tokenIds.length > 0)) return chunk;
      const ev: EngineEvent = { text: chunk.text };
      if (chunk.tokenIds?.length) ev.tokenIds = chunk.tokenIds;
      return ev;
    },
    last() {
      if (finishReason === undefined) {
        throw errors.unavailable(`engine at ${label} closed the stream before finishing`);
      }
      const last: EngineEvent = { text: pendingText, finishReason };
      if (pendingIds) last.tokenIds = pendingIds;
      if (usage) last.usage = usage;
      return last;
    },
  };
}

/**
 * Ends a response whether its stream finished, failed or was abandoned.
 * After `[DONE]` only the end of the body is left: it is read, so the
 * connection goes back to the pool (an engine that does not end the
 * response soon loses it). Any other unfinished response is destroyed,
 * which vLLM sees as a client disconnect and aborts.
 */
function release(res: http.IncomingMessage, done: boolean): void {
  if (res.complete) return;
  if (done) drainRest(res);
  else res.destroy();
}

/** The events of one streamed completion response (see {@link createEventReader}), as a generator. */
async function* streamEvents(res: http.IncomingMessage, label: string): AsyncGenerator<EngineEvent> {
  const parser = createSseParser();
  const decoder = new StringDecoder('utf8');
  const reader = createEventReader(label);
  try {
    // Not destroyed when the loop leaves at `[DONE]`: see release().
    for await (const part of res.iterator({ destroyOnReturn: false })) {
      for (const sse of parser.push(decoder.write(part as Buffer))) {
        const ev = reader.read(sse.data);
        if (ev) yield ev;
        if (reader.done) break;
      }
      if (reader.done) break;
    }
    if (!reader.done) {
      for (const sse of parser.push(decoder.end()).concat(parser.flush())) {
        const ev = reader.read(sse.data);
        if (ev) yield ev;
      }
    }
  } catch (err) {
    if (err instanceof MeshError) throw err;
    throw MeshError.from(err, `engine at ${label}`);
  } finally {
    release(res, reader.done);
  }
  yield reader.last();
}

/**
 * The events of one streamed completion response (see {@link createEventReader}),
 * each handed to `onEvent` in the `data` event that brought it.
 */
function eachEvent(
  res: http.IncomingMessage,
  label: string,
  onEvent: (ev: EngineEvent) => boolean | undefined,
): Promise<void> {
  const parser = createSseParser();
  const decoder = new StringDecoder('utf8');
  const reader = createEventReader(label);
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    // What `onEvent` threw goes to the caller as it is.
    let thrown: { err: unknown } | undefined;
    const deliver = (ev: EngineEvent): boolean => {
      try {
        return onEvent(ev) !== false;
      } catch (err) {
        thrown = { err };
        throw err;
      }
    };
    const fail = (err: unknown) =>
      reject(
        thrown ? thrown.err : err instanceof MeshError ? err : MeshError.from(err, `engine at ${label}`),
      );
    const settle = (err?: unknown) => {
      settled = true;
      res.off('data', onData);
      stopWatching();
      release(res, err === undefined && reader.done);
      if (err === undefined) resolve();
      else fail(err);
    };
    /** Hands the events of `parts` on; false once the stream is over. */
    const feed = (parts: SseEvent[], stopAtDone: boolean): boolean => {
      for (const sse of parts) {
        const ev = reader.read(sse.data);
        if (ev && !deliver(ev)) {
          settle();
          return false;
        }
        if (stopAtDone && reader.done) {
          finish();
          return false;
        }
      }
      return true;
    };
    const finish = () => {
      // The last event goes out after the response is released, as the generator's does.
      settled = true;
      res.off('data', onData);
      stopWatching();
      release(res, reader.done);
      try {
        deliver(reader.last());
      } catch (err) {
        fail(err);
        return;
      }
      resolve();
    };
    const onData = (part: Buffer) => {
      if (settled) return;
      try {
        feed(parser.push(decoder.write(part)), true);
      } catch (err) {
        settle(err);
      }
    };
    const stopWatching = finished(res, { writable: false }, (err) => {
      if (settled) return;
      if (err) {
        settle(err);
        return;
      }
      try {
        if (feed(parser.push(decoder.end()).concat(parser.flush()), false)) finish();
      } catch (e) {
        settle(e);
      }
    });
    res.on('data', onData);
  });
}

/** How long the end of a response may take to arrive after `[DONE]`. */
const END_AFTER_DONE_MS = 1000;

/** Reads what is left of a finished stream's response, destroying it if it does not end soon. */
function drainRest(res: http.IncomingMessage): void {
  const timer = setTimeout(() => res.destroy(), END_AFTER_DONE_MS);
  timer.unref();
  res.once('close', () => clearTimeout(timer));
  res.resume();
}

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
 */
function send(
  conn: Connection,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal | undefined,
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
        if (signal) {
          // From here on an abort destroys the response (and so the request).
          response = res;
          if (signal.aborted) onAbort();
          else res.once('close', () => signal.removeEventListener('abort', onAbort));
        }
        resolve(res);
      },
    );
    let response: http.IncomingMessage | undefined;
    const onAbort = () =>
      (response ?? req).destroy(errors.cancelled(`request to engine at ${label} cancelled`));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.once('error', (err) => {
      signal?.removeEventListener('abort', onAbort);
      reject(err instanceof MeshError ? err : fromSocketError(err, `engine at ${label}`));
    });
    req.end(body);
  });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
