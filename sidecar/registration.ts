/**
 * Registration for `redis` discovery (`common/discovery-keys.ts`): one key per
 * sidecar holding its address, model and version, written with a short TTL and
 * refreshed by heartbeat, deleted on clean shutdown. A sidecar that dies
 * without deregistering disappears when the TTL runs out; a Redis outage only
 * delays registration until Redis is back.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import {
  DEFAULT_DISCOVERY_PREFIX,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_REGISTRATION_TTL_MS,
  type EndpointRegistration,
  registrationKey,
} from '../common/discovery-keys.js';
import type { Logger } from '../common/log.js';

/** A sidecar's registration. */
export interface Registration {
  /** The Redis key. */
  readonly key: string;
  /**
   * Writes the key now (the heartbeat does this periodically; call it also when
   * Redis reconnects or the model becomes known); resolves true when written.
   */
  beat(): Promise<boolean>;
  /** Stops the heartbeat and deletes the key. */
  stop(): Promise<void>;
  /** Emits `registered` (EndpointRegistration) after each successful write. */
  readonly events: EventEmitter;
}

/** Options of {@link createRegistration}. */
export interface RegistrationOptions {
  redis: Redis;
  /** `host:port` routers dial. */
  address: string;
  /** Model and version served; nothing is written while the model is unknown. */
  identity(): { model: string; version: string };
  /** Default {@link DEFAULT_DISCOVERY_PREFIX}. */
  prefix?: string;
  /** Default {@link DEFAULT_REGISTRATION_TTL_MS}. */
  ttlMs?: number;
  /** Default {@link DEFAULT_HEARTBEAT_MS}. */
  heartbeatMs?: number;
  now?: () => number;
  logger: Logger;
}

/** Creates the registration and starts its heartbeat (the first beat runs at once). */
export function createRegistration(options: RegistrationOptions): Registration {
  const now = options.now ?? Date.now;
  const ttlMs = options.ttlMs ?? DEFAULT_REGISTRATION_TTL_MS;
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const key = registrationKey(options.address, options.prefix ?? DEFAULT_DISCOVERY_PREFIX);
  const events = new EventEmitter();
  let stopped = false;
  let failing = false;

  const beat = async (): Promise<boolean> => {
    if (stopped) return false;
    const { model, version } = options.identity();
    // Not connected yet (or reconnecting): the connection's `ready` triggers a beat.
    if (!model || options.redis.status !== 'ready') return false;
    const value: EndpointRegistration = { address: options.address, model, version, updatedAt: now() };
    try {
      await options.redis.set(key, JSON.stringify(value), 'PX', ttlMs);
      if (stopped) {
        // A beat that raced with stop() must not leave the key behind.
        await options.redis.del(key).catch(() => {});
        return false;
      }
      if (failing) options.logger.info('registered in redis again', { key });
      failing = false;
      events.emit('registered', value);
      return true;
    } catch (err) {
      if (!failing) options.logger.warn('redis registration failed; retrying each heartbeat', { key, err });
      failing = true;
      return false;
    }
  };

  const timer = setInterval(() => void beat(), heartbeatMs);
  timer.unref();
  void beat();

  return {
    key,
    events,
    beat,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      try {
        await options.redis.del(key);
        options.logger.info('deregistered from redis', { key });
      } catch (err) {
        options.logger.warn('redis deregistration failed; the key expires by itself', { key, ttlMs, err });
      }
    },
  };
}
