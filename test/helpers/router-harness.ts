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
  /** A Prometheus metric's text. */
  metric(name: string): Promise<string>;
  close(): Promise<void>;
}

/** Starts a router over static `endpoints` with the routing file `yaml`. */
export async function startRouterHarness(options: {
  endpoints: string[];
  yaml: string;
  random?: () => number;
  admin?: boolean;
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
  const waitReady = (n: number) =>
    waitUntil(
      router.endpoints.events,
      'change',
      () => router.endpoints.snapshot().endpoints.filter((e) => e.ready).length >= n,
      `${n} ready endpoints`,
    );
  return {
    router,
    client,
    configPath,
    traces,
    waitReady,
    async rewrite(yaml) {
      const event = nextEvent<ConfigReloadEvent>(router.events as EventEmitter, 'config');
      writeFileSync(configPath, yaml);
      return event;
    },
    metric: (name) => router.metrics.registry.getSingleMetricAsString(name),
    async close() {
      client.close();
      await router.close(0);
    },
  };
}
