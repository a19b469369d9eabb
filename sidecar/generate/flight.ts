/**
 * A flight is one engine call whose chunks any number of callers follow:
 * the first caller of a deterministic request starts it, identical requests
 * arriving while it runs join it (coalescing), and each follower replays the
 * chunks so far and then the live ones at its own pace. The engine call is
 * aborted only when every follower has gone (or, for a flight that shares
 * its caller's abort, with that call).
 *
 * A flight that nobody else can join and whose answer goes to no cache
 * retains nothing: each chunk is dropped once every follower has written it,
 * so a long stream's chunks die young instead of living (and being
 * collected) in the old generation.
 */
import { MeshError } from '../../common/errors.js';
import { type AborterLike, type AbortLike, CallAbort } from '../abort.js';
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
  /** Chunks that arrived so far, dropped ones included. */
  readonly length: number;
  /**
   * Chunk `i` (counted from the start of the stream). A flight that retains
   * nothing holds only the chunks some follower has not written yet.
   */
  at(i: number): StreamChunk;
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

/** One follower of a flight. */
export interface FlightFollower {
  /** Stops following; the last follower to leave before the end aborts the flight. */
  leave(): void;
  /** This follower has written the chunks below `upTo` (a flight that retains nothing drops them). */
  written(upTo: number): void;
}

/** A running engine call, fed by its producer. */
export interface Flight extends ChunkSource {
  /** Aborted when the last follower leaves before the end. */
  readonly signal: AbortLike;
  /**
   * Every chunk so far, when the flight retains them (see
   * {@link FlightOptions.retain}); otherwise a copy of those held.
   */
  readonly chunks: readonly StreamChunk[];
  /** The last chunk that arrived. */
  readonly last: StreamChunk | undefined;
  push(chunk: StreamChunk): void;
  finish(): void;
  fail(err: unknown): void;
  /**
   * Adds a follower. A flight that retains nothing can be joined only
   * before it dropped a chunk (throws after).
   */
  join(): FlightFollower;
  readonly followers: number;
}

/** Options of {@link createFlight}. */
export interface FlightOptions {
  /**
   * Keep every chunk (default true): for followers that join later and for
   * the response cache. False drops each chunk once every follower wrote it.
   */
  retain?: boolean;
  /**
   * The abort whose signal is the flight's (default: a new one); a flight
   * with one possible follower can share its caller's.
   */
  controller?: AborterLike;
}

/** Creates a flight with no followers yet. */
export function createFlight(options: FlightOptions = {}): Flight {
  const retain = options.retain ?? true;
  // The chunks held: `chunks[start, end)` are chunks `dropped` and on. A
  // flight that retains all never drops (start stays 0, end is the length).
  // Dropped slots are cleared and, once all are dropped, reused from the
  // start: truncating the array would free its storage and every push
  // allocate it again.
  const chunks: Array<StreamChunk | undefined> = [];
  let start = 0;
  let end = 0;
  let dropped = 0;
  let last: StreamChunk | undefined;
  const controller = options.controller ?? new CallAbort();
  let done = false;
  let error: MeshError | undefined;
  let followers = 0;
  let wake: (() => void) | undefined;
  let waiting: Promise<void> | undefined;
  const listeners = new Set<() => void>();
  /** Positions of the followers of a flight that retains nothing. */
  const positions = new Set<{ at: number }>();

  const notify = () => {
    for (const l of listeners) l();
    const w = wake;
    wake = undefined;
    waiting = undefined;
    w?.();
  };

  /** Drops the chunks every follower has written. */
  const drop = () => {
    let upTo = Number.POSITIVE_INFINITY;
    for (const p of positions) if (p.at < upTo) upTo = p.at;
    if (upTo === Number.POSITIVE_INFINITY || upTo <= dropped) return;
    const n = Math.min(upTo - dropped, end - start);
    for (let k = start; k < start + n; k++) chunks[k] = undefined;
    start += n;
    dropped += n;
    if (start === end) {
      start = 0;
      end = 0;
    }
  };

  return {
    get chunks() {
      return retain ? (chunks as StreamChunk[]) : (chunks.slice(start, end) as StreamChunk[]);
    },
    signal: controller.signal,
    get length() {
      return dropped + end - start;
    },
    at(i) {
      const k = i - dropped + start;
      const c = k < end ? chunks[k] : undefined;
      if (c === undefined) {
        throw new RangeError(`chunk ${i} is not held (${dropped} dropped, ${end - start} held)`);
      }
      return c;
    },
    get last() {
      return last;
    },
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
      chunks[end++] = chunk;
      last = chunk;
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
      if (dropped > 0) throw new Error('a flight that dropped chunks cannot be joined');
      followers++;
      let left = false;
      const position = { at: 0 };
      if (!retain) positions.add(position);
      return {
        leave() {
          if (left) return;
          left = true;
          followers--;
          if (positions.delete(position)) drop();
          if (followers === 0 && !done && !error) controller.abort();
        },
        written(upTo) {
          if (retain || left || upTo <= position.at) return;
          position.at = upTo;
          drop();
        },
      };
    },
  };
}

/** A finished source over known chunks (a cached answer). */
export function completedSource(chunks: readonly StreamChunk[]): ChunkSource {
  return {
    length: chunks.length,
    at: (i) => chunks[i] as StreamChunk,
    done: true,
    error: undefined,
    changed: () => Promise.resolve(),
    onChange: () => () => {},
  };
}
