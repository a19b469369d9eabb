/**
 * A flight is one engine call whose chunks any number of callers follow:
 * the first caller of a deterministic request starts it, identical requests
 * arriving while it runs join it (coalescing), and each follower replays the
 * chunks so far and then the live ones at its own pace. The engine call is
 * aborted only when every follower has gone.
 */
import { MeshError } from '../../common/errors.js';
import type { EngineUsage } from '../openai.js';

/** One chunk as the engine produced it. */
export interface StreamChunk {
  text: string;
  /** Token ids of `text`, when the engine gave them. */
  tokenIds?: number[];
  /** Set on the last chunk only. */
  finishReason?: string;
  /** Set on the last chunk only, when the engine reported usage. */
  usage?: EngineUsage;
}

/** Chunks that may still be arriving. */
export interface ChunkSource {
  readonly chunks: readonly StreamChunk[];
  /** The last chunk has arrived. */
  readonly done: boolean;
  /** The call failed; no more chunks will arrive. */
  readonly error: MeshError | undefined;
  /** Resolves at the next chunk, end or failure. */
  changed(): Promise<void>;
  /**
   * Calls `listener` at every chunk, end or failure from now on, in the call
   * that brought it, until the returned function is called. A listener must
   * not throw.
   */
  onChange(listener: () => void): () => void;
}

/** A running engine call, fed by its producer. */
export interface Flight extends ChunkSource {
  /** Aborted when the last follower leaves before the end. */
  readonly signal: AbortSignal;
  push(chunk: StreamChunk): void;
  finish(): void;
  fail(err: unknown): void;
  /** Adds a follower; returns the function it calls when it stops following. */
  join(): () => void;
  readonly followers: number;
}

/** Creates a flight with no followers yet. */
export function createFlight(): Flight {
  const chunks: StreamChunk[] = [];
  const controller = new AbortController();
  let done = false;
  let error: MeshError | undefined;
  let followers = 0;
  let wake: (() => void) | undefined;
  let waiting: Promise<void> | undefined;
  const listeners = new Set<() => void>();

  const notify = () => {
    for (const l of listeners) l();
    const w = wake;
    wake = undefined;
    waiting = undefined;
    w?.();
  };

  return {
    chunks,
    signal: controller.signal,
    get done() {
      return done;
    },
    get error() {
      return error;
    },
    get followers() {
      return followers;
    },
    changed() {
      if (done || error) return Promise.resolve();
      waiting ??= new Promise<void>((resolve) => {
        wake = resolve;
      });
      return waiting;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    push(chunk) {
      if (done || error) return;
      chunks.push(chunk);
      if (chunk.finishReason !== undefined) done = true;
      notify();
    },
    finish() {
      if (done || error) return;
      done = true;
      notify();
    },
    fail(err) {
      if (done || error) return;
      error = MeshError.from(err);
      notify();
    },
    join() {
      followers++;
      let left = false;
      return () => {
        if (left) return;
        left = true;
        followers--;
        if (followers === 0 && !done && !error) controller.abort();
      };
    },
  };
}

/** A finished source over known chunks (a cached answer). */
export function completedSource(chunks: readonly StreamChunk[]): ChunkSource {
  return { chunks, done: true, error: undefined, changed: () => Promise.resolve(), onChange: () => () => {} };
}
