/**
 * The long-lived objects of one router and their wiring: metrics, breakers,
 * the endpoint set, the gate, admission, the retry budget, the datastore of
 * the config in force, and the gauges that follow them. router/server.ts
 * puts the request pipeline and the servers on top.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { trace as otelTrace } from '@opentelemetry/api';
import { createLogger } from '../common/log.js';
import { channelCredentials } from '../common/tls.js';
import { createAdmission } from './admission/admission.js';
import type { RouterOptions } from './api.js';
import { createGate } from './auth/gate.js';
import { createCanary } from './canary/controller.js';
import { createDatastore } from './datastore.js';
import { createGauges, type Gauges } from './gauges.js';
import type { HistogramSeries } from './local-histogram.js';
import { BREAKER_STATE_VALUE, createRouterMetrics } from './metrics.js';
import type { RouterContext } from './request/context.js';
import { createSplitTracker } from './routing/split-tracker.js';
import { createBuiltinRegistry } from './scheduling/registry.js';
import { type BreakerTransition, createBreakers } from './upstream/breakers.js';
import { createEndpointSet } from './upstream/endpoints.js';
import { createRetryBudget } from './upstream/retry-budget.js';

/** A router's objects, before any server runs. */
export interface RouterCore {
  readonly ctx: RouterContext;
  readonly gauges: Gauges;
  /** Emits `config` and `breaker` (see the Router interface). */
  readonly events: EventEmitter;
  /** Stops timers, discovery and connections. */
  close(): Promise<void>;
}

/** Builds and wires the objects of a router for `options.config`. */
export function createRouterCore(options: RouterOptions): RouterCore {
  const log = options.logger ?? createLogger('router');
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const config = options.config;
  const metrics = createRouterMetrics();
  const split = createSplitTracker(60_000, now);
  const breakers = createBreakers({
    config: config.breaker,
    logger: log,
    rotateBucketController: options.breakerRotation,
  });
  const gate = createGate(
    log,
    (degraded) => metrics.rateLimitDegraded.set(degraded ? 1 : 0),
    (reason) => metrics.rateLimitFallbacks.inc({ reason }),
  );
  gate.prepare(config.auth);
  const tls = config.upstream_tls;
  const endpoints = createEndpointSet([], {
    credentials: tls
      ? channelCredentials(
          { caFile: tls.ca_file, certFile: tls.cert_file, keyFile: tls.key_file },
          'upstream_tls',
        )
      : undefined,
    channelOptions: tls?.server_name ? { 'grpc.ssl_target_name_override': tls.server_name } : undefined,
    logger: log,
    watcherId: `router-${process.pid}-${randomUUID().slice(0, 8)}`,
    now,
    breakerState: (a) => breakers.state(a),
    health: (a) => breakers.health(a),
  });
  breakers.events.on('health', (address: string) => endpoints.invalidate(address));
  breakers.events.on('transition', (t: BreakerTransition) => {
    metrics.breakerState.set({ endpoint: t.endpoint }, BREAKER_STATE_VALUE[t.to]);
    metrics.breakerTransitions.inc({ endpoint: t.endpoint, to: t.to });
    endpoints.invalidate();
    events.emit('breaker', t);
  });
  const canary = createCanary(config, {
    metrics,
    log,
    now,
    events,
    replicaId: `router-${process.pid}-${randomUUID().slice(0, 8)}`,
    timer: options.canaryTimer,
  });
  const retryBudget = createRetryBudget(config.upstream.retry_budget, now);
  const admission = createAdmission(config.admission, options.admissionTimers);
  admission.events.on('shed', ({ reason }: { reason: string }) => metrics.shed.inc({ reason }));
  admission.events.on('admitted', ({ waitedMs }: { waitedMs: number }) => {
    if (waitedMs > 0) metrics.admissionWait.observe(waitedMs / 1000);
  });

  // Each plugin's histogram series, bound once: a decision times every plugin.
  const pluginSeries = new Map<string, Map<string, HistogramSeries>>();
  const pluginTimer = (profile: string, plugin: string, ms: number) => {
    let byPlugin = pluginSeries.get(profile);
    if (!byPlugin) {
      byPlugin = new Map();
      pluginSeries.set(profile, byPlugin);
    }
    let series = byPlugin.get(plugin);
    if (!series) {
      series = metrics.pluginDuration.series({ profile, plugin });
      byPlugin.set(plugin, series);
    }
    series.observe(ms / 1000);
  };
  const datastore = createDatastore(config, {
    registry: options.registry ?? createBuiltinRegistry(),
    random,
    pluginTimer,
    discovery: {
      logger: log,
      onAddresses: (addresses) => {
        endpoints.setAddresses(addresses);
        breakers.retain(addresses);
      },
      resolver: options.resolver,
      redis: options.redis,
    },
    onApplied: (next, before) => {
      if (next.listen !== before.listen || next.admin !== before.admin) {
        log.warn('listen and admin addresses change only on restart', {
          listen: next.listen,
          admin: next.admin,
        });
      }
      gate.prepare(next.auth);
      breakers.configure(next.breaker);
      retryBudget.configure(next.upstream.retry_budget);
      admission.configure(next.admission);
      canary.configure(next);
      endpoints.invalidate();
      gauges.refresh();
    },
  });
  const gauges = createGauges({ datastore, endpoints, split, admission, metrics, now, canary });
  const ctx: RouterContext = {
    datastore,
    endpoints,
    breakers,
    admission,
    gate,
    retryBudget,
    metrics,
    split,
    tracer: options.tracer ?? otelTrace.getTracer('llmmesh-router'),
    log,
    now,
    random,
    canary,
  };

  return {
    ctx,
    gauges,
    events,
    async close() {
      gauges.close();
      await canary.close();
      await datastore.close();
      gate.close();
      endpoints.close();
      breakers.close();
    },
  };
}
