// Original file: proto/llmmesh/v1/engine.proto

import type { EngineMetrics as _llmmesh_v1_EngineMetrics, EngineMetrics__Output as _llmmesh_v1_EngineMetrics__Output } from '../../llmmesh/v1/EngineMetrics.js';
import type { Capacity as _llmmesh_v1_Capacity, Capacity__Output as _llmmesh_v1_Capacity__Output } from '../../llmmesh/v1/Capacity.js';
import type { PrefixIndexUpdate as _llmmesh_v1_PrefixIndexUpdate, PrefixIndexUpdate__Output as _llmmesh_v1_PrefixIndexUpdate__Output } from '../../llmmesh/v1/PrefixIndexUpdate.js';
import type { Long } from '@grpc/proto-loader';

/**
 * LoadReport is a snapshot of one pod's state.
 */
export interface LoadReport {
  /**
   * Logical model name the pod serves.
   */
  'model'?: (string);
  /**
   * Model version the pod serves.
   */
  'version'?: (string);
  /**
   * The engine answers /health and the pod accepts work.
   */
  'ready'?: (boolean);
  /**
   * The pod is shutting down and refuses new work.
   */
  'draining'?: (boolean);
  /**
   * Requests the sidecar has sent to the engine and not yet finished.
   */
  'inFlight'?: (number);
  /**
   * Requests queued in the sidecar, waiting for admission to the engine.
   */
  'queued'?: (number);
  /**
   * Engine gauges scraped from its /metrics.
   */
  'engine'?: (_llmmesh_v1_EngineMetrics | null);
  'capacity'?: (_llmmesh_v1_Capacity | null);
  /**
   * Monotonic per sidecar process; lets a watcher spot reordering or a restart.
   */
  'sequence'?: (number | string | Long);
  /**
   * Why the pod is not ready, when it is not.
   */
  'reason'?: (string);
  /**
   * The engine's own model name (vLLM --served-model-name).
   */
  'servedModelName'?: (string);
  /**
   * Changes to the pod's prefix index since the previous report on this stream.
   */
  'prefixIndex'?: (_llmmesh_v1_PrefixIndexUpdate | null);
  /**
   * Requests the sidecar had sent to the engine while the engine gauges were
   * scraped (the more of the counts at the scrape's start and end): what of
   * the gauges' running and waiting requests is the sidecar's own. The rest is
   * traffic that bypasses the sidecar; the sidecar's own requests that have
   * finished since the scrape are no load.
   */
  'inFlightAtScrape'?: (number);
  /**
   * How long before this report the engine gauges were scraped (ms). Reports
   * repeat the last scrape until the next one: a watcher dates the gauges by
   * the scrape, so one scrape that caught a request between two engine steps
   * does not read as a queue lasting as long as the reports repeat it.
   */
  'engineScrapeAgeMs'?: (number);
}

/**
 * LoadReport is a snapshot of one pod's state.
 */
export interface LoadReport__Output {
  /**
   * Logical model name the pod serves.
   */
  'model': (string);
  /**
   * Model version the pod serves.
   */
  'version': (string);
  /**
   * The engine answers /health and the pod accepts work.
   */
  'ready': (boolean);
  /**
   * The pod is shutting down and refuses new work.
   */
  'draining': (boolean);
  /**
   * Requests the sidecar has sent to the engine and not yet finished.
   */
  'inFlight': (number);
  /**
   * Requests queued in the sidecar, waiting for admission to the engine.
   */
  'queued': (number);
  /**
   * Engine gauges scraped from its /metrics.
   */
  'engine': (_llmmesh_v1_EngineMetrics__Output | null);
  'capacity': (_llmmesh_v1_Capacity__Output | null);
  /**
   * Monotonic per sidecar process; lets a watcher spot reordering or a restart.
   */
  'sequence': (number);
  /**
   * Why the pod is not ready, when it is not.
   */
  'reason': (string);
  /**
   * The engine's own model name (vLLM --served-model-name).
   */
  'servedModelName': (string);
  /**
   * Changes to the pod's prefix index since the previous report on this stream.
   */
  'prefixIndex': (_llmmesh_v1_PrefixIndexUpdate__Output | null);
  /**
   * Requests the sidecar had sent to the engine while the engine gauges were
   * scraped (the more of the counts at the scrape's start and end): what of
   * the gauges' running and waiting requests is the sidecar's own. The rest is
   * traffic that bypasses the sidecar; the sidecar's own requests that have
   * finished since the scrape are no load.
   */
  'inFlightAtScrape': (number);
  /**
   * How long before this report the engine gauges were scraped (ms). Reports
   * repeat the last scrape until the next one: a watcher dates the gauges by
   * the scrape, so one scrape that caught a request between two engine steps
   * does not read as a queue lasting as long as the reports repeat it.
   */
  'engineScrapeAgeMs': (number);
}
