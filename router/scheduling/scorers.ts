/**
 * The built-in scorers. Each returns scores in [0, 1] aligned with the
 * endpoints it is given; higher is better.
 */
import type { EndpointView } from '../upstream/endpoints.js';
import { endpointLoad, queueDepth } from './load.js';
import type { PluginDeps, Scorer } from './types.js';

const measure = (endpoints: readonly EndpointView[], f: (e: EndpointView) => number) => {
  const v = new Float64Array(endpoints.length);
  for (let i = 0; i < endpoints.length; i++) v[i] = f(endpoints[i] as EndpointView);
  return v;
};

/** Capacity assumed for an endpoint that has not reported one (vLLM's default `max_num_seqs`). */
const DEFAULT_CAPACITY = 256;

/**
 * `least-request`: the free share of the endpoint's capacity, 1 − outstanding
 * requests (router streams, sidecar in flight and queued) / `max_num_seqs`.
 *
 * Load scores are absolute, not normalized over the candidates: a pod with
 * one more stream than its peers loses a sliver of score, not all of it, so
 * cache and session affinity hold until load really differs (and the
 * `not-saturated` filter takes a pod out before work piles up on it).
 */
export function createLeastRequestScorer(): Scorer {
  return {
    type: 'least-request',
    score: (_req, endpoints) =>
      measure(endpoints, (e) => {
        const capacity = e.report?.capacity?.maxNumSeqs || DEFAULT_CAPACITY;
        return 1 - Math.min(1, endpointLoad(e) / capacity);
      }),
  };
}

/** `queue-depth`: 1 − queue (sidecar queue + engine waiting) / the saturation depth; 0 once saturated. */
export function createQueueDepthScorer(deps: PluginDeps): Scorer {
  return {
    type: 'queue-depth',
    score: (_req, endpoints) =>
      measure(endpoints, (e) => 1 - Math.min(1, queueDepth(e) / deps.saturationQueueDepth)),
  };
}

/** `kv-cache`: most free KV cache (1 − `kv_cache_usage_perc`). */
export function createKvCacheScorer(): Scorer {
  return {
    type: 'kv-cache',
    score: (_req, endpoints) =>
      measure(endpoints, (e) => {
        const used = e.report?.engine?.kvCacheUsagePerc ?? 0;
        return Math.min(1, Math.max(0, 1 - used));
      }),
  };
}

/**
 * `prefix-cache`: the share of the prompt's blocks the endpoint holds as a
 * cached prefix, from its prefix index (the router's copy of the sidecar's
 * index, kept by load-report deltas). Hashes follow common/prefix-hash.ts at
 * the endpoint's own block size.
 */
export function createPrefixCacheScorer(): Scorer {
  return {
    type: 'prefix-cache',
    score(req, endpoints) {
      const out = new Float64Array(endpoints.length);
      for (let i = 0; i < endpoints.length; i++) {
        const index = (endpoints[i] as EndpointView).prefixIndex;
        if (index.size === 0 || index.blockChars === 0) continue;
        const hashes = req.prefixHashes(index.blockChars);
        if (hashes.length === 0) continue;
        out[i] = index.matchLength(hashes) / hashes.length;
      }
      return out;
    },
  };
}

/**
 * `session-affinity`: for a request with a session key, 1 for the endpoint
 * that rendezvous hashing assigns the key among the candidates, 0 for the
 * rest. The key keeps its pod while that pod stays a candidate; when it drops
 * out, only its keys move. Without a session key every endpoint scores 0.
 */
export function createSessionAffinityScorer(): Scorer {
  const addressHashes = new Map<string, number>();
  const addressHash = (a: string) => {
    let h = addressHashes.get(a);
    if (h === undefined) {
      if (addressHashes.size > 100_000) addressHashes.clear();
      h = hash32(a, 0x9e3779b9);
      addressHashes.set(a, h);
    }
    return h;
  };
  return {
    type: 'session-affinity',
    score(req, endpoints) {
      const out = new Float64Array(endpoints.length);
      if (!req.sessionKey || endpoints.length === 0) return out;
      const k = hash32(req.sessionKey, 0x85ebca6b);
      let best = -1;
      let bestWeight = -1;
      for (let i = 0; i < endpoints.length; i++) {
        const w = fmix32(k ^ addressHash((endpoints[i] as EndpointView).address));
        if (w > bestWeight) {
          bestWeight = w;
          best = i;
        }
      }
      out[best] = 1;
      return out;
    },
  };
}

/** `round-robin`: 1 for the endpoint whose turn it is, 0 for the rest; the turn advances per request. */
export function createRoundRobinScorer(): Scorer {
  let turn = 0;
  return {
    type: 'round-robin',
    score(_req, endpoints) {
      const out = new Float64Array(endpoints.length);
      if (endpoints.length > 0) out[turn++ % endpoints.length] = 1;
      return out;
    },
  };
}

/** FNV-1a over UTF-16 code units, finished with fmix32. */
export function hash32(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** MurmurHash3's 32-bit finalizer: full avalanche. */
function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
