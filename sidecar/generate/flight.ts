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

import { Cancellation, type CancelSignal, type CancelSource } from '../../common/cancellation.js';
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
  readonly signal: CancelSignal;
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
  controller?: CancelSource;
}

/**
 * Creates a flight with no followers yet. A flight is a class instance: its
 * stream writer reads `length`, `at`, `done` and `error` at every chunk, and
 * a class's getters are its prototype's, one function each, which the
 * writer's loop can inline; an object literal's getters are closures of
 * their own per flight (and building such a literal, once per call, showed
 * in profiles of the request path).
 */
export function createFlight(options: FlightOptions = {}): Flight {
  return new RunningFlight(options.retain ?? true, options.controller ?? new Cancellation());
}

/** The position of one follower of a flight that retains nothing. */
interface Position {
  at: number;
}

class RunningFlight implements Flight {
  readonly signal: CancelSignal;
  private readonly retain: boolean;
  private readonly controller: CancelSource;
  // The chunks held: `held[start, end)` are chunks `dropped` and on. A
  // flight that retains all never drops (start stays 0, end is the length).
  // Dropped slots are cleared and, once all are dropped, reused from the
  // start: truncating the array would free its storage and every push
  // allocate it again.
  private readonly held: Array<StreamChunk | undefined> = [];
  private start = 0;
  private end = 0;
  private dropped = 0;
  private latest: StreamChunk | undefined = undefined;
  private finished = false;
  private failure: MeshError | undefined = undefined;
  private following = 0;
  private wake: (() => void) | undefined = undefined;
  private waiting: Promise<void> | undefined = undefined;
  private readonly listeners = new Set<() => void>();
  /** Positions of the followers of a flight that retains nothing. */
  private readonly positions = new Set<Position>();

  constructor(retain: boolean, controller: CancelSource) {
    this.retain = retain;
    this.controller = controller;
    this.signal = controller.signal;
  }

  get chunks(): readonly StreamChunk[] {
    return this.retain
      ? (this.held as StreamChunk[])
      : (this.held.slice(this.start, this.end) as StreamChunk[]);
  }

  get length(): number {
    return this.dropped + this.end - this.start;
  }

  at(i: number): StreamChunk {
    const k = i - this.dropped + this.start;
    const c = k < this.end ? this.held[k] : undefined;
    if (c === undefined) {
      throw new RangeError(`chunk ${i} is not held (${this.dropped} dropped, ${this.end - this.start} held)`);
    }
    return c;
  }

  get last(): StreamChunk | undefined {
    return this.latest;
  }

  get done(): boolean {
    return this.finished;
  }

  get error(): MeshError | undefined {
    return this.failure;
  }

  get followers(): number {
    return this.following;
  }

  changed(): Promise<void> {
    if (this.finished || this.failure) return Promise.resolve();
    this.waiting ??= new Promise<void>((resolve) => {
      this.wake = resolve;
    });
    return this.waiting;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  push(chunk: StreamChunk): void {
    if (this.finished || this.failure) return;
    this.held[this.end++] = chunk;
    this.latest = chunk;
    if (chunk.finishReason !== undefined) this.finished = true;
    this.notify();
  }

  finish(): void {
    if (this.finished || this.failure) return;
    this.finished = true;
    this.notify();
  }

  fail(err: unknown): void {
    if (this.finished || this.failure) return;
    this.failure = MeshError.from(err);
    this.notify();
  }

  join(): FlightFollower {
    if (this.dropped > 0) throw new Error('a flight that dropped chunks cannot be joined');
    this.following++;
    let left = false;
    const position: Position = { at: 0 };
    if (!this.retain) this.positions.add(position);
    return {
      leave: () => {
        if (left) return;
        left = true;
        this.following--;
        if (this.positions.delete(position)) this.drop();
        if (this.following === 0 && !this.finished && !this.failure) this.controller.abort();
      },
      written: (upTo) => {
        if (this.retain || left || upTo <= position.at) return;
        position.at = upTo;
        this.drop();
      },
    };
  }

  private notify(): void {
    for (const l of this.listeners) l();
    const w = this.wake;
    this.wake = undefined;
    this.waiting = undefined;
    w?.();
  }

  /** Drops the chunks every follower has written. */
  private drop(): void {
    let upTo = Number.POSITIVE_INFINITY;
    for (const p of this.positions) if (p.at < upTo) upTo = p.at;
    if (upTo === Number.POSITIVE_INFINITY || upTo <= this.dropped) return;
    const n = Math.min(upTo - this.dropped, this.end - this.start);
    for (let k = this.start; k < this.start + n; k++) this.held[k] = undefined;
    this.start += n;
    this.dropped += n;
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
    }
  }
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
