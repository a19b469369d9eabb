/**
 * What a stream delivered to its client, kept so that another endpoint can
 * continue it: the chunks as relayed (decoded only when the stream moves),
 * and whether every chunk with text carried its token ids. It is also where
 * each attempt's chunks arrive (the attempt's sink): a chunk is counted and
 * logged here and sent on to the client from here, so the per-chunk path
 * reads and writes this one object of the request's upstream state.
 */
import { ChunkLog, type RelayChunk } from '../../common/chunk-relay.js';
import type { Continuation } from '../../common/generated/llmmesh/v1/Continuation.js';
import type { ChunkSink, Served } from './context.js';

/** What reached the client so far, and how to continue from it. */
export class Delivered extends ChunkLog {
  /** Every chunk with text carried its token ids. */
  exact = true;
  /** Output tokens: ids where chunks carried them, else one per chunk (an estimate, for text continuations). */
  tokens = 0;
  chunks = 0;
  /** A chunk with a finish reason reached the client: the stream is complete. */
  finished = false;
  /** What serves the stream, set by the first chunk's attempt before the chunk arrives here. */
  served: Served | undefined;

  /**
   * `send` takes each chunk on to the client; `observe`, when given, sees it
   * first (and the chunk waits for the promise it may return).
   */
  constructor(
    private readonly send: ChunkSink = () => undefined,
    private readonly observe?: (chunk: RelayChunk) => Promise<void> | undefined,
  ) {
    super();
  }

  /** One chunk of the current attempt: kept for a migration, then sent on. */
  chunk(chunk: RelayChunk): Promise<void> | undefined {
    this.add(chunk);
    const served = this.served as Served;
    const send = this.send;
    const charging = this.observe?.(chunk);
    return charging ? charging.then(() => send(chunk, served)) : send(chunk, served);
  }

  add(chunk: RelayChunk): void {
    this.chunks++;
    if (chunk.tokens > 0) this.tokens += chunk.tokens;
    else if (chunk.textBytes > 0) {
      this.exact = false;
      this.tokens++;
    }
    if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') this.finished = true;
    this.append(chunk.bytes);
  }

  continuation(): { value: Continuation; mode: 'token_ids' | 'text' } {
    const { text, tokenIds } = this.read();
    if (this.exact && tokenIds.length > 0) {
      return { value: { tokenIds, text, completionTokens: tokenIds.length }, mode: 'token_ids' };
    }
    return { value: { tokenIds: [], text, completionTokens: this.tokens }, mode: 'text' };
  }
}
