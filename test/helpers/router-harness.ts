/**
 * A router on loopback with its routing file in a temporary directory,
 * watched and hot-reloaded as in production, plus a client (no client-side
 * retries, so what the router does is what the test sees).
 */
import type { EventEmitter } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInferenceClient, type InferenceClient } from '../../client/index.js';
import { silentLogger } from '../../common/log.js';
import { loadRouterConfigFile } from '../../router/config/load.js';
import type { RequestTrace } from '../../router/request-trace.js';
import { type ConfigReloadEvent, type Router, type RouterOptions, startRouter } from '../../router/server.js';
import type { EndpointView } from '../../router/upstream/endpoints.js';
import { nextEvent, waitUntil } from './wait.js';

/** A running router under test. */
export interface RouterHarness {
  router: Router;
  client: InferenceClient;
  configPath: string;
  /** Finished requests' routing stories, in completion order. */
  traces: RequestTrace[];
  /** Rewrites the routing file and resolves with the reload outcome. */
  rewrite(yaml: string): Promise<ConfigReloadEvent>;
  /** Waits until `n` endpoints are ready. */
  waitReady(n: number): Promise<void>;
  /** Waits until the router's endpoint snapshot satisfies `test` (`what` names it in a timeout). */
  waitEndpoints(test: (endpoints: readonly EndpointView[]) => boolean, what: string): Promise<void>;
  /** A Prometheus metric family's text, as a scrape of `/metrics` shows it when the router has an admin server. */
  metric(name: string): Promise<string>;
  close(): Promise<void>;
}

/** Starts a router over static `endpoints` with the routing file `yaml`. */
export async function startRouterHarness(options: {
  endpoints: string[];
  yaml: string;
  random?: () => number;
  admin?: boolean;
  /** The admin token the routing file requires (its SHA-256 in `admin_token_sha256`), for metric scrapes. */
  adminToken?: string;
  extra?: Partial<RouterOptions>;
  discovery?: Record<string, unknown>;
}): Promise<RouterHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'llmmesh-router-'));
  const configPath = join(dir, 'routes.yaml');
  writeFileSync(configPath, options.yaml);
  const overrides = {
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    discovery: options.discovery ?? { kind: 'static', endpoints: options.endpoints },
  };
  const load = () => loadRouterConfigFile(configPath, overrides);
  const traces: RequestTrace[] = [];
  const router = await startRouter({
    config: load(),
    logger: silentLogger,
    random: options.random,
    admin: options.admin ? '127.0.0.1:0' : false,
    watch: { path: configPath, load, debounceMs: 20 },
    onRequestTrace: (t) => traces.push(t),
    ...options.extra,
  });
  const client = createInferenceClient(router.address, { maxAttempts: 1 });
  const waitEndpoints = (test: (endpoints: readonly EndpointView[]) => boolean, what: string) =>
    waitUntil(router.endpoints.events, 'change', () => test(router.endpoints.snapshot().endpoints), what);
  const waitReady = (n: number) =>
    waitEndpoints((endpoints) => endpoints.filter((e) => e.ready).length >= n, `${n} ready endpoints`);
  return {
    router,
    client,
    configPath,
    traces,
    waitReady,
    waitEndpoints,
    async rewrite(yaml) {
      const event = nextEvent<ConfigReloadEvent>(router.events as EventEmitter, 'config');
      writeFileSync(configPath, yaml);
      return event;
    },
    async metric(name) {
      // With an admin server, read what a scrape reads: /metrics recomputes the
      // route and endpoint gauges first, while the registry alone may still hold
      // values from before the last change (they refresh within 100 ms).
      if (!router.adminUrl) return router.metrics.registry.getSingleMetricAsString(name);
      const res = await fetch(`${router.adminUrl}/metrics`, {
        headers: options.adminToken ? { authorization: `Bearer ${options.adminToken}` } : {},
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${text}`);
      const family = (line: string) => {
        const n = line.startsWith('# ') ? (line.split(' ')[2] ?? '') : (/^[^{ ]+/.exec(line)?.[0] ?? '');
        return n === name || ['_bucket', '_sum', '_count'].some((x) => n === name + x);
      };
      return text
        .split('\n')
        .filter((l) => l !== '' && family(l))
        .join('\n');
    },
    async close() {
      client.close();
      await router.close(0);
    },
  };
}
