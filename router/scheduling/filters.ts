/** The built-in filters: `ready`, `not-draining`, `circuit-closed`, `not-saturated`, `below-limit`. */
import { AVOID_PENALTY, failurePenalty } from './health.js';
import { atKnownLimit, isSaturated } from './load.js';
import type { Filter, PluginDeps, SchedulingEndpoint, SchedulingRequest } from './types.js';

/**
 * `ready`: connected, reported ready, report fresh. When none of those is left
 * to try (none, or all already tried by this request), endpoints whose last
 * report said ready but is late ({@link SchedulingEndpoint.stale}) stay too:
 * a late report makes an endpoint a worse choice, never leaves a request
 * with none.
 */
export function createReadyFilter(): Filter {
  return {
    type: 'ready',
    filter(req, endpoints) {
      let n = 0;
      let stale = 0;
      for (let i = 0; i < endpoints.length; i++) {
        const e = endpoints[i] as SchedulingEndpoint;
        if (e.ready) n++;
        else if (e.stale === true) stale++;
      }
      // Most decisions drop nothing: no copy then.
      if (n === endpoints.length) return endpoints;
      const fallback = stale > 0 && !anyToTry(req, endpoints, n);
      const out = new Array<SchedulingEndpoint>(fallback ? n + stale : n);
      for (let i = 0, j = 0; i < endpoints.length; i++) {
        const e = endpoints[i] as SchedulingEndpoint;
        if (e.ready || (fallback && e.stale === true)) out[j++] = e;
      }
      return out;
    },
  };
}

/** True when one of the `ready` endpoints (`n` of them) is not excluded by the request. */
function anyToTry(req: SchedulingRequest, endpoints: readonly SchedulingEndpoint[], n: number): boolean {
  if (n === 0) return false;
  if (req.exclude.size === 0) return true;
  for (let i = 0; i < endpoints.length; i++) {
    const e = endpoints[i] as SchedulingEndpoint;
    if (e.ready && !req.exclude.has(e.address)) return true;
  }
  return false;
}

/** `not-draining`: drops endpoints that are shutting down. */
export function createNotDrainingFilter(): Filter {
  return {
    type: 'not-draining',
    filter(_req, endpoints) {
      for (let i = 0; i < endpoints.length; i++)
        if ((endpoints[i] as SchedulingEndpoint).draining) return endpoints.filter((e) => !e.draining);
      return endpoints;
    },
  };
}

/**
 * `circuit-closed`: drops endpoints whose breaker is open (or half-open with
 * its one probe already in flight), but never more than `maxEjectionPercent`
 * of the endpoints it is given: when more are open, a random choice of them
 * stays, so requests still try somewhere rather than fail fast forever.
 */
export function createCircuitClosedFilter(deps: PluginDeps): Filter {
  return {
    type: 'circuit-closed',
    ejectsOpenBreakers: true,
    filter(_req, endpoints) {
      let nOpen = 0;
      for (let i = 0; i < endpoints.length; i++)
        if ((endpoints[i] as SchedulingEndpoint).breaker === 'open') nOpen++;
      if (nOpen === 0) return endpoints;
      const maxEjected = Math.floor((endpoints.length * deps.maxEjectionPercent) / 100);
      if (nOpen <= maxEjected) {
        // The common case: every open one goes (one copy, no lists of the open ones).
        const kept = new Array<SchedulingEndpoint>(endpoints.length - nOpen);
        for (let i = 0, j = 0; i < endpoints.length; i++) {
          const e = endpoints[i] as SchedulingEndpoint;
          if (e.breaker !== 'open') kept[j++] = e;
        }
        return kept;
      }
      const open: SchedulingEndpoint[] = [];
      const kept: SchedulingEndpoint[] = [];
      for (const e of endpoints) {
        // A half-open endpoint is kept: the breaker itself lets exactly one probe through.
        (e.breaker === 'open' ? open : kept).push(e);
      }
      // Partial Fisher–Yates: keep (open - maxEjected) of the open ones at random.
      const keep = open.length - maxEjected;
      for (let i = 0; i < keep; i++) {
        const j = i + Math.floor(deps.random() * (open.length - i));
        const t = open[i] as SchedulingEndpoint;
        open[i] = open[j] as SchedulingEndpoint;
        open[j] = t;
        kept.push(open[i] as SchedulingEndpoint);
      }
      return kept;
    },
  };
}

/**
 * `not-saturated`: drops endpoints whose queue reached the saturation depth,
 * unless all have (then admission control decides whether to wait). This is
 * what keeps cache affinity from piling work onto a saturated pod.
 */
export function createNotSaturatedFilter(deps: PluginDeps): Filter {
  return {
    type: 'not-saturated',
    filter(_req, endpoints) {
      const out = endpoints.filter((e) => !isSaturated(e, deps.saturationQueueDepth));
      return out.length > 0 ? out : endpoints;
    },
  };
}

/**
 * `below-limit`: drops endpoints at a limit they are known to have
 * ({@link atKnownLimit}: a published `max_num_seqs`, or one the engine
 * showed, counting this router's streams) while another candidate is below
 * its own. Admission lets a request in when one pod has a free slot; this
 * makes the pick take that pod, not one whose engine would queue it. Load
 * scorers alone can rank the full pod first when a scrape of the other
 * (up to a probe interval old) caught a request between two engine steps.
 *
 * A pod with room counts only if the request may go there: not already
 * tried by it, not avoided for recent failures (the health step would drop
 * it, leaving only full pods or none), and not saturated by what its engine
 * shows (a queue lasting a second, a full KV cache): below a limit by the
 * router's count, such a pod still queues, and a limit learned from what
 * runs is only as good as the workload it was learned on.
 *
 * A full pod that holds a prefix of the prompt stays, and the scorers
 * weigh its cache against its load: moving a tenant's requests off its pod
 * whenever that pod is at its limit makes another pod prefill the prefix
 * and evict others' to hold it (measured: bench/scenarios/routing.ts, one
 * rate step of goodput lost on full-KV tenants and on chat sessions). When
 * every candidate is full, all stay (admission holds requests while they
 * are).
 */
export function createBelowLimitFilter(deps: PluginDeps): Filter {
  return {
    type: 'below-limit',
    filter(req, endpoints) {
      let drop = 0;
      let room = false;
      for (let i = 0; i < endpoints.length; i++) {
        const e = endpoints[i] as SchedulingEndpoint;
        if (atKnownLimit(e)) {
          if (!holdsPrefix(req, e)) drop++;
        } else if (
          !room &&
          !req.exclude.has(e.address) &&
          failurePenalty(e) < AVOID_PENALTY &&
          !isSaturated(e, deps.saturationQueueDepth)
        )
          room = true;
      }
      // Most decisions drop nothing: no copy then.
      if (drop === 0 || !room) return endpoints;
      const kept = new Array<SchedulingEndpoint>(endpoints.length - drop);
      for (let i = 0, j = 0; i < endpoints.length; i++) {
        const e = endpoints[i] as SchedulingEndpoint;
        if (!atKnownLimit(e) || holdsPrefix(req, e)) kept[j++] = e;
      }
      return kept;
    },
  };
}

/** True when the endpoint's prefix index holds at least the first block of the request's prompt. */
function holdsPrefix(req: SchedulingRequest, e: SchedulingEndpoint): boolean {
  const index = e.prefixIndex;
  if (index.size === 0 || index.blockChars === 0) return false;
  const hashes = req.prefixHashes(index.blockChars);
  return hashes.length > 0 && index.matchLength(hashes) > 0;
}
