/**
 * Writes a stream's chunks to its client, coalescing while the client is
 * behind. A client that keeps up gets each upstream chunk (one token) as the
 * bytes the endpoint sent; once {@link COALESCE_BACKLOG} messages wait in the
 * call's write buffer (the client is behind: its flow-control window is
 * full), the chunks that arrive before 'drain' are merged into one pending
 * message (text joined, token ids appended, the finish reason and usage of
 * the last), written at 'drain'. From then on the stream is known to be
 * slow and coalesces adaptively: one message is in flight at a time, and
 * what arrives while it is being written is merged into the next. While the
 * client keeps up again, each write completes before the next chunk arrives
 * and every chunk still goes out alone; while it lags, it gets fewer, larger
 * messages, which costs less CPU per token on both ends (going back to one
 * message per token after each 'drain' would refill its window with
 * one-token messages). A client that never fell behind is never merged for.
 * The first chunk always goes out alone and at once. Upstream reading goes on
 * while chunks merge, up to {@link MAX_PENDING_TOKENS} tokens or
 * {@link MAX_PENDING_TEXT} bytes of text; beyond that the writer pushes back
 * (the upstream read waits until the message in flight is written), so
 * memory stays bounded.
 *
 * Nothing is lost or reordered: a merged chunk carries exactly the text and
 * token ids of the chunks it replaces, and `token_ids.length` says how many
 * tokens it holds.
 */
import { once } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { mergeChunks, type RelayChunk, withModelVersion } from '../../common/chunk-relay.js';
import { COALESCE_BACKLOG } from '../../common/coalescing.js';
import type { GenerateChunk } from '../../common/generated/llmmesh/v1/GenerateChunk.js';

/** Tokens merged into one pending chunk before the upstream read waits for the client. */
export const MAX_PENDING_TOKENS = 4096;
/** Bytes of text merged into one pending chunk before the upstream read waits for the client. */
export const MAX_PENDING_TEXT = 64 * 1024;

/**
 * The call as the writer uses it: `Inference.GenerateStream`'s serializer
 * writes a message given as bytes as is (common/proto.ts).
 */
export type ChunkStream = grpc.ServerWritableStream<unknown, Buffer>;

/** Writes chunks to a server stream; see the module comment. */
export class ChunkWriter {
  private behind = false;
  /** The client fell behind once: from then on, chunks merge while a message is in flight. */
  private slow = false;
  private wake: (() => void) | undefined;
  private drained: Promise<void> | undefined;
  private pending: RelayChunk[] = [];
  private pendingTokens = 0;
  private pendingText = 0;
  private tail: GenerateChunk | undefined;
  /** Messages written (merged chunks count once). */
  messages = 0;

  constructor(private readonly call: ChunkStream) {}

  /**
   * Writes `chunk` (with its model version set to `modelVersion` when one is
   * given), or merges it while the client is behind; returns a promise only
   * when the upstream read must wait.
   */
  write(chunk: RelayChunk, modelVersion?: string): Promise<void> | undefined {
    if (!this.behind) {
      this.messages++;
      const bytes = modelVersion ? withModelVersion(chunk.bytes, modelVersion) : chunk.bytes;
      if (this.slow) {
        this.writeOne(bytes);
        return undefined;
      }
      if (!this.call.write(bytes) && this.call.writableLength >= COALESCE_BACKLOG) this.fallBehind();
      return undefined;
    }
    // Only the first chunk sets a model version, and that one is never merged; keep it anyway.
    const version = modelVersion || chunk.modelVersion;
    if (version) this.tail = { ...this.tail, modelVersion: version };
    this.pending.push(chunk);
    this.pendingTokens += chunk.tokens;
    this.pendingText += chunk.textBytes;
    if (chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED')
      this.tail = { ...this.tail, finishReason: chunk.finishReason, usage: chunk.usage };
    if (this.pendingTokens < MAX_PENDING_TOKENS && this.pendingText < MAX_PENDING_TEXT) return undefined;
    this.drained ??= this.whenWritten();
    return this.drained;
  }

  /** Writes what is pending (the stream ends next: grpc-js sends buffered messages before the status). */
  flush(): void {
    const merged = this.take();
    if (!merged) return;
    this.messages++;
    this.call.write(merged);
  }

  private take(): Buffer | undefined {
    if (this.pending.length === 0 && !this.tail) return undefined;
    // One chunk alone goes out as it came (with a model version only if it set none itself).
    const alone = this.pending.length === 1 ? (this.pending[0] as RelayChunk) : undefined;
    const merged =
      alone && (this.tail?.modelVersion ?? '') === alone.modelVersion
        ? alone.bytes
        : mergeChunks(this.pending, this.tail ?? {});
    this.pending = [];
    this.pendingTokens = 0;
    this.pendingText = 0;
    this.tail = undefined;
    return merged;
  }

  /** Writes one message and merges what arrives until it is written. */
  private writeOne(bytes: Buffer): void {
    this.behind = true;
    this.call.write(bytes, this.written);
  }

  /** Resolves when the message in flight is written; rejects if the client goes away first. */
  private whenWritten(): Promise<void> {
    const call = this.call;
    if (call.cancelled) return Promise.reject(new Error('client went away'));
    return new Promise<void>((resolve, reject) => {
      const onCancel = () => reject(new Error('client went away'));
      call.once('cancelled', onCancel);
      this.wake = () => {
        call.off('cancelled', onCancel);
        resolve();
      };
    });
  }

  /** The message in flight was written: the next one carries everything merged meanwhile. */
  private readonly written = (err?: Error | null): void => {
    const wake = this.wake;
    this.wake = undefined;
    this.drained = undefined;
    // A failed write means the client went away: the request's cancellation ends the stream.
    if (!err) {
      this.behind = false;
      const merged = this.take();
      if (merged) {
        this.messages++;
        this.writeOne(merged);
      }
    }
    wake?.();
  };

  private fallBehind(): void {
    this.behind = true;
    this.slow = true;
    const drained = waitForDrain(this.call).then(() => {
      this.behind = false;
      this.drained = undefined;
      const merged = this.take();
      if (!merged) return;
      this.messages++;
      this.writeOne(merged);
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
