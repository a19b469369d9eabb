/**
 * The response cache of deterministic requests: L1 in process (`lru-cache`,
 * bounded in bytes, with TTL) and L2 in Redis (TTL), shared by every pod of
 * the same model version. L2 is optional and never in the way: a lookup is
 * bounded by a short timeout, writes are fire-and-forget, and after repeated
 * failures L2 is skipped for a while (then tried again), so a slow or dead
 * Redis degrades the cache to L1 without failing or slowing requests.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../../common/log.js';
import { DEFAULT_REDIS_TIMEOUT_MS } from '../../common/redis.js';

/** Default lifetime of a cached response. */
export const DEFAULT_CACHE_TTL_MS = 10 * 60_000;
/** Default L1 bound. */
export const DEFAULT_L1_MAX_BYTES = 64 * 1024 * 1024;
/** Default Redis key prefix of the response cache. */
export const DEFAULT_CACHE_KEY_PREFIX = 'llmmesh:cache:';
/** Consecutive L2 failures after which L2 is skipped for {@link L2_BACKOFF_MS}. */
export const L2_FAILURES_BEFORE_BACKOFF = 3;
/** How long L2 is skipped after repeated failures before it is tried again. */
export const L2_BACKOFF_MS = 1_000;
// Bookkeeping bytes charged per entry on top of its text.
const ENTRY_OVERHEAD_BYTES = 256;

/** A complete engine answer, replayable chunk by chunk. */
export interface CachedResponse {
  /** Text of each chunk, in order (the last may be empty). */
  texts: string[];
  /** The engine's finish reason (`stop`, `length`). */
  finishReason: string;
  /** Usage the engine reported when it computed the answer. */
  usage: { promptTokens: number; completionTokens: number; cachedTokens: number };
  /** When it expires, on the cache's clock (ms). */
  expiresAt: number;
}

/** Which tier answered. */
export type CacheTier = 'l1' | 'l2';

/** The state of L2. */
export type L2State = 'off' | 'up' | 'down';

/** The two-tier cache. */
export interface ResponseCache {
  /** L1 lookup (synchronous). */
  getL1(key: string): CachedResponse | undefined;
  /**
   * L2 lookup; never rejects and never waits longer than the Redis timeout.
   * A hit is copied into L1.
   */
  getL2(key: string): Promise<CachedResponse | undefined>;
  /** Stores an answer in L1 at once and in L2 in the background. */
  store(key: string, value: Omit<CachedResponse, 'expiresAt'>): void;
  readonly l2State: L2State;
  readonly l1Entries: number;
  readonly l1Bytes: number;
  /**
   * Emits `stored` ({ key, tier }) after each successful store, and
   * `l2-error` ({ op, err }) when an L2 command fails or times out.
   */
  readonly events: EventEmitter;
  /** Drops L1 (tests, shutdown). */
  clear(): void;
}

/** Options of {@link createResponseCache}. */
export interface ResponseCacheOptions {
  /** Default {@link DEFAULT_CACHE_TTL_MS}. */
  ttlMs?: number;
  /** Default {@link DEFAULT_L1_MAX_BYTES}; 0 disables L1. */
  l1MaxBytes?: number;
  /** L2; absent means L1 only. */
  redis?: Redis;
  /** Redis key prefix; pods that share L2 must agree (default {@link DEFAULT_CACHE_KEY_PREFIX}). */
  keyPrefix?: string;
  /** Bound of an L2 lookup (default {@link DEFAULT_REDIS_TIMEOUT_MS}). */
  l2TimeoutMs?: number;
  /** Clock for TTLs and expiry stamps (default `Date.now`). */
  now?: () => number;
  logger: Logger;
}

