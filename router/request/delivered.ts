/**
 * What a stream delivered to its client, kept so that another endpoint can
 * continue it: the text, and the token ids while every chunk carried them.
 */
import type { Continuation } from '../../common/generated/llmmesh/v1/Continuation.js';
import type { GenerateChunk__Output } from '../../common/generated/llmmesh/v1/GenerateChunk.js';

/** What reached the client so far, and how to continue from it. */
export class Delivered {
  text = '';
  tokenIds: number[] = [];
  /** Every chunk with text carried its token ids. */
  exact = true;
  /** Output tokens: ids where chunks carried them, else one per chunk (an estimate, for text continuations). */
  tokens = 0;
  chunks = 0;
  /** A chunk with a finish reason reached the client: the stream is complete. */
  finished = false;

  add(chunk: GenerateChunk__Output): void {
    this.chunks++;
    const ids = chunk.tokenIds;
    if (ids.length > 0) {
      for (const id of ids) this.tokenIds.push(id);
      this.tokens += ids.length;
    } else if (chunk.text) {
      this.exact = false;
      this.tokens++;
    }
    this.text += chunk.text;
    if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED') this.finished = true;
  }

  continuation(): { value: Continuation; mode: 'token_ids' | 'text' } {
    if (this.exact && this.tokenIds.length > 0) {
      return {
        value: { tokenIds: this.tokenIds, text: this.text, completionTokens: this.tokenIds.length },
        mode: 'token_ids',
      };
    }
    return { value: { tokenIds: [], text: this.text, completionTokens: this.tokens }, mode: 'text' };
  }
}
