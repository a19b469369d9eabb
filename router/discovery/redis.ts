/**
 * Redis discovery: sidecars register under `prefix + address` with a TTL
 * (common/discovery-keys.ts); the router lists the keys with SCAN every
 * interval. When Redis is unreachable the last list stays (DESIGN §8: losing
 * Redis degrades, it never fails a request).
 */
import { Redis } from 'ioredis';
import { parseRegistration } from '../../common/discovery-keys.js';
import type { DiscoveryConfig } from '../config/schema.js';
import type { Discovery, DiscoveryDeps } from './discovery.js';
import { startPolling } from './poll.js';

/** The Redis commands discovery uses (ioredis satisfies it; tests may fake it). */
export interface RedisLike {
  scan(
    cursor: string,
    matchOption: 'MATCH',
    pattern: string,
    countOption: 'COUNT',
    count: number,
  ): Promise<[string, string[]]>;
  mget(keys: string[]): Promise<Array<string | null>>;
  quit(): Promise<unknown>;
}

type RedisConfig = Extract<DiscoveryConfig, { kind: 'redis' }>;

/** A Redis client that fails fast while disconnected instead of queueing commands. */
export function createRedisClient(url: string): RedisLike {
  const client = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(5_000, 100 * 2 ** Math.min(times, 6)),
  });
  // Errors surface through failed commands; without a listener ioredis logs them loudly.
  client.on('error', () => {});
  return client as unknown as RedisLike;
}

/** Escapes glob characters of a SCAN pattern. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** Starts polling. The first listing runs at once. */
export function createRedisDiscovery(config: RedisConfig, deps: DiscoveryDeps): Discovery {
  const redis = (deps.redis ?? createRedisClient)(config.url);
  const list = async (): Promise<string[]> => {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${globEscape(config.prefix)}*`, 'COUNT', 500);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    if (keys.length === 0) return [];
    const values = await redis.mget(keys);
    const out = new Set<string>();
    for (const v of values) {
      const reg = parseRegistration(v);
      if (reg) out.add(reg.address);
    }
    return [...out].sort();
  };

  const stop = startPolling(
    { label: 'Redis discovery', fields: { url: config.url }, intervalMs: config.interval_ms, list },
    deps,
  );
  return {
    kind: 'redis',
    async close() {
      stop();
      await redis.quit().catch(() => {});
    },
  };
}
