/**
 * DNS discovery: resolves a name (a Kubernetes headless Service) to its A and
 * AAAA records periodically; each address with the configured port is an
 * endpoint. A failed lookup keeps the last list (a DNS blip must not empty
 * the pool); an answer with no records empties it.
 */
import { lookup } from 'node:dns/promises';
import { formatHostPort } from '../../common/address.js';
import type { DiscoveryConfig } from '../config/schema.js';
import type { Discovery, DiscoveryDeps } from './discovery.js';
import { startPolling } from './poll.js';

/** Resolves a name to IP addresses (v4 and v6). */
export type DnsResolver = (name: string) => Promise<string[]>;

/** The system resolver (getaddrinfo: honours /etc/hosts and search domains). */
export const systemResolver: DnsResolver = async (name) =>
  (await lookup(name, { all: true, verbatim: true })).map((a) => a.address);

type DnsConfig = Extract<DiscoveryConfig, { kind: 'dns' }>;

/** Starts polling. The first lookup runs at once. */
export function createDnsDiscovery(config: DnsConfig, deps: DiscoveryDeps): Discovery {
  const resolve = deps.resolver ?? systemResolver;
  const stop = startPolling(
    {
      label: 'DNS discovery',
      fields: { name: config.name },
      intervalMs: config.interval_ms,
      list: async () =>
        [...new Set(await resolve(config.name))].sort().map((ip) => formatHostPort(ip, config.port)),
    },
    deps,
  );
  return {
    kind: 'dns',
    async close() {
      stop();
    },
  };
}
