/**
 * The router's state for `/status.json`, the status page and `llmmesh
 * status`: models and versions (configured and observed split, stream
 * migrations), endpoints (load, breaker), admission, retry budget and the
 * config reload history.
 */
import type { Admission } from './admission/admission.js';
import type { AnalysisStatus, Canary, CanaryStatus } from './canary/controller.js';
import { profileFor } from './config/schema.js';
import type { ConfigReloadStatus } from './config-reload.js';
import type { Datastore } from './datastore.js';
import type { RouterMetrics } from './metrics.js';
import type { SplitTracker } from './routing/split-tracker.js';
import { usable } from './scheduling/load.js';
import type { BreakerState, EndpointSet } from './upstream/endpoints.js';
import type { RetryBudget } from './upstream/retry-budget.js';

/** The router's state for `/status.json` and `llmmesh status`. */
export interface RouterStatus {
  listen: string;
  discovery: string;
  models: Array<{
    name: string;
    profile: string;
    fallback: boolean;
    versions: Array<{
      name: string;
      /** Weight in force: the file's, or a canary progression's overlay on it. */
      weight: number;
      /** Weight in the config file. */
      fileWeight: number;
      /** Configured share of the model's traffic (0..1). */
      configuredShare: number;
      /** Observed share over the last minute (0..1). */
      observedShare: number;
      readyEndpoints: number;
      endpoints: number;
      /** Streams of this version continued on another endpoint since start. */
      migrations: number;
    }>;
  }>;
  endpoints: Array<{
    address: string;
    model: string;
    version: string;
    ready: boolean;
    draining: boolean;
    reason: string;
    breaker: BreakerState;
    routerInFlight: number;
    inFlight: number;
    queued: number;
    engineRunning: number;
    engineWaiting: number;
    kvCacheUsage: number;
    prefixBlocks: number;
  }>;
  admission: { inFlight: number; queued: number; maxConcurrency: number };
  retryBudget: { requests: number; retries: number; allowed: number };
  config: ConfigReloadStatus;
  /** Canary progressions (router/canary/). */
  canary?: CanaryStatus;
  /** Per-version comparison over sliding windows, with chart series. */
  analysis?: AnalysisStatus;
}

/** What the status is read from. */
export interface StatusSources {
  listen: () => string;
  datastore: Datastore;
  endpoints: EndpointSet;
  split: SplitTracker;
  admission: Admission;
  retryBudget: RetryBudget;
  metrics: RouterMetrics;
  reloads: () => ConfigReloadStatus;
  canary?: Canary;
}

/** Builds the status now. */
export function routerStatus(src: StatusSources): RouterStatus {
  const config = src.datastore.config();
  const snap = src.endpoints.snapshot();
  return {
    listen: src.listen(),
    discovery: config.discovery.kind,
    models: Object.entries(config.models).map(([name, file]) => {
      const m = src.canary ? src.canary.effective(name, file) : file;
      const total = Object.values(m.versions).reduce((s, v) => s + v.weight, 0) || 1;
      const observed = src.split.shares(name);
      return {
        name,
        profile: profileFor(config, name).name,
        fallback: m.fallback,
        versions: Object.entries(m.versions).map(([version, v]) => {
          const pool = snap.pool(name, version);
          return {
            name: version,
            weight: v.weight,
            fileWeight: file.versions[version]?.weight ?? v.weight,
            configuredShare: v.weight / total,
            observedShare: observed[version] ?? 0,
            readyEndpoints: pool.filter(usable).length,
            endpoints: pool.length,
            migrations: src.metrics.migrationCounts.get(`${name}\u0000${version}`) ?? 0,
          };
        }),
      };
    }),
    endpoints: snap.endpoints.map((e) => ({
      address: e.address,
      model: e.model,
      version: e.version,
      ready: e.ready,
      draining: e.draining,
      reason: e.reason,
      breaker: e.breaker,
      routerInFlight: e.routerInFlight,
      inFlight: e.report?.inFlight ?? 0,
      queued: e.report?.queued ?? 0,
      engineRunning: e.report?.engine?.numRequestsRunning ?? 0,
      engineWaiting: e.report?.engine?.numRequestsWaiting ?? 0,
      kvCacheUsage: e.report?.engine?.kvCacheUsagePerc ?? 0,
      prefixBlocks: e.prefixIndex.size,
    })),
    admission: {
      inFlight: src.admission.inFlight,
      queued: src.admission.queued,
      maxConcurrency: config.admission.max_concurrency,
    },
    retryBudget: src.retryBudget.usage(),
    config: src.reloads(),
    canary: src.canary?.status(),
    analysis: src.canary?.analysis(),
  };
}
