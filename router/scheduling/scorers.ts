/**
 * The built-in scorers. Each returns scores in [0, 1] aligned with the
 * endpoints it is given; higher is better.
 */
import {
  expNegUtilizationAt,
  KV_FULL,
  type LoadEstimate,
  type PoolLoad,
  poolLoad,
  RECENT_TAU_MS,
} from './load.js';
import { zeroScores } from './scores.js';
import type { PluginDeps, SchedulingEndpoint, Scorer } from './types.js';

/** Characters per prompt token (as the sidecar's prefix index assumes). */
const CHARS_PER_TOKEN = 4;

/**
 * `least-request`: e^−utilization, where utilization is the endpoint's load
 * relative to its knee (outstanding requests / the concurrency at which it
 * starts to queue, or KV usage / {@link KV_FULL}, whichever is higher).
 *
 * Scores are absolute, not normalized over the candidates, and in units of
 * the knee: a pod at 10 % of its knee scores 0.90, one at 70 % scores 0.50,
 * whatever its `max_num_seqs`. They never reach 0, so pods past their knee
 * still rank by how far past they are instead of tying. Between pods whose
 * loads differ by less than the prefix balance thresholds, a cached prefix
 * (worth up to its scorer's weight) outweighs the load difference; past
 * them, `prefix-cache` stops counting the busier pod's cache and load decides.
 */
export function createLeastRequestScorer(deps: PluginDeps): Scorer {
  const now = deps.now ?? Date.now;
  return {
    type: 'least-request',
    score: (_req, endpoints) => {
      const t = now();
      const { loads } = poolLoad(endpoints);
      const out = zeroScores(endpoints.length);
      for (let i = 0; i < out.length; i++)
        out[i] = expNegUtilizationAt(endpoints[i] as SchedulingEndpoint, loads[i] as LoadEstimate, t);
      return out;
    },
  };
}

/**
 * `queue-depth`: 1 − queue / knee, where the queue is what waits at the
 * endpoint (reported by its engine or sidecar, or projected past its knee by
 * this router's assignments since the last report); 1 while nothing waits.
 */
export function createQueueDepthScorer(): Scorer {
  return {
    type: 'queue-depth',
    score(_req, endpoints) {
      const { loads } = poolLoad(endpoints);
      const out = zeroScores(endpoints.length);
      for (let i = 0; i < out.length; i++) {
        const l = loads[i] as LoadEstimate;
        out[i] = 1 - Math.min(1, l.queue / l.knee);
      }
      return out;
    },
  };
}

/** KV cache usage below which `kv-cache` scores every endpoint alike (free blocks there cost no latency). */
export const KV_COMFORTABLE = 0.5;

/**
 * `kv-cache`: room left in the KV cache before the engine must preempt or
 * queue: 1 up to {@link KV_COMFORTABLE} usage, falling to 0 at {@link KV_FULL}
 * (usage counts the prompts this router sent since the report). Below that,
 * differences in usage are a stale scrape's noise, not load, and must not
 * outvote the load scorers.
 */
export function createKvCacheScorer(): Scorer {
  return {
    type: 'kv-cache',
    score(_req, endpoints) {
      const { loads } = poolLoad(endpoints);
      const out = zeroScores(endpoints.length);
      for (let i = 0; i < out.length; i++) {
        const kv = (loads[i] as LoadEstimate).kvUsage;
        out[i] = 1 - Math.min(1, Math.max(0, (kv - KV_COMFORTABLE) / (KV_FULL - KV_COMFORTABLE)));
      }
      return out;
    },
  };
}

/** When a prefix's pod counts as markedly busier than the least-loaded candidate (see {@link createPrefixCacheScorer}). */
export interface PrefixBalance {
  /** Utilization difference (in knees) above which the busier pod's cache stops counting. */
  readonly absThreshold: number;
  /** ... and the ratio of utilizations above which it does. */
  readonly relThreshold: number;
  /**
   * ... and the difference in requests it must exceed (default
   * {@link DEFAULT_PREFIX_BALANCE}'s): on pods with small knees a share of a
   * knee is a request or two, arrival timing's noise (two requests of one
   * tenant at once), and a prefix moved for it pays a whole prefill where
   * it would not have queued.
   */
  readonly minRequests?: number;
  /**
   * Prompt tokens whose prefill costs a pod about as much as serving one more
   * request (default {@link DEFAULT_PREFIX_BALANCE}'s; 0: a move costs
   * nothing). A prefix leaves its pod only when that pod's excess of
   * requests over the least-loaded one outweighs the prefill the move costs:
   * the cached prompt tokens over this, times 1 + {@link MOVE_DELAY_SHARE} ×
   * the requests at the least-loaded pod, which the prefill delays. So a
   * long prefix moves rarely once pods are busy, and a short one sooner.
   */
  readonly prefillTokensPerRequest?: number;
}

/**
 * Defaults of {@link PrefixBalance}: 0.3 knee apart, twice as busy, more than
 * 2 requests more, and 1,000 prompt tokens of prefill per request (an 8B
 * model on one H100 prefills 1,000 tokens in about 25 ms, what one more
 * cached request of a short answer costs its front end and decode steps).
 */
