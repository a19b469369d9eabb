/**
 * Keeps the router's gauges (route weights and shares, ready endpoints,
 * queue depths) and the `llmmesh.v1.Inference` health status in step with
 * the endpoint set, without rebuilding them on every load report: reports
 * arrive from every pod every 250 ms at least.
 */
import type { Admission } from './admission/admission.js';
import type { Canary } from './canary/controller.js';
import type { Datastore } from './datastore.js';
import type { RouterMetrics } from './metrics.js';
import type { SplitTracker } from './routing/split-tracker.js';
import { queueDepth, usable } from './scheduling/load.js';
import type { EndpointSet } from './upstream/endpoints.js';

/** Longest delay between an endpoint change and the gauges and health that show it. */
const GAUGE_REFRESH_MS = 100;
/** Up to this many endpoints, health is refreshed on every change; above, at most every GAUGE_REFRESH_MS. */
const EXACT_HEALTH_MAX_ENDPOINTS = 64;

/** The gauges' upkeep. */
export interface Gauges {
  /** Recomputes every gauge and the health now (e.g. before a scrape). */
  refresh(): void;
  /** Starts following `setHealth` (once the gRPC server is up). */
  attach(setHealth: (serving: boolean) => void): void;
  close(): void;
}

/** What the gauges read. */
export interface GaugeSources {
  datastore: Datastore;
  endpoints: EndpointSet;
  split: SplitTracker;
  admission: Admission;
  metrics: RouterMetrics;
  now: () => number;
  /** Overlays canary progressions on the configured weights. */
  canary?: Canary;
}

/** Creates the gauges and subscribes them to endpoint changes. */
export function createGauges(src: GaugeSources): Gauges {
  const { metrics, endpoints, now } = src;
  let setHealth: ((serving: boolean) => void) | undefined;
  /** `llmmesh.v1.Inference` is SERVING while at least one endpoint of a configured version is ready. */
  let serving: boolean | undefined;
  const refreshHealth = () => {
    if (!setHealth) return;
    const models = src.datastore.config().models;
    const anyReady = endpoints
      .snapshot()
      .endpoints.some((e) => usable(e) && e.version in (models[e.model]?.versions ?? {}));
    if (anyReady === serving) return;
    serving = anyReady;
    setHealth(anyReady);
  };

  const refresh = () => {
    const snap = endpoints.snapshot();
    metrics.routeWeight.reset();
    metrics.routeConfiguredShare.reset();
    metrics.routeObservedShare.reset();
    metrics.endpointsReady.reset();
    for (const [model, file] of Object.entries(src.datastore.config().models)) {
      const m = src.canary ? src.canary.effective(model, file) : file;
      const total = Object.values(m.versions).reduce((s, v) => s + v.weight, 0) || 1;
      const observed = src.split.shares(model);
      for (const [version, v] of Object.entries(m.versions)) {
        const labels = { model, model_version: version };
        metrics.routeWeight.set(labels, v.weight);
        metrics.routeConfiguredShare.set(labels, v.weight / total);
        metrics.routeObservedShare.set(labels, observed[version] ?? 0);
        metrics.endpointsReady.set(labels, snap.pool(model, version).filter((e) => e.ready).length);
      }
    }
    metrics.queueDepth.reset();
    for (const e of snap.endpoints) {
      if (!e.report) continue;
      metrics.queueDepth.set(
        { endpoint: e.address, model: e.model, model_version: e.version },
        queueDepth(e),
      );
    }
    metrics.admissionQueue.set(src.admission.queued);
    refreshHealth();
  };

  let refreshTimer: NodeJS.Timeout | undefined;
  // Health needs a snapshot (O(endpoints)); refreshing it on every report is
  // O(endpoints²) per second for a large pool. Refresh at once when the last
  // refresh is older than GAUGE_REFRESH_MS, else once at the end of the window.
  let healthAt = 0;
  let healthTimer: NodeJS.Timeout | undefined;
  const throttledHealth = () => {
    const wait = healthAt + GAUGE_REFRESH_MS - now();
    // Small pools (the common case) stay exact: the snapshot costs nothing there.
    if (wait <= 0 || endpoints.size <= EXACT_HEALTH_MAX_ENDPOINTS) {
      healthAt = now();
      refreshHealth();
    } else if (!healthTimer) {
      healthTimer = setTimeout(() => {
        healthTimer = undefined;
        healthAt = now();
        refreshHealth();
      }, wait);
      healthTimer.unref();
    }
  };
  const onChange = () => {
    src.admission.poke();
    throttledHealth();
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = undefined;
      refresh();
    }, GAUGE_REFRESH_MS);
    refreshTimer.unref();
  };
  endpoints.events.on('change', onChange);

  return {
    refresh,
    attach(fn) {
      setHealth = fn;
      refresh();
    },
    close() {
      endpoints.events.off('change', onChange);
      if (refreshTimer) clearTimeout(refreshTimer);
      if (healthTimer) clearTimeout(healthTimer);
    },
  };
}
