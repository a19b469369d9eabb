/**
 * What a stream delivered to its client, kept so that another endpoint can
 * continue it: the chunks as relayed (decoded only when the stream moves),
 * and whether every chunk with text carried its token ids.
 */
import { ChunkLog, type RelayChunk } from '../../common/chunk-relay.js';
import type { Continuation } from '../../common/generated/llmmesh/v1/Continuation.js';

/**
 * What reached the client so far, and how to continue from it. The counts
 * and the log are one object: a chunk touches nothing else here.
 */
export class Delivered extends ChunkLog {
  /** Every chunk with text carried its token ids. */
  exact = true;
  /** Output tokens: ids where chunks carried them, else one per chunk (an estimate, for text continuations). */
  tokens = 0;
  chunks = 0;
  /** A chunk with a finish reason reached the client: the stream is complete. */
  finished = false;

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
