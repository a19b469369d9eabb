/**
 * Writes a chunk source to a GenerateStream call: the initial metadata
 * (`x-llmmesh-cache`) with the first chunk, every chunk with backpressure,
 * token ids where the engine gave them, usage on the last chunk.
 */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { GenerateChunk } from '../../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { finishReasonToProto, usageToProto } from '../../common/grpc-mapping.js';
import { CACHE_KEY } from '../../common/metadata.js';
import type { SidecarMetrics } from '../metrics.js';
import type { ChunkSource, StreamChunk } from './flight.js';
import type { CacheResult } from './lookup.js';

/** The server side of one GenerateStream call. */
export type GenerateCall = grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>;

/** How far a write got. */
export interface WriteOutcome {
  /** The source ended and every chunk was written. */
  completed: boolean;
  /** Chunks written. */
  chunks: number;
  /** Token ids written. */
  tokenIds: number;
  /** A chunk with text but no token ids was written (the engine gives none). */
  textWithoutIds: boolean;
}

/** A fresh outcome, before anything was written. */
export function noOutcome(): WriteOutcome {
  return { completed: false, chunks: 0, tokenIds: 0, textWithoutIds: false };
}

/** Tokens delivered: the ids written, or (when the engine gives none) the chunks, one token each. */
export function deliveredTokens(o: WriteOutcome): number {
  return o.textWithoutIds ? o.chunks : o.tokenIds;
}

/** Converts a chunk; `fromCache` marks the prompt as wholly cached (nothing was computed for this call). */
export function toProtoChunk(
  c: StreamChunk,
  index: number,
  version: string,
  fromCache: boolean,
): GenerateChunk {
  const out: GenerateChunk = { text: c.text };
  if (index === 0) out.modelVersion = version;
  if (c.tokenIds?.length) out.tokenIds = c.tokenIds;
  if (c.finishReason !== undefined) {
    out.finishReason = finishReasonToProto(c.finishReason);
    const usage = usageToProto(c.usage);
    if (fromCache) usage.cachedTokens = usage.promptTokens;
    out.usage = usage;
  }
  return out;
}

/**
 * Writes `source` to `call` until it ends or `signal` aborts (the caller went
 * away, or the stream is handed back); rethrows the source's failure.
 */
export async function writeStream(
  call: GenerateCall,
  source: ChunkSource,
  signal: AbortSignal,
  opts: { result: CacheResult; version: string; startedAt: number; metrics: SidecarMetrics },
  progress: WriteOutcome,
): Promise<WriteOutcome> {
  const fromCache = opts.result === 'hit-l1' || opts.result === 'hit-l2' || opts.result === 'coalesced';
  // One abort listener for the whole call, however many chunks wait.
  const aborted = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  for (;;) {
    while (progress.chunks < source.chunks.length) {
      const i = progress.chunks;
      const chunk = source.chunks[i] as StreamChunk;
      if (i === 0) {
        const md = new grpc.Metadata();
        md.set(CACHE_KEY, opts.result);
        call.sendMetadata(md);
        opts.metrics.ttft.observe({ cache: opts.result }, (performance.now() - opts.startedAt) / 1000);
      }
      progress.chunks++;
      if (chunk.tokenIds?.length) progress.tokenIds += chunk.tokenIds.length;
      else if (chunk.text !== '') progress.textWithoutIds = true;
      if (!call.write(toProtoChunk(chunk, i, opts.version, fromCache))) {
        await once(call, 'drain', { signal }).catch(() => {});
      }
      if (signal.aborted) return progress;
    }
    if (source.error) throw source.error;
    if (source.done) {
      progress.completed = true;
      return progress;
    }
    await Promise.race([source.changed(), aborted]);
    if (signal.aborted) return progress;
  }
}