/** Creates the cache. */
export function createResponseCache(options: ResponseCacheOptions): ResponseCache {
  const now = options.now ?? Date.now;
  const ttlMs = options.ttlMs ?? DEFAULT_CACHE_TTL_MS;
  const l1MaxBytes = options.l1MaxBytes ?? DEFAULT_L1_MAX_BYTES;
  const keyPrefix = options.keyPrefix ?? DEFAULT_CACHE_KEY_PREFIX;
  const l2TimeoutMs = options.l2TimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS;
  const redis = options.redis;
  const events = new EventEmitter();
  events.setMaxListeners(0);

  const l1 =
    l1MaxBytes > 0
      ? new LRUCache<string, { value: CachedResponse; bytes: number }>({
          maxSize: l1MaxBytes,
          sizeCalculation: (e) => e.bytes,
          ttl: ttlMs,
          // The clock is read on every access so an injected clock is exact.
          ttlResolution: 0,
          perf: { now },
          allowStale: false,
          updateAgeOnGet: false,
        })
      : undefined;

  let failures = 0;
  let skipUntil = 0;
  const l2Usable = () => redis !== undefined && redis.status === 'ready' && now() >= skipUntil;
  const l2Failed = (op: string, err: unknown) => {
    failures++;
    if (failures >= L2_FAILURES_BEFORE_BACKOFF) skipUntil = now() + L2_BACKOFF_MS;
    events.emit('l2-error', { op, err });
  };
  const l2Worked = () => {
    failures = 0;
    skipUntil = 0;
  };

  // A fresh connection ends any backoff: the failures were the old connection's.
  redis?.on('ready', l2Worked);

  const putL1 = (key: string, value: CachedResponse, bytes: number) => {
    const ttl = value.expiresAt - now();
    if (!l1 || ttl <= 0) return false;
    l1.set(key, { value, bytes: bytes + ENTRY_OVERHEAD_BYTES }, { ttl });
    return l1.has(key);
  };

  return {
    events,
    get l2State(): L2State {
      if (!redis) return 'off';
      return redis.status === 'ready' ? 'up' : 'down';
    },
    get l1Entries() {
      return l1?.size ?? 0;
    },
    get l1Bytes() {
      return l1?.calculatedSize ?? 0;
    },
    getL1(key) {
      return l1?.get(key)?.value;
    },
    async getL2(key) {
      if (!redis || !l2Usable()) return undefined;
      let timer: NodeJS.Timeout | undefined;
      try {
        const raw = await Promise.race([
          redis.get(keyPrefix + key),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`redis GET timed out after ${l2TimeoutMs} ms`)),
              l2TimeoutMs,
            );
          }),
        ]);
        l2Worked();
        if (raw === null) return undefined;
        const value = decodeEntry(raw);
        if (!value || value.expiresAt <= now()) return undefined;
        putL1(key, value, raw.length);
        return value;
      } catch (err) {
        l2Failed('get', err);
        return undefined;
      } finally {
        clearTimeout(timer);
      }
    },
    store(key, answer) {
      const value: CachedResponse = { ...answer, expiresAt: now() + ttlMs };
      const raw = encodeEntry(value);
      if (putL1(key, value, raw.length)) events.emit('stored', { key, tier: 'l1' });
      if (!redis || !l2Usable()) return;
      redis.set(keyPrefix + key, raw, 'PX', ttlMs).then(
        () => {
          l2Worked();
          events.emit('stored', { key, tier: 'l2' });
        },
        (err: unknown) => l2Failed('set', err),
      );
    },
    clear() {
      l1?.clear();
    },
  };
}

/** The L2 wire form: compact JSON with a format version. */
export function encodeEntry(v: CachedResponse): string {
  return JSON.stringify({
    v: 1,
    t: v.texts,
    f: v.finishReason,
    u: [v.usage.promptTokens, v.usage.completionTokens, v.usage.cachedTokens],
    e: v.expiresAt,
  });
}

/** Parses the L2 wire form; undefined for anything else (ignored as a miss). */
export function decodeEntry(raw: string): CachedResponse | undefined {
  try {
    const o = JSON.parse(raw) as { v?: unknown; t?: unknown; f?: unknown; u?: unknown; e?: unknown };
    if (o.v !== 1 || !Array.isArray(o.t) || typeof o.f !== 'string' || typeof o.e !== 'number')
      return undefined;
    if (!o.t.every((t) => typeof t === 'string')) return undefined;
    const u = Array.isArray(o.u) ? o.u : [];
    const n = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : 0);
    return {
      texts: o.t as string[],
      finishReason: o.f,
      usage: { promptTokens: n(u[0]), completionTokens: n(u[1]), cachedTokens: n(u[2]) },
      expiresAt: o.e,
    };
  } catch {
    return undefined;
  }
}
