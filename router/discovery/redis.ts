/**
 * Redis discovery: sidecars register under `prefix + address` with a TTL
 * (common/discovery-keys.ts); the router lists the keys with SCAN every
 * interval. When Redis is unreachable the last list stays (DESIGN §8: losing
 * Redis degrades, it never fails a request).
 *
 * A Redis that restarts empty (its run id changes) has lost registrations
 * that are still alive: their sidecars re-register at the next heartbeat.
 * Until then each missing endpoint is kept for what was left of its TTL, so a
 * router that lists in between never sees an empty pool. On the same server a
 * missing key means what it says (deleted on shutdown, or expired) and the
 * endpoint goes at once.
 */
import { parseRegistration } from '../../common/discovery-keys.js';
import { createRedisConnection } from '../../common/redis.js';
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
  /** Remaining TTL in ms (-1 without one, -2 when the key is gone). */
  pttl(key: string): Promise<number>;
  /** `INFO server` text; its `run_id` tells a restarted server from the same one. */
  info(section: 'server'): Promise<string>;
  quit(): Promise<unknown>;
}

type RedisConfig = Extract<DiscoveryConfig, { kind: 'redis' }>;

/** A Redis client that fails fast while disconnected instead of queueing commands. */
export function createRedisClient(url: string): RedisLike {
  return createRedisConnection({ url }) as unknown as RedisLike;
}

/** Escapes glob characters of a SCAN pattern. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** Starts polling. The first listing runs at once. */
export function createRedisDiscovery(config: RedisConfig, deps: DiscoveryDeps): Discovery {
  const redis = (deps.redis ?? createRedisClient)(config.url);
  const now = deps.now ?? Date.now;
  // Endpoints of the last listing and when their registrations expire.
  let known = new Map<string, number>();
  let runId: string | undefined;
  // Endpoints kept through a restart that have not re-registered yet.
  let carriedOver = new Set<string>();

  const scan = async (): Promise<Map<string, number>> => {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${globEscape(config.prefix)}*`, 'COUNT', 500);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    const listed = new Map<string, number>();
    if (keys.length === 0) return listed;
    const at = now();
    const [values, ttls] = await Promise.all([redis.mget(keys), Promise.all(keys.map((k) => redis.pttl(k)))]);
    values.forEach((v, i) => {
      const reg = parseRegistration(v);
      const ttl = ttls[i] ?? -2;
      if (!reg || ttl === -2) return;
      const expires = ttl < 0 ? Number.POSITIVE_INFINITY : at + ttl;
      listed.set(reg.address, Math.max(expires, listed.get(reg.address) ?? 0));
    });
    return listed;
  };

  const list = async (): Promise<string[]> => {
    const info = await redis.info('server');
    const id = /^run_id:(\S+)/m.exec(info)?.[1];
    const listed = await scan();
    const restarted = runId !== undefined && id !== undefined && id !== runId;
    runId = id ?? runId;
    const at = now();
    const next = new Map(listed);
    const carried: string[] = [];
    for (const [address, expires] of known) {
      if (next.has(address)) continue;
      // Kept only while a restart explains the gap, and only for the TTL it had left.
      if ((restarted || carriedOver.has(address)) && expires > at) {
        next.set(address, expires);
        carried.push(address);
      }
    }
    if (restarted && carried.length > 0) {
      deps.logger.warn(
        'Redis discovery: Redis restarted without registrations; keeping them until they return or expire',
        {
          url: config.url,
          missing: carried,
        },
      );
    }
    carriedOver = new Set(carried);
    known = next;
    return [...next.keys()].sort();
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
