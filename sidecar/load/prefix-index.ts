/**
 * The pod's prefix index: the chained block hashes (`common/prefix-hash.ts`)
 * of the prompts this pod served recently, so routers can send a prompt to
 * the pod whose engine most likely still holds its prefix in the KV cache.
 *
 * It mirrors vLLM's automatic prefix caching approximately:
 *
 * - **Units.** The engine hashes blocks of `block_size` tokens; the index
 *   hashes blocks of `DEFAULT_BLOCK_CHARS` characters of the canonical prompt
 *   (routers have no tokenizer). Capacity converts with a fixed ratio,
 *   `num_gpu_blocks × block_size × charsPerToken / blockChars`, with
 *   `charsPerToken` = 4 (the usual figure for English text and BPE
 *   tokenizers). Text that tokenizes denser or sparser makes the index
 *   proportionally too large or too small.
 * - **Eviction.** Least recently used, like vLLM's free-block queue. A
 *   prompt's blocks are touched last-first, so its prefix is evicted last (a
 *   chain is only useful from its start).
 * - **What it cannot see.** Blocks held by running sequences are not
 *   evictable in the engine, and other traffic to the engine (not through
 *   this sidecar) takes blocks too; both make the engine evict earlier than
 *   the index. Measured error: see `sidecar/README.md`.
 *
 * Watchers (routers) receive it as deltas: each watcher has a tracker that
 * accumulates the net change since the last update it was sent, so a watcher
 * that skips reports (slow stream) never loses a change.
 */
import { DEFAULT_BLOCK_CHARS } from '../../common/prefix-hash.js';

/** Characters per token assumed when converting the engine's KV capacity into index blocks. */
export const DEFAULT_CHARS_PER_TOKEN = 4;
/** Index capacity (blocks) before the engine's KV capacity is known: ≈ 1 M characters. */
export const DEFAULT_PREFIX_INDEX_BLOCKS = 16_384;

/** One update for one watcher, as carried by `LoadReport.prefix_index`. */
export interface PrefixIndexDelta {
  /** The update replaces the watcher's copy: `added` is the whole index. */
  reset: boolean;
  added: number[];
  removed: number[];
  blockChars: number;
}

/** A watcher's view of the index: accumulates what the watcher has not been sent yet. */
export interface PrefixIndexTracker {
  /**
   * The update to send now, or undefined when the watcher is up to date. The
   * first update is a reset carrying the whole index; so is any update whose
   * backlog grew larger than the index itself.
   */
  take(): PrefixIndexDelta | undefined;
  /** Net changes waiting to be sent. */
  readonly pending: number;
  /** Stops tracking (the watcher went away). */
  close(): void;
}

/** The prefix index of one pod. */
export interface PrefixIndex {
  readonly blockChars: number;
  /** Blocks held now. */
  readonly size: number;
  /** Blocks held at most. */
  readonly capacity: number;
  /** Changes the bound (evicting least recently used blocks when it shrinks). */
  setCapacity(blocks: number): void;
  /**
   * Records that the engine computed the blocks of `hashes` (one prompt's
   * chain, in order): new blocks are added, known ones become most recently
   * used, and blocks beyond the capacity are evicted.
   */
  record(hashes: readonly number[]): void;
  /** How many leading blocks of `hashes` the index holds (what a router's lookup computes). */
  matchedBlocks(hashes: readonly number[]): number;
  has(hash: number): boolean;
  /** Every hash held, least recently used first. */
  snapshot(): number[];
  /** Starts tracking changes for one watcher. */
  track(): PrefixIndexTracker;
  /** Emitted after a `record` that changed the set of hashes. */
  onChange(listener: () => void): void;
}

/** Options of {@link createPrefixIndex}. */
export interface PrefixIndexOptions {
  /** Blocks held at most (default {@link DEFAULT_PREFIX_INDEX_BLOCKS}). */
  capacity?: number;
  /** Characters per block; must match the hashes recorded (default `DEFAULT_BLOCK_CHARS`). */
  blockChars?: number;
}

