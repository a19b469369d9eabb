/** The built-in filters: `ready`, `not-draining`, `circuit-closed`, `not-saturated`. */
import { isSaturated } from './load.js';
import type { Filter, PluginDeps, SchedulingEndpoint } from './types.js';

/** `ready`: connected, reported ready, report fresh. */
export function createReadyFilter(): Filter {
  return {
    type: 'ready',
    filter(_req, endpoints) {
      let n = 0;
      for (let i = 0; i < endpoints.length; i++) if ((endpoints[i] as SchedulingEndpoint).ready) n++;
      // Most decisions drop nothing: no copy then.
      if (n === endpoints.length) return endpoints;
      const out = new Array<SchedulingEndpoint>(n);
      for (let i = 0, j = 0; i < endpoints.length; i++) {
        const e = endpoints[i] as SchedulingEndpoint;
        if (e.ready) out[j++] = e;
      }
      return out;
    },
  };
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
      let anyOpen = false;
      for (let i = 0; i < endpoints.length && !anyOpen; i++)
        anyOpen = (endpoints[i] as SchedulingEndpoint).breaker === 'open';
      if (!anyOpen) return endpoints;
      const open: SchedulingEndpoint[] = [];
      const kept: SchedulingEndpoint[] = [];
      for (const e of endpoints) {
        // A half-open endpoint is kept: the breaker itself lets exactly one probe through.
        (e.breaker === 'open' ? open : kept).push(e);
      }
      if (open.length === 0) return endpoints;
      const maxEjected = Math.floor((endpoints.length * deps.maxEjectionPercent) / 100);
      if (open.length <= maxEjected) return kept;
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