export const DEFAULT_PREFIX_BALANCE: PrefixBalance = Object.freeze({
  absThreshold: 0.3,
  relThreshold: 2,
  minRequests: 2,
  prefillTokensPerRequest: 1_000,
});

/**
 * Share of the requests at the pod a prefix would move to that count as
 * delayed by the prefill the move costs there (its own wait counts whole):
 * every request running there shares the steps that compute the prompt.
 * Half, as the routing benchmark's oracle weighs the same delay.
 */
export const MOVE_DELAY_SHARE = 0.5;

/**
 * Whether endpoint `i` of `pool` is markedly busier than the least-loaded
 * candidate (the prefix balance thresholds): busier in knees (`absThreshold`,
 * `relThreshold`), by more than `minRequests` requests, and, when leaving it
 * means prefilling `savedTokens` prompt tokens again elsewhere, by more
 * requests than that prefill costs: `savedTokens / prefillTokensPerRequest`
 * for the request itself, and as much again for every
 * {@link MOVE_DELAY_SHARE} of a request already at the least-loaded pod.
 */
function markedlyBusier(pool: PoolLoad, i: number, b: PrefixBalance, savedTokens = 0): boolean {
  const l = pool.loads[i] as LoadEstimate;
  const u = l.utilization;
  const minU = pool.minUtilization;
  if (!(u - minU > b.absThreshold && u > b.relThreshold * minU)) return false;
  const excess = l.outstanding - pool.minOutstanding;
  if (excess <= (b.minRequests ?? (DEFAULT_PREFIX_BALANCE.minRequests as number))) return false;
  const perRequest = b.prefillTokensPerRequest ?? (DEFAULT_PREFIX_BALANCE.prefillTokensPerRequest as number);
  if (perRequest <= 0 || savedTokens <= 0) return true;
  return excess > (savedTokens / perRequest) * (1 + MOVE_DELAY_SHARE * pool.minOutstanding);
}

/**
 * `prefix-cache`: the share of the prompt's blocks the endpoint holds as a
 * cached prefix, from its prefix index (the router's copy of the sidecar's
 * index, kept by load-report deltas). Hashes follow common/prefix-hash.ts at
 * the endpoint's own block size.
 *
 * A hot prefix spreads instead of queueing: a pod holding the prefix scores
 * nothing for it once it is markedly busier than the least-loaded candidate
 * (utilization higher by more than `absThreshold` knees *and* more than
 * `relThreshold` times, *and* more than `minRequests` requests more, *and*
 * more requests more than prefilling the prefix elsewhere costs, see
 * {@link PrefixBalance.prefillTokensPerRequest}). The request then goes to another pod holding the
 * prefix that is not that busy, or, when there is none, where load sends it,
 * and that pod caches the prefix too: a second replica, then a third, as long
 * as demand outgrows them. A cold or rare prefix, whose pod is not busier
 * than the rest, still goes where its cache is.
 */
export function createPrefixCacheScorer(deps: PluginDeps): Scorer {
  const balance = deps.prefixBalance ?? DEFAULT_PREFIX_BALANCE;
  return {
    type: 'prefix-cache',
    score(req, endpoints) {
      const out = zeroScores(endpoints.length);
      // Prompt characters each endpoint holds as a cached prefix.
      const held = zeroScores(endpoints.length);
      let any = false;
      // Pods of a pool share a block size: hash lookups once per size, not per pod.
      let blockChars = 0;
      let hashes: readonly number[] = [];
      for (let i = 0; i < endpoints.length; i++) {
        const index = (endpoints[i] as SchedulingEndpoint).prefixIndex;
        if (index.size === 0 || index.blockChars === 0) continue;
        if (index.blockChars !== blockChars) {
          blockChars = index.blockChars;
          hashes = req.prefixHashes(blockChars);
        }
        if (hashes.length === 0) continue;
        const blocks = index.matchLength(hashes);
        out[i] = blocks / hashes.length;
        held[i] = blocks * blockChars;
        if (blocks > 0) any = true;
      }
      if (!any || endpoints.length < 2) return out;
      // Load without the just-sent boost: a burst of a few requests is no
      // reason to pay for a prefix's prefill a second time.
      const pool = poolLoad(endpoints);
      for (let i = 0; i < endpoints.length; i++) {
        if (
          (out[i] as number) !== 0 &&
          markedlyBusier(pool, i, balance, (held[i] as number) / CHARS_PER_TOKEN)
        )
          out[i] = 0;
      }
      return out;
    },
  };
}

/**
 * New prefixes `prefix-spread` looks for in the pods' indexes at most (the
 * newest): each is found on the next decision after its pod reports it, so
 * a few cover a burst, and the lookups a decision costs stay bounded.
 */
const PENDING_MAX = 4;