/**
 * Index blocks that correspond to an engine KV cache of `numGpuBlocks` ×
 * `blockSize` tokens, assuming `charsPerToken` characters per token.
 */
export function prefixIndexCapacity(
  numGpuBlocks: number,
  blockSize: number,
  charsPerToken = DEFAULT_CHARS_PER_TOKEN,
  blockChars = DEFAULT_BLOCK_CHARS,
): number {
  return Math.max(1, Math.floor((numGpuBlocks * blockSize * charsPerToken) / blockChars));
}

/** Creates an empty index. */
export function createPrefixIndex(options: PrefixIndexOptions = {}): PrefixIndex {
  const blockChars = options.blockChars ?? DEFAULT_BLOCK_CHARS;
  let capacity = Math.max(1, Math.floor(options.capacity ?? DEFAULT_PREFIX_INDEX_BLOCKS));
  // Insertion order is recency order: the first element is the least recently used.
  const blocks = new Set<number>();
  const trackers = new Set<TrackerState>();
  const listeners: Array<() => void> = [];

  interface TrackerState {
    needsReset: boolean;
    // Net change per hash since the last update sent: true = added, false = removed.
    changes: Map<number, boolean>;
  }

  const note = (hash: number, added: boolean) => {
    for (const t of trackers) {
      if (t.needsReset) continue;
      const prior = t.changes.get(hash);
      // An add cancels a pending removal (the watcher still has it) and vice versa.
      if (prior !== undefined && prior !== added) t.changes.delete(hash);
      else t.changes.set(hash, added);
      // A backlog far beyond the index is cheaper to replace than to replay.
      if (t.changes.size > 2 * capacity + 1024) {
        t.needsReset = true;
        t.changes.clear();
      }
    }
  };

  const evict = (): boolean => {
    let changed = false;
    while (blocks.size > capacity) {
      const oldest = blocks.values().next().value as number;
      blocks.delete(oldest);
      note(oldest, false);
      changed = true;
    }
    return changed;
  };

  const emit = () => {
    for (const l of listeners) l();
  };

  return {
    blockChars,
    get size() {
      return blocks.size;
    },
    get capacity() {
      return capacity;
    },
    setCapacity(n) {
      const next = Math.max(1, Math.floor(n));
      if (next === capacity) return;
      capacity = next;
      if (evict()) emit();
    },
    record(hashes) {
      let changed = false;
      // Last block first, so the chain's start ends up most recently used.
      for (let i = hashes.length - 1; i >= 0; i--) {
        const h = hashes[i] as number;
        if (blocks.delete(h)) {
          blocks.add(h);
        } else {
          blocks.add(h);
          note(h, true);
          changed = true;
        }
      }
      if (evict()) changed = true;
      if (changed) emit();
    },
    matchedBlocks(hashes) {
      let n = 0;
      while (n < hashes.length && blocks.has(hashes[n] as number)) n++;
      return n;
    },
    has: (hash) => blocks.has(hash),
    snapshot: () => [...blocks],
    track() {
      const state: TrackerState = { needsReset: true, changes: new Map() };
      trackers.add(state);
      return {
        get pending() {
          return state.needsReset ? blocks.size + 1 : state.changes.size;
        },
        take() {
          if (state.needsReset || state.changes.size > blocks.size) {
            state.needsReset = false;
            state.changes.clear();
            return { reset: true, added: [...blocks], removed: [], blockChars };
          }
          if (state.changes.size === 0) return undefined;
          const added: number[] = [];
          const removed: number[] = [];
          for (const [h, isAdd] of state.changes) (isAdd ? added : removed).push(h);
          state.changes.clear();
          return { reset: false, added, removed, blockChars };
        },
        close() {
          trackers.delete(state);
        },
      };
    },
    onChange(listener) {
      listeners.push(listener);
    },
  };
}
