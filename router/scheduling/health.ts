/**
 * Recent failures make an endpoint worse, in every profile. An endpoint that
 * fails fast has no load, so load scorers would rank it best and send it more
 * of the traffic it fails; health corrects that before its breaker opens (and
 * for endpoints the ejection cap keeps in the pool).
 *
 * Two steps, after the filters and the exclusion of endpoints already tried:
 * 1. {@link preferHealthy}: endpoints with a penalty of at least
 *    {@link AVOID_PENALTY} (the last attempt failed, or half the recent ones
 *    did) are dropped while a healthier candidate remains. This works whatever
 *    the picker (`random` and `round-robin` ignore scores), and never empties
 *    the set: a pool where all fail still tries its least bad endpoint.
 * 2. Each candidate's weighted total is multiplied by `1 − penalty`, so lesser
 *    failure shares still rank an endpoint below an equally loaded healthy one.
 *
 * Penalties fade as failures leave the breaker's window (`breaker.window_ms`),
 * so an avoided endpoint comes back on its own; meanwhile it still takes work
 * when its peers are saturated (filtered out) or when it is all there is.
 */
import type { EndpointView } from '../upstream/endpoints.js';

/** A penalty from which an endpoint is avoided while a healthier candidate remains. */
export const AVOID_PENALTY = 0.5;

/**
 * The endpoint's failure penalty in [0, 1]: the larger of its recent failure
 * share and `c / (c + 1)` for `c` faults in a row (one fault in a row: 0.5).
 * The streak term reacts at once when a pod with a long clean history turns
 * bad, which its failure share (diluted by that history) would not. A
 * half-open endpoint has no penalty: its probe must be able to go.
 */
export function failurePenalty(e: EndpointView): number {
  if (e.breaker === 'half-open') return 0;
  const c = e.consecutiveFailures;
  const streak = c > 0 ? c / (c + 1) : 0;
  return Math.max(e.failureRatio, streak);
}

/** Drops endpoints with a penalty of at least {@link AVOID_PENALTY} while one below it remains (no copy when none is dropped). */
export function preferHealthy(endpoints: readonly EndpointView[]): readonly EndpointView[] {
  let avoided = 0;
  for (let i = 0; i < endpoints.length; i++)
    if (failurePenalty(endpoints[i] as EndpointView) >= AVOID_PENALTY) avoided++;
  if (avoided === 0 || avoided === endpoints.length) return endpoints;
  return endpoints.filter((e) => failurePenalty(e) < AVOID_PENALTY);
}
