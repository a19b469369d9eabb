/**
 * The polling loop shared by the dns and redis discovery kinds: list the
 * endpoints every interval, report the list when it changes, and keep the
 * last list when a listing fails (a DNS or Redis blip must not empty a pool).
 */
import type { DiscoveryDeps } from './discovery.js';

/** Options of {@link startPolling}. */
export interface PollOptions {
  /** Names the source in logs, e.g. `DNS discovery`. */
  label: string;
  /** Extra log fields identifying the source (name, url). */
  fields: Record<string, unknown>;
  intervalMs: number;
  /** Lists the current endpoint addresses, sorted. */
  list: () => Promise<string[]>;
}

/** Starts polling; the first listing runs at once. Returns the stop function. */
export function startPolling(options: PollOptions, deps: DiscoveryDeps): () => void {
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let last: string | undefined;
  let failing = false;

  const poll = async () => {
    try {
      const addresses = await options.list();
      if (closed) return;
      if (failing) deps.logger.info(`${options.label} recovered`, options.fields);
      failing = false;
      const key = addresses.join(',');
      if (key !== last) {
        last = key;
        deps.logger.info(`${options.label}: endpoints changed`, { ...options.fields, endpoints: addresses });
        deps.onAddresses(addresses);
      }
    } catch (err) {
      if (!failing) {
        deps.logger.warn(`${options.label} failed; keeping the last endpoints`, {
          ...options.fields,
          err: (err as Error).message,
        });
      }
      failing = true;
    } finally {
      if (!closed) {
        timer = setTimeout(() => void poll(), options.intervalMs);
        timer.unref();
      }
    }
  };
  void poll();
  return () => {
    closed = true;
    if (timer) clearTimeout(timer);
  };
}