/**
 * `prefix-spread`: for a prompt that no candidate holds any block of (a new
 * prefix: a tenant's first request, a new conversation), where its prefill
 * delays the fewest requests. A pod's share of the requests to come is its
 * share of the prefixes (they settle where they are first sent, and
 * `prefix-cache` keeps them there), so its cost is the prompt characters its
 * prefix index holds times the prefill it would run: this prompt, and the
 * new prefixes this scorer sent there lately (found in its index on a later
 * decision), each counted e^(−age / {@link RECENT_TAU_MS}) as still in
 * prefill: a warm request that arrives meanwhile waits for them all. The
 * score is 1 − cost / the highest cost. So a new prefix goes where fewer
 * prefixes live, the way SGLang sends an unmatched prompt to its smallest
 * radix tree, and not onto a pod still prefilling another, rather than by
 * the load of the instant alone: during a burst of cold prompts that load is
 * one prefill backlog against another, and a pod that took more prefixes
 * then keeps their traffic for good. When some candidate holds part of the
 * prompt, every endpoint scores 0.
 */
export function createPrefixSpreadScorer(deps: PluginDeps): Scorer {
  const now = deps.now ?? Date.now;
  const first: number[] = [0];
  type Pending = { hash: number; blockChars: number; chars: number; at: number };
  // New prefixes not yet seen in an index: first block's hash, prompt characters, when.
  const pending: Pending[] = [];
  // Prompt characters of new prefixes per address, decaying: `chars` as of `at`.
  const prefilling = new Map<string, { chars: number; at: number }>();
  const decay = (age: number) => Math.exp(-Math.max(0, age) / RECENT_TAU_MS);
  return {
    type: 'prefix-spread',
    score(req, endpoints) {
      const out = zeroScores(endpoints.length);
      let blockChars = 0;
      let chars = 0;
      for (let i = 0; i < endpoints.length; i++) {
        const index = (endpoints[i] as SchedulingEndpoint).prefixIndex;
        if (index.size === 0 || index.blockChars === 0) continue;
        if (index.blockChars !== blockChars) {
          blockChars = index.blockChars;
          const hashes = req.prefixHashes(blockChars);
          if (hashes.length === 0) return out.fill(0);
          first[0] = hashes[0] as number;
          chars = Math.max(req.promptChars ?? 0, hashes.length * blockChars);
        }
        // A chained hash: no first block, no block of the prompt.
        if (index.matchLength(first) > 0) return out.fill(0);
        out[i] = index.size * index.blockChars;
      }
      if (blockChars === 0) return out;
      const t = now();
      // Where the new prefixes went: the pod whose index now holds one.
      for (let k = pending.length - 1; k >= 0; k--) {
        const p = pending[k] as Pending;
        let found = t - p.at > 5 * RECENT_TAU_MS;
        for (let i = 0; i < endpoints.length && !found; i++) {
          const e = endpoints[i] as SchedulingEndpoint;
          if (e.prefixIndex.blockChars !== p.blockChars || !e.prefixIndex.has(p.hash)) continue;
          const was = prefilling.get(e.address);
          if (!was && prefilling.size > 100_000) prefilling.clear();
          const c = (was ? was.chars * decay(t - was.at) : 0) + p.chars * decay(t - p.at);
          prefilling.set(e.address, { chars: c, at: t });
          found = true;
        }
        if (found) pending.splice(k, 1);
      }
      let most = 0;
      for (let i = 0; i < out.length; i++) {
        const was = prefilling.get((endpoints[i] as SchedulingEndpoint).address);
        out[i] = (out[i] as number) * (chars + (was ? was.chars * decay(t - was.at) : 0));
        most = Math.max(most, out[i] as number);
      }
      for (let i = 0; i < out.length; i++) out[i] = most > 0 ? 1 - (out[i] as number) / most : 0;
      if (pending.length >= PENDING_MAX) pending.shift();
      pending.push({ hash: first[0] as number, blockChars, chars, at: t });
      return out;
    },
  };
}

/**
 * `session-affinity`: for a request with a session key, 1 for the endpoint
 * that rendezvous hashing assigns the key among the candidates, 0 for the
 * rest. The key keeps its pod while that pod stays a candidate and is not
 * markedly busier than the least-loaded one (the prefix balance thresholds);
 * when it drops out, only its keys move. Without a session key every
 * endpoint scores 0.
 */
export function createSessionAffinityScorer(deps: PluginDeps): Scorer {
  const balance = deps.prefixBalance ?? DEFAULT_PREFIX_BALANCE;
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
      const out = zeroScores(endpoints.length);
      if (!req.sessionKey || endpoints.length === 0) return out;
      const k = hash32(req.sessionKey, 0x85ebca6b);
      let best = -1;
      let bestWeight = -1;
      for (let i = 0; i < endpoints.length; i++) {
        const w = fmix32(k ^ addressHash((endpoints[i] as SchedulingEndpoint).address));
        if (w > bestWeight) {
          bestWeight = w;
          best = i;
        }
      }
      out[best] = 1;
      // Like a hot prefix, a session leaves a pod markedly busier than the
      // least-loaded candidate (the same thresholds), and only then.
      if (markedlyBusier(poolLoad(endpoints), best, balance)) out[best] = 0;
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
      const out = zeroScores(endpoints.length);
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
