/**
 * The router's copy of one endpoint's prefix index: the chained block hashes
 * (common/prefix-hash.ts) of prompts the pod served recently, kept current by
 * applying the `PrefixIndexUpdate` deltas of its load reports in order.
 */
import type { PrefixIndexUpdate__Output } from '../../common/generated/llmmesh/v1/PrefixIndexUpdate.js';

/** What scheduling reads of an endpoint's prefix index. */
export interface PrefixIndexView {
  /** Characters per block the sidecar hashes with; 0 until the first update. */
  readonly blockChars: number;
  readonly size: number;
  has(hash: number): boolean;
  /**
   * Number of leading blocks of `hashes` held, i.e. the longest cached prefix
   * in blocks (a chain: block i counts only when blocks 0..i-1 do).
   */
  matchLength(hashes: readonly number[]): number;
}

/** A mutable prefix index fed by load reports. */
export interface PrefixIndex extends PrefixIndexView {
  /** Applies one update: `reset` replaces the copy, otherwise adds and removes. */
  apply(update: PrefixIndexUpdate__Output): void;
  /** Forgets everything (the load stream was lost: later deltas are relative to a new reset). */
  clear(): void;
}

/**
 * Hashes are kept by their low 30 bits: small integers are what V8's Set
 * hashes fastest (a 53-bit number is a heap object), and a false match needs
 * a collision on every block of the chain, so the error is negligible.
 */
const key = (h: number) => h & 0x3fffffff;

/**
 * One class for every endpoint's index: scheduling reads each candidate's
 * index per decision, and instances of one class share a shape where object
 * literals with their own getter closures would not (a megamorphic read).
 */
class SetPrefixIndex implements PrefixIndex {
  #hashes = new Set<number>();
  #blockChars = 0;

  get blockChars(): number {
    return this.#blockChars;
  }

  get size(): number {
    return this.#hashes.size;
  }

  has(h: number): boolean {
    return this.#hashes.has(key(h));
  }

  matchLength(list: readonly number[]): number {
    const hashes = this.#hashes;
    let n = 0;
    while (n < list.length && hashes.has(key(list[n] as number))) n++;
    return n;
  }

  apply(update: PrefixIndexUpdate__Output): void {
    if (update.reset) this.#hashes = new Set();
    if (update.blockChars) {
      // A new block size makes every old hash meaningless.
      if (this.#blockChars && update.blockChars !== this.#blockChars && !update.reset)
        this.#hashes = new Set();
      this.#blockChars = update.blockChars;
    }
    // Removals first: an update may evict a block and re-add it (re-cached).
    for (const h of update.removed) this.#hashes.delete(key(Number(h)));
    for (const h of update.added) this.#hashes.add(key(Number(h)));
  }

  clear(): void {
    this.#hashes = new Set();
    this.#blockChars = 0;
  }
}

/** Creates an empty index. */
export function createPrefixIndex(): PrefixIndex {
  return new SetPrefixIndex();
}
