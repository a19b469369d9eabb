/**
 * The KV cache as vLLM V1 manages it: a fixed pool of blocks of `blockSize`
 * tokens, handed to requests as they grow, with automatic prefix caching. A full
 * block is identified by a hash chained over all tokens up to its end; freed
 * blocks keep their hash and stay findable until they are reused, oldest first
 * (LRU), so a later request with the same prefix skips recomputing it.
 */
import { hashInts } from './hash.js';

/** vLLM's default block size in tokens. */
export const DEFAULT_BLOCK_SIZE = 16;

/** Options of {@link createKvCacheManager}. */
export interface KvCacheOptions {
  /** Number of GPU blocks (vLLM's `num_gpu_blocks`). */
  numBlocks: number;
  /** Tokens per block (default 16). */
  blockSize?: number;
  /** Automatic prefix caching (default true, as in vLLM V1). */
  enablePrefixCaching?: boolean;
}

/** Allocates KV blocks to requests and remembers the content of full ones. */
export interface KvCacheManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly enablePrefixCaching: boolean;
  /**
   * The cached blocks holding the longest prefix of `blockHashes`, at most
   * `maxBlocks` of them. Nothing is reserved: pass the result to {@link allocate}.
   */
  findCachedPrefix(blockHashes: readonly number[], maxBlocks: number): number[];
  /**
   * Grows `table` (a request's block ids, in order) so it holds `numTokens`
   * tokens, first taking `cachedPrefix` (from {@link findCachedPrefix}; only when
   * `table` is empty). Returns false and changes nothing when too few blocks are free.
   */
  allocate(table: number[], numTokens: number, cachedPrefix?: readonly number[]): boolean;
  /** Records that `blockId` now holds the full block identified by `blockHash`. */
  commit(blockId: number, blockHash: number): void;
  /** Releases every block of `table` (last first, so prefixes are evicted last) and empties it. */
  free(table: number[]): void;
  /** Blocks held by requests, as a fraction of all blocks (vLLM's `kv_cache_usage_perc`). */
  usage(): number;
  /** Blocks not held by any request (cached or not). */
  numFreeBlocks(): number;
}

/**
 * Extends `hashes` with the chained hashes of every full block of `tokens` not
 * hashed yet. Block `i` covers tokens `[i*blockSize, (i+1)*blockSize)`.
 */
export function extendBlockHashes(hashes: number[], tokens: readonly number[], blockSize: number): void {
  for (let i = hashes.length; (i + 1) * blockSize <= tokens.length; i++) {
    const parent = i === 0 ? 0 : hashes[i - 1]!;
    hashes.push(hashInts(tokens, parent, i * blockSize, (i + 1) * blockSize));
  }
}

/** Creates a KV cache of `numBlocks` free blocks. */
export function createKvCacheManager(options: KvCacheOptions): KvCacheManager {
  const numBlocks = options.numBlocks;
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const enablePrefixCaching = options.enablePrefixCaching ?? true;
  if (!Number.isInteger(numBlocks) || numBlocks < 1)
    throw new RangeError(`numBlocks must be a positive integer, got ${numBlocks}`);
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);

  const refCounts = new Int32Array(numBlocks);
  const blockHash: (number | undefined)[] = new Array(numBlocks).fill(undefined);
  const cached = new Map<number, number>();
  // Free blocks in eviction order (Map keeps insertion order): first = least recently freed.
  const freeQueue = new Map<number, true>();
  for (let id = 0; id < numBlocks; id++) freeQueue.set(id, true);

  const takeFreeBlock = (): number => {
    const { value: id } = freeQueue.keys().next();
    if (id === undefined) throw new Error('no free KV block');
    freeQueue.delete(id);
    const hash = blockHash[id];
    if (hash !== undefined) {
      if (cached.get(hash) === id) cached.delete(hash);
      blockHash[id] = undefined;
    }
    refCounts[id] = 1;
    return id;
  };

  return {
    numBlocks,
    blockSize,
    enablePrefixCaching,
    findCachedPrefix(blockHashes, maxBlocks) {
      const hit: number[] = [];
      if (!enablePrefixCaching) return hit;
      const limit = Math.min(maxBlocks, blockHashes.length);
      for (let i = 0; i < limit; i++) {
        const id = cached.get(blockHashes[i]!);
        if (id === undefined) break;
        hit.push(id);
      }
      return hit;
    },
    allocate(table, numTokens, cachedPrefix = []) {
      const needed = Math.ceil(numTokens / blockSize) - table.length - cachedPrefix.length;
      // Cached blocks nobody holds sit in the free queue; taking them uses up free blocks too.
      const evictableHits = cachedPrefix.reduce((n, id) => n + (refCounts[id] === 0 ? 1 : 0), 0);
      if (Math.max(0, needed) + evictableHits > freeQueue.size) return false;
      for (const id of cachedPrefix) {
        if (refCounts[id] === 0) freeQueue.delete(id);
        refCounts[id] = (refCounts[id] ?? 0) + 1;
        table.push(id);
      }
      for (let i = 0; i < needed; i++) table.push(takeFreeBlock());
      return true;
    },
    commit(blockId, hash) {
      if (!enablePrefixCaching || blockHash[blockId] !== undefined) return;
      blockHash[blockId] = hash;
      if (!cached.has(hash)) cached.set(hash, blockId);
    },
    free(table) {
      for (let i = table.length - 1; i >= 0; i--) {
        const id = table[i]!;
        const refs = (refCounts[id] ?? 0) - 1;
        refCounts[id] = refs;
        if (refs === 0) freeQueue.set(id, true);
      }
      table.length = 0;
    },
    usage: () => (numBlocks - freeQueue.size) / numBlocks,
    numFreeBlocks: () => freeQueue.size,
  };
}
