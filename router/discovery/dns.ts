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

/** Resolves a name to IP addresses (v4 and v6). */
export type DnsResolver = (name: string) => Promise<string[]>;

/** The system resolver (getaddrinfo: honours /etc/hosts and search domains). */
export const systemResolver: DnsResolver = async (name) =>
  (await lookup(name, { all: true, verbatim: true })).map((a) => a.address);

type DnsConfig = Extract<DiscoveryConfig, { kind: 'dns' }>;

/** Starts polling. The first lookup runs at once. */
export function createDnsDiscovery(config: DnsConfig, deps: DiscoveryDeps): Discovery {
  const resolve = deps.resolver ?? systemResolver;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let last: string | undefined;
  let failing = false;

  const poll = async () => {
    try {
      const ips = await resolve(config.name);
      if (closed) return;
      const addresses = [...new Set(ips)].sort().map((ip) => formatHostPort(ip, config.port));
      if (failing) deps.logger.info('DNS discovery recovered', { name: config.name });
      failing = false;
      const key = addresses.join(',');
      if (key !== last) {
        last = key;
        deps.logger.info('DNS discovery: endpoints changed', { name: config.name, endpoints: addresses });
        deps.onAddresses(addresses);
      }
    } catch (err) {
      if (!failing) {
        deps.logger.warn('DNS discovery lookup failed; keeping the last endpoints', {
          name: config.name,
          err: (err as Error).message,
        });
      }
      failing = true;
    } finally {
      if (!closed) {
        timer = setTimeout(() => void poll(), config.interval_ms);
        timer.unref();
      }
    }
  };
  void poll();
  return {
    kind: 'dns',
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
