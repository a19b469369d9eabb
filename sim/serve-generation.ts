/**
 * Serves one validated generation request over HTTP: submits it to the engine,
 * turns each emitted token into an SSE chunk (or collects the text for a
 * non-streaming answer), applies stop strings, and aborts the engine request
 * when the client goes away before the answer is complete.
 */
import type { ServerResponse } from 'node:http';
import type { Engine, FinishReason } from './engine.js';
import type { SimFaults } from './faults.js';
import type { GenerationRequest } from './openai-request.js';
import {
  chatContentChunk,
  chatResponse,
  chatRoleChunk,
  completionChunk,
  completionResponse,
  createChunkSerializer,
  type Finish,
  NO_TOKEN_IDS,
  type ResponseIdentity,
  type ReturnedTokenIds,
  type UsageCounts,
  usageChunk,
} from './openai-response.js';
import { createOutputText } from './output-text.js';
import type { TextGenerator } from './text-generator.js';

/** Content type of vLLM's streams (Starlette appends the charset to `text/` types). */
export const SSE_CONTENT_TYPE = 'text/event-stream; charset=utf-8';

/** Everything {@link serveGeneration} needs. */
export interface ServeGenerationOptions {
  request: GenerationRequest;
  identity: ResponseIdentity;
  /** The id the engine knows the request by. */
  engineRequestId: string;
  engine: Engine;
  generator: TextGenerator;
  /** vLLM's `--enable-prompt-tokens-details`: report cached prompt tokens in usage. */
  promptTokensDetails: boolean;
  /** Extra response headers. */
  headers: Readonly<Record<string, string>>;
  res: ServerResponse;
  /** The faults in force, read at every token. */
  faults(): Readonly<SimFaults>;
  /** True once the simulator crashed: nothing more is written. */
  isCrashed(): boolean;
  /** This request emitted `crash_after_tokens` tokens and is not finished: the simulator must crash. */
  onCrashPoint(afterTokens: number): void;
  /** This request reached `stall_after_tokens`: its engine request was dropped and its response stays open. */
  onStall(afterTokens: number): void;
  /** Called once when the request ends: finished (`stop`/`length`) or `abort` (the client left). */
  onEnd(reason: FinishReason): void;
}

/** Runs the request; returns at once, the response completes asynchronously. */
export function serveGeneration(options: ServeGenerationOptions): void {
  const { request, identity, engine, generator, res } = options;
  const output = createOutputText({
    stop: request.stop,
    includeStopStrInOutput: request.includeStopStrInOutput,
    minTokens: request.minTokens,
  });
  const chat = request.endpoint === 'chat';
  const returnTokenIds = request.returnTokenIds;
  // The whole output's ids, for a non-streaming body with `return_token_ids`.
  const outputIds: number[] = [];
  let stopReason: string | null = null;
  let ended = false;
  let stalled = false;
  const end = (reason: FinishReason) => {
    if (ended) return;
    ended = true;
    options.onEnd(reason);
  };
  const usage = (completionTokens: number, cachedTokens: number): UsageCounts => ({
    promptTokens: request.promptTokenIds.length,
    completionTokens,
    cachedTokens,
  });
  const send = (chunk: object) => {
    if (!res.destroyed) res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  };
  // Completion streams carry the prompt's ids on the first chunk's choice, chat streams on the role chunk.
  const streamIds = (index: number, tokenId: number): ReturnedTokenIds =>
    returnTokenIds
      ? { prompt: index === 0 && !chat ? request.promptTokenIds : null, output: [tokenId] }
      : NO_TOKEN_IDS;
  // Most chunks of a stream differ only in their text (and token id): serialise the rest once.
  const contentChunkJson =
    request.stream && !request.continuousUsageStats
      ? createChunkSerializer((text, ids) =>
          chat
            ? chatContentChunk(identity, text, null, undefined, returnTokenIds ? ids : null)
            : completionChunk(identity, text, null, undefined, {
                prompt: null,
                output: returnTokenIds ? ids : null,
              }),
        )
      : undefined;

  const handle = engine.submit(
    {
      id: options.engineRequestId,
      promptTokenIds: request.promptTokenIds,
      maxTokens: request.maxTokens,
      nextToken: generator.start({
        model: identity.model,
        promptTokenIds: request.promptTokenIds,
        seed: request.seed,
      }),
      checkStop(tokenId) {
        const matched = output.append(generator.decode(tokenId));
        if (matched === undefined) return false;
        stopReason = matched;
        return true;
      },
    },
    {
      onToken({ tokenId, index, finishReason, numCachedTokens }) {
        if (stalled || options.isCrashed()) return;
        const faults = options.faults();
        if (faults.stallAfterTokens !== null && index >= faults.stallAfterTokens) {
          // Stop emitting, keep the connection: the client sees a stream that just goes quiet.
          stalled = true;
          handle.abort();
          options.onStall(index);
          return;
        }
        if (!finishReason && faults.crashAfterTokens !== null && index + 1 >= faults.crashAfterTokens) {
          options.onCrashPoint(index + 1);
        }
        const finish: Finish | null = finishReason ? { finishReason, stopReason } : null;
        const tokens = index + 1;
        if (request.stream) {
          const continuous = request.continuousUsageStats ? usage(tokens, 0) : undefined;
          if (chat && index === 0) {
            send(
              chatRoleChunk(
                identity,
                request.continuousUsageStats ? usage(0, 0) : undefined,
                returnTokenIds ? request.promptTokenIds : null,
              ),
            );
          }
          const delta = output.takeDelta(finish !== null);
          const ids = streamIds(index, tokenId);
          if (contentChunkJson && !finish && ids.prompt === null) {
            if (!res.destroyed) res.write(`data: ${contentChunkJson(delta, ids.output)}\n\n`);
          } else {
            send(
              chat
                ? chatContentChunk(identity, delta, finish, continuous, ids.output)
                : completionChunk(identity, delta, finish, continuous, ids),
            );
          }
          if (!finish) return;
          if (request.includeUsage) {
            send(
              usageChunk(
                identity,
                chat ? 'chat.completion.chunk' : 'text_completion',
                usage(tokens, numCachedTokens),
                options.promptTokensDetails,
              ),
            );
          }
          if (!res.destroyed) res.end('data: [DONE]\n\n');
        } else {
          if (returnTokenIds) outputIds.push(tokenId);
          if (!finish) return;
          const counts = usage(tokens, numCachedTokens);
          const ids: ReturnedTokenIds = returnTokenIds
            ? { prompt: request.promptTokenIds, output: outputIds }
            : NO_TOKEN_IDS;
          const body = chat
            ? chatResponse(identity, output.text, finish, counts, options.promptTokensDetails, ids)
            : completionResponse(identity, output.text, finish, counts, options.promptTokensDetails, ids);
          const text = JSON.stringify(body);
          if (!res.destroyed) {
            res.writeHead(200, {
              ...options.headers,
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(text),
            });
            res.end(text);
          }
        }
        end(finish.finishReason);
      },
    },
  );

  const abandon = () => {
    // The client went away (or the server is closing) before the answer was complete.
    if (ended) return;
    handle.abort();
    end('abort');
  };
  res.on('close', abandon);
  if (res.destroyed || !res.socket || res.socket.destroyed) {
    abandon();
    return;
  }
  if (request.stream) {
    // Headers go out at once, before the first token, as uvicorn sends them.
    res.writeHead(200, { ...options.headers, 'content-type': SSE_CONTENT_TYPE });
    res.flushHeaders();
  }
}
