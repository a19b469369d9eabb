/**
 * Load arithmetic shared by scorers, filters and admission. Reports lag (they
 * arrive every 250 ms at most), the router's own in-flight count does not, so
 * each measure takes the fresher of the two where they overlap.
 */
import type { EndpointView } from '../upstream/endpoints.js';

/** Outstanding work of an endpoint: streams in flight plus everything queued. */
export function endpointLoad(e: EndpointView): number {
  const r = e.report;
  const engineQueue = r?.engine ? r.engine.numRequestsWaiting : 0;
  // The sidecar's in-flight count includes this router's streams; the router's
  // own count is fresher, so take the larger.
  return Math.max(e.routerInFlight, r?.inFlight ?? 0) + (r?.queued ?? 0) + engineQueue;
}

/** KV cache usage from which an engine's waiting requests count as queued even with free sequence slots. */
export const KV_FULL = 0.9;

/**
 * Requests waiting at the endpoint: the sidecar's queue, plus the engine's
 * waiting requests when the engine is full (running at capacity, or KV cache
 * nearly used up; otherwise they only arrived between two engine steps, and a
 * scrape that caught a burst must not mark a healthy pod saturated).
 *
 * The sidecar's queue is also projected from what this router did since the
 * last report: streams it opened since take the pod's free places first and
 * queue beyond them (streams that ended free places). Without that, every
 * request between two reports would see the same "best" pod and pile onto it.
 */
export function queueDepth(e: EndpointView): number {
  const r = e.report;
  const queued = r?.queued ?? 0;
  const capacity = r?.capacity?.maxNumSeqs ?? 0;
  const engine = r?.engine;
  const engineFull =
    capacity <= 0 ||
    (engine?.numRequestsRunning ?? 0) >= capacity ||
    (engine?.kvCacheUsagePerc ?? 0) >= KV_FULL;
  const waiting = engineFull ? (engine?.numRequestsWaiting ?? 0) : 0;
  if (capacity <= 0) return waiting + queued;
  const sinceReport = e.routerInFlight - (e.routerInFlightAtReport ?? e.routerInFlight);
  const outstanding = Math.max((r?.inFlight ?? 0) + queued + sinceReport, e.routerInFlight);
  return waiting + Math.max(queued, outstanding - capacity);
}

/** True when the endpoint's queue reached `saturationQueueDepth`. */
export function isSaturated(e: EndpointView, saturationQueueDepth: number): boolean {
  return queueDepth(e) >= saturationQueueDepth;
}

/** True when the endpoint can take new work (ready and not draining). */
export function usable(e: EndpointView): boolean {
  return e.ready && !e.draining;
}
