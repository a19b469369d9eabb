/**
 * Writes a stream's chunks to its client, coalescing while the client is
 * behind. A client that keeps up gets one `GenerateChunk` per upstream chunk
 * (one token each); once {@link COALESCE_BACKLOG} messages wait in the
 * call's write buffer (the client is behind: its flow-control window is
 * full), the chunks that arrive before 'drain' are merged into one
 * pending chunk (text concatenated, token ids appended, the finish reason
 * and usage of the last), written at 'drain' as one message. The first
 * chunk always goes out alone and at once. Upstream reading goes on while
 * chunks merge, up to {@link MAX_PENDING_TOKENS} tokens or
 * {@link MAX_PENDING_TEXT} characters; beyond that the writer pushes back
 * (the upstream read waits for 'drain'), so memory stays bounded.
 *
 * Nothing is lost or reordered: a merged chunk carries exactly the text and
 * token ids of the chunks it replaces, and `token_ids.length` says how many
 * tokens it holds.
 */
import { once } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { COALESCE_BACKLOG } from '../../common/coalescing.js';
import type {
  GenerateChunk,
  GenerateChunk__Output,
} from '../../common/generated/llmmesh/v1/GenerateChunk.js';

/** Tokens merged into one pending chunk before the upstream read waits for the client. */
export const MAX_PENDING_TOKENS = 4096;
/** Characters merged into one pending chunk before the upstream read waits for the client. */
export const MAX_PENDING_TEXT = 64 * 1024;

/** Writes chunks to a server stream; see the module comment. */
export class ChunkWriter {
  private behind = false;
  private drained: Promise<void> | undefined;
  private parts: string[] = [];
  private textLength = 0;
  private ids: number[] = [];
  private tail: GenerateChunk | undefined;
  /** Messages written (merged chunks count once). */
  messages = 0;

  constructor(private readonly call: grpc.ServerWritableStream<unknown, GenerateChunk>) {}

  /**
   * Writes `out` (built from `chunk`), or merges it while the client is
   * behind; returns a promise only when the upstream read must wait.
   */
  write(out: GenerateChunk, chunk: GenerateChunk__Output): Promise<void> | undefined {
    if (!this.behind) {
      this.messages++;
      if (!this.call.write(out) && this.call.writableLength >= COALESCE_BACKLOG) this.fallBehind();
      return undefined;
    }
    if (out.modelVersion) {
      // Only the first chunk sets it, and that one is never merged; keep it anyway.
      this.tail = { ...this.tail, modelVersion: out.modelVersion };
    }
    this.parts.push(chunk.text);
    this.textLength += chunk.text.length;
    for (const id of chunk.tokenIds) this.ids.push(id);
    if (out.finishReason !== undefined)
      this.tail = { ...this.tail, finishReason: out.finishReason, usage: out.usage };
    if (this.ids.length >= MAX_PENDING_TOKENS || this.textLength >= MAX_PENDING_TEXT) return this.drained;
    return undefined;
  }

  /** Writes what is pending (the stream ends next: grpc-js sends buffered messages before the status). */
  flush(): void {
    const merged = this.take();
    if (!merged) return;
    this.messages++;
    this.call.write(merged);
  }

  private take(): GenerateChunk | undefined {
    if (this.parts.length === 0 && !this.tail) return undefined;
    const merged: GenerateChunk = {
      ...this.tail,
      text: this.parts.length === 1 ? this.parts[0] : this.parts.join(''),
      tokenIds: this.ids,
    };
    this.parts = [];
    this.textLength = 0;
    this.ids = [];
    this.tail = undefined;
    return merged;
  }

  private fallBehind(): void {
    this.behind = true;
    const drained = waitForDrain(this.call).then(() => {
      this.behind = false;
      const merged = this.take();
      if (!merged) return;
      this.messages++;
      if (!this.call.write(merged) && this.call.writableLength >= COALESCE_BACKLOG) this.fallBehind();
    });
    // A client that went away rejects it; the request's cancellation handles that.
    drained.catch(() => {});
    this.drained = drained;
  }
}

/** Waits until the client can take more, or until it goes away (then the call is cancelled). */
async function waitForDrain(call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  if (call.cancelled) throw new Error('client went away');
  const gone = new AbortController();
  const onCancel = () => gone.abort();
  call.once('cancelled', onCancel);
  try {
    await once(call, 'drain', { signal: gone.signal });
  } finally {
    call.off('cancelled', onCancel);
  }
}
