// Original file: proto/llmmesh/v1/engine.proto

import type { Long } from '@grpc/proto-loader';

/**
 * PrefixIndexUpdate carries the pod's prefix index (hashes of prompt blocks it
 * served recently, mirroring the engine's prefix cache) as deltas, so every
 * router replica holds the same picture without scraping.
 */
export interface PrefixIndexUpdate {
  /**
   * This update replaces the watcher's copy instead of amending it (the first
   * report of a stream carries the whole index with reset set).
   */
  'reset'?: (boolean);
  /**
   * Chained block hashes added (see common/prefix-hash.ts), below 2^53.
   */
  'added'?: (number | string | Long)[];
  /**
   * Chained block hashes evicted.
   */
  'removed'?: (number | string | Long)[];
  /**
   * Characters of canonical prompt text per block.
   */
  'blockChars'?: (number);
}

/**
 * PrefixIndexUpdate carries the pod's prefix index (hashes of prompt blocks it
 * served recently, mirroring the engine's prefix cache) as deltas, so every
 * router replica holds the same picture without scraping.
 */
export interface PrefixIndexUpdate__Output {
  /**
   * This update replaces the watcher's copy instead of amending it (the first
   * report of a stream carries the whole index with reset set).
   */
  'reset': (boolean);
  /**
   * Chained block hashes added (see common/prefix-hash.ts), below 2^53.
   */
  'added': (number)[];
  /**
   * Chained block hashes evicted.
   */
  'removed': (number)[];
  /**
   * Characters of canonical prompt text per block.
   */
  'blockChars': (number);
}
