/**
 * Hot reload of the router's config file, with feedback an operator can
 * read: every outcome (applied, rejected, unchanged) is logged, counted in
 * `llm_router_config_reloads_total{result}`, emitted on the router's events,
 * and kept for `/status.json` (the last rejection until a good reload clears it).
 */
import type { EventEmitter } from 'node:events';
import type { Logger } from '../common/log.js';
import { ConfigError } from './config/load.js';
import type { RouterConfig } from './config/schema.js';
import { type ConfigWatch, watchConfigFile } from './config/watch.js';
import type { RouterMetrics } from './metrics.js';

/** Outcome of a config reload, as emitted on the router's events as `config`. */
export type ConfigReloadEvent =
  | { result: 'applied'; config: RouterConfig }
  | { result: 'rejected'; error: string; problems: string[] };

/** The reload history `/status.json` shows. */
export interface ConfigReloadStatus {
  reloads: number;
  rejected: number;
  /** The problems of the last rejected file, '' once a good one was applied. */
  lastError: string;
  /** When a config was last applied (epoch ms; 0 if only the first one was). */
  lastReloadAt: number;
  /** The last rejection, until a good reload clears it. */
  lastRejection: { at: number; error: string } | null;
}

/** Reload feedback for one router. */
export interface ConfigReloads {
  /** Applies `next` through `apply` and reports the outcome. */
  offer(next: RouterConfig): void;
  /** Reports a file that could not be loaded or applied. */
  reject(err: unknown): void;
  status(): ConfigReloadStatus;
  /** Watches `path` (no-op without one); `reload()` re-reads it now (SIGHUP). */
  watch(path: string | undefined, load: (() => RouterConfig) | undefined, debounceMs?: number): void;
  reload(): void;
  close(): void;
}

/** What the reloads report to. */
export interface ConfigReloadDeps {
  apply: (next: RouterConfig) => void;
  metrics: RouterMetrics;
  log: Logger;
  events: EventEmitter;
  now: () => number;
}

/** Creates the reload feedback. */
export function createConfigReloads(deps: ConfigReloadDeps): ConfigReloads {
  const { metrics, log, events, now } = deps;
  const state: ConfigReloadStatus = {
    reloads: 0,
    rejected: 0,
    lastError: '',
    lastReloadAt: 0,
    lastRejection: null,
  };
  let watcher: ConfigWatch | undefined;
  let path: string | undefined;

  const reject = (err: unknown) => {
    const problems = err instanceof ConfigError ? err.problems : [(err as Error).message ?? String(err)];
    state.rejected++;
    state.lastError = problems.join('; ');
    state.lastRejection = { at: now(), error: state.lastError };
    metrics.configReloads.inc({ result: 'rejected' });
    metrics.configLastReloadSuccess.set(0);
    metrics.configLastReloadTime.set(now() / 1000);
    log.error('config rejected; keeping the last good config', { path, problems });
    events.emit('config', {
      result: 'rejected',
      error: (err as Error).message ?? String(err),
      problems,
    } satisfies ConfigReloadEvent);
  };

  const offer = (next: RouterConfig) => {
    try {
      deps.apply(next);
    } catch (err) {
      reject(err);
      return;
    }
    state.reloads++;
    state.lastError = '';
    state.lastRejection = null;
    state.lastReloadAt = now();
    metrics.configReloads.inc({ result: 'applied' });
    metrics.configLastReloadSuccess.set(1);
    metrics.configLastReloadTime.set(now() / 1000);
    const weights = Object.fromEntries(
      Object.entries(next.models).map(([m, c]) => [
        m,
        Object.fromEntries(Object.entries(c.versions).map(([v, w]) => [v, w.weight])),
      ]),
    );
    log.info('config reloaded', { path, weights });
    events.emit('config', { result: 'applied', config: next } satisfies ConfigReloadEvent);
  };

  metrics.configLastReloadSuccess.set(1);
  metrics.configLastReloadTime.set(now() / 1000);

  return {
    offer,
    reject,
    status: () => ({ ...state }),
    watch(p, load, debounceMs) {
      if (!p || !load) return;
      path = p;
      watcher = watchConfigFile({
        path: p,
        load,
        onReload: offer,
        onError: reject,
        onUnchanged: () => {
          metrics.configReloads.inc({ result: 'unchanged' });
          log.info('config unchanged; nothing to reload', { path });
        },
        debounceMs,
      });
    },
    reload: () => watcher?.reload(),
    close: () => watcher?.close(),
  };
}
