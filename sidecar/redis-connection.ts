/**
 * The sidecar's Redis connection (response cache L2 and discovery
 * registration). Redis is optional and must never hold a request up: commands
 * fail at once while disconnected (no offline queue, no retries), each command
 * is bounded by a short timeout, and the client reconnects in the background
 * with capped backoff.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../common/log.js';

/** Default bound of one Redis command on the request path. */
export const DEFAULT_REDIS_TIMEOUT_MS = 50;
/** Longest wait between reconnect attempts. */
export const MAX_REDIS_RECONNECT_MS = 2_000;

/** Options of {@link createRedisConnection}. */
export interface RedisConnectionOptions {
  /** `redis://[:password@]host:port[/db]`. */
  url: string;
  /** Bound of every command (default {@link DEFAULT_REDIS_TIMEOUT_MS}). */
  commandTimeoutMs?: number;
  logger: Logger;
  /** Called when the connection becomes usable (`true`) or is lost (`false`). */
  onState?(up: boolean): void;
}

/** Connects (in the background) and returns the client at once. */
export function createRedisConnection(options: RedisConnectionOptions): Redis {
  const log = options.logger;
  const redis = new Redis(options.url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? DEFAULT_REDIS_TIMEOUT_MS,
    connectTimeout: 1_000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), MAX_REDIS_RECONNECT_MS),
    lazyConnect: false,
  });
  let up = false;
  let lastError = '';
  redis.on('ready', () => {
    up = true;
    lastError = '';
    log.info('redis connected', { redis: redactUrl(options.url) });
    options.onState?.(true);
  });
  redis.on('close', () => {
    if (!up) return;
    up = false;
    log.warn('redis connection lost; serving from memory until it returns', {
      redis: redactUrl(options.url),
    });
    options.onState?.(false);
  });
  redis.on('error', (err: Error) => {
    // Reconnect attempts repeat the same error; log each distinct one once.
    if (err.message === lastError) return;
    lastError = err.message;
    log.debug('redis error', { redis: redactUrl(options.url), err: err.message });
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
