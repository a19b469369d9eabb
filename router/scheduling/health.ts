/**
 * Recent failures make an endpoint worse, in every profile. An endpoint that
 * fails fast has no load, so load scorers alone would rank it best and send
 * it more of the traffic it fails.
 *
 * Two steps, after the filters and the exclusion of endpoints already tried:
 * 1. {@link preferHealthy}: endpoints with a penalty of at least
 *    {@link AVOID_PENALTY} (the last attempt failed, or half the recent ones
 *    did) are dropped while a healthier candidate remains. This works whatever
 *    the picker (`random` and `round-robin` ignore scores), and never empties
 *    the set: a pool where all fail still tries its least bad endpoint.
 * 2. Each candidate's weighted total is multiplied by `1 − penalty`, so a
 *    smaller failure share still costs an endpoint some of its traffic.
 *
 * One attempt at a time: a closed endpoint with no stream in flight from this
 * router carries no penalty. With winner-take-all pickers any penalty would
 * otherwise starve a failing endpoint of traffic, and so its breaker of the
 * very faults it counts: the endpoint would be avoided but never ejected, and
 * a pod with one transient fault would sit idle until the fault left the
 * window. So a failing endpoint gets one attempt at a time, never a flood:
 * fast failures in a row reach `breaker.consecutive_failures` within a few
 * round trips and open the breaker, and a recovered pod heals with its next
 * success. An open endpoint (kept in the pool by the ejection cap) gets no
 * such allowance: it was judged, and half-open probes bring it back.
 *
 * Penalties fade as failures leave the breaker's window (`breaker.window_ms`).
 */
import type { SchedulingEndpoint } from './types.js';

/** A penalty from which an endpoint is avoided while a healthier candidate remains. */
export const AVOID_PENALTY = 0.5;

/**
 * The endpoint's failure penalty in [0, 1]: the larger of its recent failure
 * share and `c / (c + 1)` for `c` faults in a row (one fault: 0.5). The streak
 * term reacts at once when a pod with a long clean history turns bad, which
 * its failure share (diluted by that history) would not.
 *
 * None for a half-open endpoint (its probe must be able to go), nor for a
 * closed one with nothing in flight from this router (one attempt at a time).
 */
export function failurePenalty(e: SchedulingEndpoint): number {
  if (e.breaker === 'half-open') return 0;
  if (e.breaker === 'closed' && e.routerInFlight === 0) return 0;
  const c = e.consecutiveFailures;
  return Math.max(e.failureRatio, c > 0 ? c / (c + 1) : 0);
}

/** Drops endpoints with a penalty of at least {@link AVOID_PENALTY} while one below it remains (no copy when none is dropped). */
export function preferHealthy<E extends SchedulingEndpoint>(endpoints: readonly E[]): readonly E[] {
  let avoided = 0;
  for (let i = 0; i < endpoints.length; i++)
    if (failurePenalty(endpoints[i] as E) >= AVOID_PENALTY) avoided++;
  if (avoided === 0 || avoided === endpoints.length) return endpoints;
  // One list of the final size (`filter` grows its result as it goes).
  const kept = new Array<E>(endpoints.length - avoided);
  for (let i = 0, j = 0; i < endpoints.length; i++) {
    const e = endpoints[i] as E;
    if (failurePenalty(e) < AVOID_PENALTY) kept[j++] = e;
  }
  return kept;
}
