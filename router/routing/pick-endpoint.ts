/**
 * Endpoint choice inside a version's pool. This first policy takes the ready,
 * non-draining endpoint with the least outstanding work (router streams +
 * sidecar queue + engine waiting), ties broken at random.
 */
import type { EndpointView } from '../upstream/endpoints.js';

/** Outstanding work of an endpoint, as this router sees it. */
export function endpointLoad(e: EndpointView): number {
  const r = e.report;
  const engineQueue = r?.engine ? r.engine.numRequestsWaiting : 0;
  // The sidecar's in-flight count includes this router's streams; the router's
  // own count is fresher (reports lag), so take the larger.
  return Math.max(e.routerInFlight, r?.inFlight ?? 0) + (r?.queued ?? 0) + engineQueue;
}

/** True when the endpoint can take new work. */
export function usable(e: EndpointView): boolean {
  return e.ready && !e.draining;
}

/**
 * Picks an endpoint from `pool`, skipping `exclude` (endpoints already tried
 * for this request). Returns undefined when none is usable.
 */
export function pickEndpoint(
  pool: readonly EndpointView[],
  exclude: ReadonlySet<string>,
  random: () => number = Math.random,
): EndpointView | undefined {
  let best: EndpointView[] = [];
  let bestLoad = Number.POSITIVE_INFINITY;
  for (const e of pool) {
    if (!usable(e) || exclude.has(e.address)) continue;
    const load = endpointLoad(e);
    if (load < bestLoad) {
      best = [e];
      bestLoad = load;
    } else if (load === bestLoad) {
      best.push(e);
    }
  }
  if (best.length === 0) return undefined;
  return best[Math.floor(random() * best.length)] ?? best[0];
}
