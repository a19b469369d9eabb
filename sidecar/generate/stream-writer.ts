/**
 * Writes a chunk source to a GenerateStream call: the initial metadata
 * (`x-llmmesh-cache`) with the first chunk, every chunk with backpressure,
 * token ids where the engine gave them, usage on the last chunk. A caller
 * that keeps up gets one chunk per engine chunk; once
 * {@link COALESCE_BACKLOG} chunks wait to be written (the caller is
 * behind), all that wait are merged into
 * one (text and token ids kept exactly; see {@link mergeable}).
 */
import * as grpc from '@grpc/grpc-js';
import type { CancelSignal } from '../../common/cancellation.js';
import { COALESCE_BACKLOG } from '../../common/coalescing.js';
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
 * How many chunks from `from` on can go out as one: those pending that carry
 * their token ids (or no text), so that the merged chunk's `token_ids.length`
 * is its exact token count. A chunk of text without ids is one token by
 * convention, so it is never merged.
 */
function mergeable(source: ChunkSource, from: number): number {
  let n = 0;
  for (let i = from; i < source.length; i++) {
    const c = source.at(i);
    if (c.text !== '' && !c.tokenIds?.length) break;
    n++;
  }
  return Math.max(1, n);
}

/** `count` chunks from `from` on as one: text and token ids in order, the finish and usage of the last. */
function mergeChunks(source: ChunkSource, from: number, count: number): StreamChunk {
  const texts: string[] = [];
  const tokenIds: number[] = [];
  let last = source.at(from);
  for (let i = from; i < from + count; i++) {
    last = source.at(i);
    texts.push(last.text);
    if (last.tokenIds) for (const id of last.tokenIds) tokenIds.push(id);
  }
  return { text: texts.join(''), tokenIds, finishReason: last.finishReason, usage: last.usage };
}

/**
 * Writes `source` to `call` until it ends or `signal` aborts (the caller went
 * away, or the stream is handed back); rejects with the source's failure.
 * Chunks are written in the call that brought them (the source's change),
 * or when the call drains after a write that filled it.
 */
export function writeStream(
  call: GenerateCall,
  source: ChunkSource,
  signal: CancelSignal,
  opts: {
    result: CacheResult;
    version: string;
    startedAt: number;
    metrics: SidecarMetrics;
    /** Told how many chunks are written, after each write (a flight drops what nobody needs). */
    written?: (upTo: number) => void;
  },
  progress: WriteOutcome,
): Promise<WriteOutcome> {
  const written = opts.written;
  const fromCache = opts.result === 'hit-l1' || opts.result === 'hit-l2' || opts.result === 'coalesced';
  return new Promise<WriteOutcome>((resolve, reject) => {
    let over = false;
    let draining = false;
    const end = (err?: unknown) => {
      if (over) return;
      over = true;
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
      call.off('drain', onDrain);
      if (err === undefined) resolve(progress);
      else reject(err);
    };
    const onAbort = () => end();
    const onDrain = () => {
      draining = false;
      pump();
    };
    const pump = () => {
      if (over || draining) return;
      try {
        while (progress.chunks < source.length) {
          const i = progress.chunks;
          let chunk = source.at(i);
          if (i === 0) {
            const md = new grpc.Metadata();
            md.set(CACHE_KEY, opts.result);
            call.sendMetadata(md);
            opts.metrics.ttft.observe({ cache: opts.result }, (performance.now() - opts.startedAt) / 1000);
          }
          let count = 1;
          // COALESCE_BACKLOG chunks or more wait for the caller (it is behind): they go out as one.
          if (i > 0 && source.length - i >= COALESCE_BACKLOG) {
            count = mergeable(source, i);
            if (count > 1) chunk = mergeChunks(source, i, count);
          }
          progress.chunks += count;
          if (chunk.tokenIds?.length) progress.tokenIds += chunk.tokenIds.length;
          else if (chunk.text !== '') progress.textWithoutIds = true;
          const more = call.write(toProtoChunk(chunk, i, opts.version, fromCache));
          written?.(progress.chunks);
          // An abort ends the write at once (onAbort).
          if (over) return;
          if (!more) {
            draining = true;
            call.once('drain', onDrain);
            return;
          }
        }
        if (source.error) return end(source.error);
        if (source.done) {
          progress.completed = true;
          return end();
        }
      } catch (err) {
        end(err);
      }
    };
    const unsubscribe = source.onChange(pump);
    if (signal.aborted) {
      end();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    pump();
  });
}
