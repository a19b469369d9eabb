/**
 * Endpoint discovery: where the sidecars' addresses come from. Every kind
 * produces the full address list; the endpoint set dials new addresses and
 * drops vanished ones, and pools form from what each sidecar reports.
 */
import type { Logger } from '../../common/log.js';
import type { DiscoveryConfig } from '../config/schema.js';
import { createDnsDiscovery, type DnsResolver } from './dns.js';
import { createRedisDiscovery, type RedisLike } from './redis.js';

/** A running discovery. */
export interface Discovery {
  readonly kind: DiscoveryConfig['kind'];
  /** Stops polling and closes connections. */
  close(): Promise<void>;
}

/** What discovery implementations need. */
export interface DiscoveryDeps {
  logger: Logger;
  /** Receives the complete address list whenever it may have changed. */
  onAddresses(addresses: string[]): void;
  /** DNS lookups (default: the system resolver). */
  resolver?: DnsResolver;
  /** Redis client factory (default: ioredis). */
  redis?: (url: string) => RedisLike;
  /** Clock for registration TTLs (default Date.now). */
  now?: () => number;
}

/** Starts discovery of `config.kind`. */
export function createDiscovery(config: DiscoveryConfig, deps: DiscoveryDeps): Discovery {
  switch (config.kind) {
    case 'static':
      deps.onAddresses([...new Set(config.endpoints)]);
      return { kind: 'static', close: async () => {} };
    case 'dns':
      return createDnsDiscovery(config, deps);
    case 'redis':
      return createRedisDiscovery(config, deps);
  }
}

/** True when two discovery configs describe the same source (no restart needed). */
export function sameDiscovery(a: DiscoveryConfig, b: DiscoveryConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
