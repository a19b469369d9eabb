/** In-memory endpoint views for table-driven scheduling tests. */
import type { LoadReport__Output } from '../../common/generated/llmmesh/v1/LoadReport.js';
import { createRandom } from '../../common/random.js';
import type { BreakerState, EndpointView } from '../../router/upstream/endpoints.js';
import { createPrefixIndex } from '../../router/upstream/prefix-index.js';

/** What a test sets about an endpoint; everything else is a healthy idle pod. */
export interface FakeEndpoint {
  address: string;
  ready?: boolean;
  draining?: boolean;
  breaker?: BreakerState;
  /** Share of recent attempts that failed (default 0). */
  failureRatio?: number;
  consecutiveFailures?: number;
  routerInFlight?: number;
  /** This router's in-flight count when the last report arrived (default: unchanged since). */
  routerInFlightAtReport?: number;
  inFlight?: number;
  queued?: number;
  waiting?: number;
  running?: number;
  /** The sidecar's requests at the engine when its gauges were scraped (default 0: all of `running` and `waiting` bypass the sidecar). */
  inFlightAtScrape?: number;
  kv?: number;
  /** The engine's `max_num_seqs` as reported (default 256; 0: not published). */
  maxNumSeqs?: number;
  /** KV cache blocks of 16 tokens (default 1000). */
  numGpuBlocks?: number;
  /** The knee learned from earlier reports (default none). */
  learnedKnee?: number;
  /** How long the engine has had requests waiting, as of the report (ms; default 0). */
  queueingMs?: number;
  /** This router's recent assignments (decaying count) and when it was taken. */
  recent?: { count: number; at: number };
  /** Block hashes the endpoint's prefix index holds. */
  prefix?: number[];
  blockChars?: number;
  model?: string;
  version?: string;
}

/** Builds an immutable endpoint view. */
export function endpointView(f: FakeEndpoint): EndpointView {
  const index = createPrefixIndex();
  if (f.prefix) {
    index.apply({ reset: true, added: f.prefix, removed: [], blockChars: f.blockChars ?? 64 });
  }
  const report: LoadReport__Output = {
    model: f.model ?? 'm',
    version: f.version ?? 'v1',
    ready: f.ready ?? true,
    draining: f.draining ?? false,
    inFlight: f.inFlight ?? 0,
    queued: f.queued ?? 0,
    engine: {
      numRequestsRunning: f.running ?? 0,
      numRequestsWaiting: f.waiting ?? 0,
      kvCacheUsagePerc: f.kv ?? 0,
    },
    capacity: {
      maxNumSeqs: f.maxNumSeqs ?? 256,
      numGpuBlocks: f.numGpuBlocks ?? 1000,
      blockSize: 16,
      maxModelLen: 8192,
    },
    sequence: 1,
    reason: '',
    servedModelName: f.model ?? 'm',
    prefixIndex: null,
    inFlightAtScrape: f.inFlightAtScrape ?? 0,
    engineScrapeAgeMs: 0,
  };
  return Object.freeze({
    address: f.address,
    connected: true,
    model: report.model,
    version: report.version,
    ready: (f.ready ?? true) && !(f.draining ?? false),
    draining: f.draining ?? false,
    routerInFlight: f.routerInFlight ?? 0,
    routerInFlightAtReport: f.routerInFlightAtReport ?? f.routerInFlight ?? 0,
    report,
    history: {
      learnedKnee: f.learnedKnee ?? 0,
      queueingSince: f.queueingMs ? 0 : -1,
      queueingMs: f.queueingMs ?? 0,
    },
    ...(f.recent ? { recent: f.recent } : {}),
    reason: '',
    breaker: f.breaker ?? 'closed',
    failureRatio: f.failureRatio ?? 0,
    consecutiveFailures: f.consecutiveFailures ?? 0,
    prefixIndex: index,
  });
}

/** A seeded generator, so random choices are reproducible. */
export const seeded: (seed: number) => () => number = createRandom;
