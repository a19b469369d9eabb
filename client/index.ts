/**
 * The typed client for internal services calling llmmesh:
 *
 * ```ts
 * import { createInferenceClient } from 'llmmesh/client';
 * const client = createInferenceClient('127.0.0.1:50051');
 * for await (const chunk of client.generateStream({ model: 'llama-3-8b-chat', prompt: 'hello' })) {
 *   process.stdout.write(chunk.text);
 * }
 * ```
 *
 * Calls retry `UNAVAILABLE` before the first chunk (gRPC retry policy, which
 * honours the server's `grpc-retry-pushback-ms`), take deadlines, and cancel
 * through an `AbortSignal`; they move to a fresh connection every so many
 * calls, so that a burst of cancels never gets a connection closed
 * (common/rotating-client.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { MeshError, Status } from '../common/errors.js';
import type { ChatMessage } from '../common/generated/llmmesh/v1/ChatMessage.js';
import type { FinishReason__Output as FinishReason } from '../common/generated/llmmesh/v1/FinishReason.js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import type { GenerateResponse__Output } from '../common/generated/llmmesh/v1/GenerateResponse.js';
import type { InferenceClient as RawInferenceClient } from '../common/generated/llmmesh/v1/Inference.js';
import type { ListModelsResponse__Output } from '../common/generated/llmmesh/v1/ListModelsResponse.js';
import type { Priority } from '../common/generated/llmmesh/v1/Priority.js';
import type { Usage__Output } from '../common/generated/llmmesh/v1/Usage.js';
import { INFERENCE_SERVICE, loadProtos } from '../common/proto.js';
import { RotatingClient } from '../common/rotating-client.js';

export type {
  ChatMessage,
  FinishReason,
  GenerateChunk__Output as GenerateChunk,
  Priority,
  Usage__Output as Usage,
};
export { MeshError, Status };

/** A request, as a plain object (camelCase fields of `llmmesh.v1.GenerateRequest`). */
export interface GenerateInput {
  model: string;
  prompt?: string;
  messages?: ChatMessage[];
  sampling?: {
    maxTokens?: number;
    temperature?: number;
    topP?: number;
    seed?: number;
    stop?: string[];
  };
  routing?: { version?: string; sessionKey?: string; priority?: Priority };
  requestId?: string;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborting cancels the call (and the engine's work). */
  signal?: AbortSignal;
  /** Deadline relative to now; overrides the client's default. */
  timeoutMs?: number;
  /** Extra request metadata, e.g. `{ authorization: 'Bearer …' }`. */
  metadata?: Record<string, string>;
}

/** Options of {@link createInferenceClient}. */
export interface InferenceClientOptions {
  /** Channel credentials; plaintext by default. */
  credentials?: grpc.ChannelCredentials;
  /** Deadline of calls that set none; none by default. */
  defaultTimeoutMs?: number;
  /** Metadata sent with every call (e.g. an API key). */
  metadata?: Record<string, string>;
  /** Attempts per call for UNAVAILABLE before the first chunk (1 disables retries). Default 3. */
  maxAttempts?: number;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
}

/** Where a request was served, from response headers and trailers. */
export interface ServedBy {
  /** Model version (`x-llmmesh-version`). */
  version: string;
  /** Serving endpoint (`x-llmmesh-endpoint`). */
  endpoint: string;
  /** How the pod served it (`x-llmmesh-cache`): hit-l1, hit-l2, coalesced, miss, bypass, uncacheable; '' if unknown. */
  cache: string;
}

/**
 * A streaming call: iterate it for chunks. Read it to its end, break out of
 * the loop, or cancel it: a stream left unread holds its call open on the
 * router, and the connection it runs on with it.
 */
export interface GenerateStreamCall extends AsyncIterable<GenerateChunk__Output> {
  /** Resolves with the response headers once the first chunk is on its way. */
  readonly servedBy: Promise<ServedBy>;
  /** Resolves with the trace id (trailer `x-llmmesh-trace-id`) when the call ends, '' if absent. */
  readonly traceId: Promise<string>;
  /** Resolves with what the call cost (trailer `x-llmmesh-cost`) when it ends; null when its version has no price. */
  readonly cost: Promise<number | null>;
  /** Cancels the call. */
  cancel(): void;
}

/** A completed unary call. */
export interface GenerateResult {
  text: string;
  finishReason: FinishReason;
  usage: Usage__Output | null;
  modelVersion: string;
  requestId: string;
  endpoint: string;
  /** How the pod served it (`x-llmmesh-cache`). */
  cache: string;
  traceId: string;
  /** What the call cost at its version's configured prices (trailer `x-llmmesh-cost`); null when it has none. */
  cost: number | null;
}

/** The typed client. */
export interface InferenceClient {
  generate(input: GenerateInput, options?: CallOptions): Promise<GenerateResult>;
  generateStream(input: GenerateInput, options?: CallOptions): GenerateStreamCall;
  listModels(options?: CallOptions): Promise<ListModelsResponse__Output>;
  /** Waits until the channel is connected (or the timeout passes). */
  waitForReady(timeoutMs: number): Promise<void>;
  close(): void;
}

/** The gRPC service config: retry UNAVAILABLE before any response message. */
export function retryServiceConfig(maxAttempts: number): string {
  return JSON.stringify({
    methodConfig: [
      {
        name: [{ service: INFERENCE_SERVICE }],
        retryPolicy: {
          maxAttempts: Math.max(2, Math.min(5, maxAttempts)),
          initialBackoff: '0.1s',
          maxBackoff: '2s',
          backoffMultiplier: 2,
          retryableStatusCodes: ['UNAVAILABLE'],
        },
      },
    ],
  });
}

/** Creates a client for the router (or any `llmmesh.v1.Inference` server) at `address`. */
export function createInferenceClient(
  address: string,
  options: InferenceClientOptions = {},
): InferenceClient {
  const { inference } = loadProtos();
  const maxAttempts = options.maxAttempts ?? 3;
  const channelOptions: grpc.ChannelOptions = { ...options.channelOptions };
  if (maxAttempts > 1) channelOptions['grpc.service_config'] = retryServiceConfig(maxAttempts);
  else channelOptions['grpc.enable_retries'] = 0;
  // Calls move to a fresh connection every so many: a server closes a
  // connection on which too many streams were cancelled (common/rotating-client.ts).
  const raw = new RotatingClient(
    (own) =>
      new inference.Inference(address, options.credentials ?? grpc.credentials.createInsecure(), {
        ...channelOptions,
        ...own,
      }) as unknown as RawInferenceClient & grpc.Client,
  );

  const prepare = (callOptions: CallOptions = {}) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries({ ...options.metadata, ...callOptions.metadata })) md.set(k, v);
    const timeoutMs = callOptions.timeoutMs ?? options.defaultTimeoutMs;
    const grpcOptions: grpc.CallOptions = {};
    if (timeoutMs !== undefined) grpcOptions.deadline = Date.now() + timeoutMs;
    return { md, grpcOptions };
  };

  return {
    generate(input, callOptions = {}) {
      const { md, grpcOptions } = prepare(callOptions);
      return new Promise<GenerateResult>((resolve, reject) => {
        if (callOptions.signal?.aborted) {
          reject(new MeshError(Status.CANCELLED, 'cancelled before start'));
          return;
        }
        let servedBy: ServedBy = { version: '', endpoint: '', cache: '' };
        let traceId = '';
        let cost: number | null = null;
        let response: GenerateResponse__Output | undefined;
        let error: unknown;
        const call = raw.call((c) =>
          c.Generate(toRequest(input), md, grpcOptions, (err, res) => {
            error = err;
            response = res;
          }),
        );
        const onAbort = () => call.cancel();
        callOptions.signal?.addEventListener('abort', onAbort, { once: true });
        call.on('metadata', (m) => {
          servedBy = servedFrom(m);
        });
        call.on('status', (s: grpc.StatusObject) => {
          callOptions.signal?.removeEventListener('abort', onAbort);
          traceId = String(s.metadata.get('x-llmmesh-trace-id')[0] ?? '');
          cost = costFrom(s.metadata);
          if (error || !response) {
            reject(MeshError.from(error ?? new MeshError(s.code, s.details)));
            return;
          }
          resolve({
            text: response.text,
            finishReason: response.finishReason,
            usage: response.usage,
            modelVersion: response.modelVersion || servedBy.version,
            requestId: response.requestId,
            endpoint: servedBy.endpoint,
            cache: servedBy.cache,
            traceId,
            cost,
          });
        });
      });
    },

    generateStream(input, callOptions = {}) {
      const { md, grpcOptions } = prepare(callOptions);
      const call = raw.call((c) => c.GenerateStream(toRequest(input), md, grpcOptions));
      const onAbort = () => call.cancel();
      if (callOptions.signal?.aborted) call.cancel();
      else callOptions.signal?.addEventListener('abort', onAbort, { once: true });
      let resolveServed!: (s: ServedBy) => void;
      let rejectServed!: (e: unknown) => void;
      const servedBy = new Promise<ServedBy>((res, rej) => {
        resolveServed = res;
        rejectServed = rej;
      });
      servedBy.catch(() => {});
      let resolveCost!: (c: number | null) => void;
      const cost = new Promise<number | null>((res) => {
        resolveCost = res;
      });
      const traceId = new Promise<string>((res) => {
        call.on('status', (s: grpc.StatusObject) => {
          callOptions.signal?.removeEventListener('abort', onAbort);
          resolveCost(costFrom(s.metadata));
          res(String(s.metadata.get('x-llmmesh-trace-id')[0] ?? ''));
          if (s.code !== Status.OK) rejectServed(new MeshError(s.code, s.details));
        });
      });
      call.on('metadata', (m) => resolveServed(servedFrom(m)));
      return {
        servedBy,
        traceId,
        cost,
        cancel: () => call.cancel(),
        async *[Symbol.asyncIterator]() {
          try {
            for await (const chunk of call as AsyncIterable<GenerateChunk__Output>) yield chunk;
          } catch (err) {
            throw MeshError.from(err);
          } finally {
            // Stopping the iteration early (break) cancels the call.
            call.cancel();
          }
        },
      };
    },

    listModels(callOptions = {}) {
      const { md, grpcOptions } = prepare(callOptions);
      return new Promise((resolve, reject) => {
        raw.call((c) =>
          c.ListModels({}, md, grpcOptions, (err, res) => {
            if (err || !res) reject(MeshError.from(err));
            else resolve(res);
          }),
        );
      });
    },

    waitForReady(timeoutMs) {
      return new Promise((resolve, reject) => {
        raw.client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
      });
    },

    close() {
      raw.close();
    },
  };
}

/** The `x-llmmesh-cost` trailer as a number; null when absent. */
function costFrom(m: grpc.Metadata): number | null {
  const v = m.get('x-llmmesh-cost')[0];
  if (v === undefined || v === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function servedFrom(m: grpc.Metadata): ServedBy {
  return {
    version: String(m.get('x-llmmesh-version')[0] ?? ''),
    endpoint: String(m.get('x-llmmesh-endpoint')[0] ?? ''),
    cache: String(m.get('x-llmmesh-cache')[0] ?? ''),
  };
}

function toRequest(input: GenerateInput): GenerateRequest {
  const req: GenerateRequest = { model: input.model };
  if (input.prompt !== undefined) req.prompt = input.prompt;
  if (input.messages) req.messages = input.messages;
  if (input.sampling) req.sampling = { ...input.sampling };
  if (input.routing) req.routing = { ...input.routing };
  if (input.requestId) req.requestId = input.requestId;
  return req;
}
