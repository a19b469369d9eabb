/**
 * What the sidecar knows about its pod and tells the world: the engine
 * prober, the pod's serving state, the load reports routers watch, and the
 * Prometheus metrics. What the prober learns (served model name, the
 * engine's sequence limit, KV capacity) adjusts admission and the prefix
 * index here, in one place.
 */
import type { LoadReport } from '../../common/generated/llmmesh/v1/LoadReport.js';
import type { Logger } from '../../common/log.js';
import type { Admission } from '../admission.js';
import type { ResponseCache } from '../cache/response-cache.js';
import type { EngineClient } from '../engine-client.js';
import { createSidecarMetrics, type SidecarMetrics } from '../metrics.js';
import { createPodState, type PodState } from '../pod-state.js';
import { createEngineProber, DEFAULT_PROBE_INTERVAL_MS, type EngineProber } from './engine-prober.js';
import { createLoadReporter, DEFAULT_REPORT_INTERVAL_MS, type LoadReporter } from './load-reporter.js';
import { DEFAULT_CHARS_PER_TOKEN, type PrefixIndex, prefixIndexCapacity } from './prefix-index.js';

/** Options of {@link createPodMonitor}. */
export interface PodMonitorOptions {
  engine: EngineClient;
  /** Logical model name; learned from the engine when absent. */
  model?: string;
  version: string;
  admission: Admission;
  prefixIndex: PrefixIndex;
  /** A fixed in-flight limit; when absent the engine's own limit is adopted. */
  maxInFlight?: number;
  /** A fixed prefix-index capacity; when absent it follows the engine's KV capacity. */
  prefixIndexBlocks?: number;
  prefixIndexCharsPerToken?: number;
  probeIntervalMs?: number;
  reportIntervalMs?: number;
  logger: Logger;
  /** Gauges owned by other parts, read at scrape time. */
  gauges: { activeStreams(): number; cache(): ResponseCache | undefined };
  /** Every published report (without the prefix index). */
  onReport(report: LoadReport): void;
  /** The model name was learned from the engine. */
  onModel(model: string): void;
}

/** The pod's monitor. */
export interface PodMonitor {
  readonly prober: EngineProber;
  readonly pod: PodState;
  readonly reporter: LoadReporter;
  readonly metrics: SidecarMetrics;
  /** The logical model name; empty while unknown. */
  model(): string;
}

/** Creates the monitor and starts probing the engine. */
export function createPodMonitor(o: PodMonitorOptions): PodMonitor {
  const { admission, prefixIndex } = o;
  const charsPerToken = o.prefixIndexCharsPerToken ?? DEFAULT_CHARS_PER_TOKEN;
  let model = o.model ?? '';

  // The prober's callbacks run after its first (asynchronous) probe, when
  // everything below exists.
  const prober = createEngineProber({
    engine: o.engine,
    intervalMs: o.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS,
    logger: o.logger,
    onReadyChange: () => pod.engineChanged(),
    inFlight: () => admission.inFlight,
    onChange(state) {
      if (!model && state.servedModelName) {
        model = state.servedModelName;
        metrics.setModel({ model, model_version: o.version });
        o.onModel(model);
      }
      if (o.maxInFlight === undefined && state.maxNumSeqs !== undefined) {
        admission.setLimit(state.maxNumSeqs);
      }
      if (o.prefixIndexBlocks === undefined && state.metrics.numGpuBlocks && state.metrics.blockSize) {
        prefixIndex.setCapacity(
          prefixIndexCapacity(state.metrics.numGpuBlocks, state.metrics.blockSize, charsPerToken),
        );
      }
      reporter.changed();
    },
  });
  const pod = createPodState(() => prober.state, o.engine.url);

  const metrics = createSidecarMetrics(
    { model, model_version: o.version },
    {
      queued: () => admission.queued,
      inFlight: () => admission.inFlight,
      activeStreams: () => o.gauges.activeStreams(),
      ready: () => pod.ready,
      draining: () => pod.draining,
      l1Entries: () => o.gauges.cache()?.l1Entries ?? 0,
      l1Bytes: () => o.gauges.cache()?.l1Bytes ?? 0,
      l2Up: () => {
        const state = o.gauges.cache()?.l2State ?? 'off';
        return state === 'off' ? undefined : state === 'up' ? 1 : 0;
      },
      prefixIndexBlocks: () => prefixIndex.size,
      prefixIndexCapacity: () => prefixIndex.capacity,
      watchers: () => reporter.watcherCount,
    },
  );

  const reporter = createLoadReporter({
    intervalMs: o.reportIntervalMs ?? DEFAULT_REPORT_INTERVAL_MS,
    prefixIndex,
    onReport: o.onReport,
    build: () => {
      const s = prober.state;
      return {
        model,
        version: o.version,
        servedModelName: s.servedModelName,
        ready: pod.ready,
        draining: pod.draining,
        inFlight: admission.inFlight,
        queued: admission.queued,
        inFlightAtScrape: s.inFlightAtScrape,
        engineScrapeAgeMs: s.scrapedAt > 0 ? Math.round(Math.max(0, performance.now() - s.scrapedAt)) : 0,
        reason: pod.reason,
        engine: {
          numRequestsRunning: s.metrics.numRequestsRunning ?? 0,
          numRequestsWaiting: s.metrics.numRequestsWaiting ?? 0,
          kvCacheUsagePerc: s.metrics.kvCacheUsagePerc ?? 0,
        },
        capacity: {
          // A limit the pod really holds to: the engine's published max_num_seqs,
          // or the sidecar's --max-in-flight. 0 when neither is known (vLLM
          // outside dev mode): the sidecar's default admission limit is a
          // guess, and routers treat a reported limit as the point past
          // which requests queue for sure.
          maxNumSeqs: o.maxInFlight ?? s.maxNumSeqs ?? 0,
          numGpuBlocks: s.metrics.numGpuBlocks ?? 0,
          blockSize: s.metrics.blockSize ?? 0,
          maxModelLen: s.maxModelLen,
        },
      };
    },
  });
  // A pod that stops taking work says so at once, not at the next tick.
  pod.onChange(() => (pod.draining ? reporter.publish() : reporter.changed()));

  return { prober, pod, reporter, metrics, model: () => model };
}
