/**
 * The one way llmmesh connects to Redis (response cache L2, discovery
 * registration and lookup, shared rate limits). Redis is optional and must
 * never hold a request up, so the connection fails fast: commands fail at
 * once while disconnected (no offline queue, no retries), each command may be
 * bounded by a timeout, and the client reconnects in the background with
 * capped exponential backoff. Errors are logged once per distinct message,
 * never thrown as unhandled `error` events.
 */
import { Redis } from 'ioredis';
import type { Logger } from './log.js';

/** Bound of one Redis command on a request path (the sidecar's response cache). */
export const DEFAULT_REDIS_TIMEOUT_MS = 50;
/** Longest wait between reconnect attempts. */
export const MAX_REDIS_RECONNECT_MS = 2_000;
/** Bound of the TCP connect. */
export const REDIS_CONNECT_TIMEOUT_MS = 1_000;

/** Options of {@link createRedisConnection}. */
export interface RedisConnectionOptions {
  /** `redis://[:password@]host:port[/db]`. */
  url: string;
  /** Bound of every command; none when absent (the caller bounds its own calls). */
  commandTimeoutMs?: number;
  /** Where connection changes are logged (default: nowhere). */
  logger?: Logger;
  /** Called when the connection becomes usable (`true`) or is lost (`false`). */
  onState?(up: boolean): void;
}

/** The delay before reconnect attempt `times` (1-based): 100 ms doubling, capped. */
export function reconnectDelayMs(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), MAX_REDIS_RECONNECT_MS);
}

/** Connects (in the background) and returns the client at once. */
export function createRedisConnection(options: RedisConnectionOptions): Redis {
  const log = options.logger;
  const redis = new Redis(options.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    ...(options.commandTimeoutMs !== undefined ? { commandTimeout: options.commandTimeoutMs } : {}),
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    retryStrategy: reconnectDelayMs,
    lazyConnect: false,
  });
  let up = false;
  let lastError = '';
  redis.on('ready', () => {
    up = true;
    lastError = '';
    log?.info('redis connected', { redis: redactUrl(options.url) });
    options.onState?.(true);
  });
  redis.on('close', () => {
    if (!up) return;
    up = false;
    log?.warn('redis connection lost; serving from memory until it returns', {
      redis: redactUrl(options.url),
    });
    options.onState?.(false);
  });
  redis.on('error', (err: Error) => {
    // Reconnect attempts repeat the same error; log each distinct one once.
    if (err.message === lastError) return;
    lastError = err.message;
    log?.debug('redis error', { redis: redactUrl(options.url), err: err.message });
  });
  return redis;
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}
