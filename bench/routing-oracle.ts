/**
 * oracle: greedy with perfect state. The routing benchmark's reference
 * policy sees what no router can — every engine's true state at the instant
 * a request arrives, with no report lag: which prefix blocks its KV cache
 * holds, what its front end still has to take in, every request it is
 * prefilling, queueing or decoding, and its free KV blocks. It predicts, with the simulator's own
 * step-cost model (sim/cost-model.ts), the request's time to first token on
 * each engine, plus the time its uncached prefill takes from the requests
 * already there (weighted by half), and picks the engine where that sum is
 * least: the latency the request adds, its own and others'. Counting only its own TTFT
 * would be weaker: a cold prompt would go to whichever pod is emptiest at the
 * instant, replicating prefixes until they evict each other.
 *
 * It is greedy with perfect state, not a proven optimum: it decides one
 * request at a time, never delays or reorders one, and cannot foresee
 * arrivals. A better schedule may exist; the oracle shows what perfect
 * knowledge buys a one-at-a-time picker, a bound the router's profiles are
 * read against, not a ceiling.
 */
import type { StepCostConstants } from '../sim/cost-model.js';
import type { EngineInspection } from '../sim/engine.js';
import type { KvCacheManager } from '../sim/kv-cache.js';

/** A request the oracle placed on an engine and still follows. */
export interface OracleRequest {
  /** The sim's chained block hashes of the prompt's full blocks. */
  blockHashes: readonly number[];
  promptTokens: number;
  maxTokens: number;
  /** Prompt tokens the engine held for it when it was placed (set by {@link Oracle.pick}). */
  heldTokens?: number;
}

/** One engine as the oracle sees it. */
export interface OracleEngine {
  inspect(): EngineInspection;
  kvCache: KvCacheManager;
  /** The oracle's requests on this engine by id, while live. */
  requests: ReadonlyMap<string, OracleRequest>;
}

/** Limits and costs of the engines (the preset's). */
export interface OracleModel {
  stepCost: StepCostConstants;
  /** The front end's CPU per request before the engine sees it (ms). */
  frontEndRequestMs: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
}

/** What the oracle predicts for a request on one engine. */
export interface OraclePrediction {
  /** Predicted time to first token (ms). */
  ttftMs: number;
  /** Predicted delay the request's uncached prefill adds to the requests already on the engine (ms). */
  delayOthersMs: number;
  /** Prompt tokens the engine holds (cached, or being prefilled for a request ahead). */
  cachedTokens: number;
  /** Requests live on the engine. */
  live: number;
}

/** Picks an engine for each request from the engines' true state. */
export interface Oracle {
  /** Index of the engine for `request` (ties: most cached tokens, then fewest live requests, then `random`). */
  pick(request: OracleRequest): number;
  /** The prediction for `request` on engine `i` (for tests and reports). */
  predict(request: OracleRequest, i: number): OraclePrediction;
  /** `request`, placed on engine `i`, has its first token or ended: its prompt no longer waits for prefill. */
  prefilled(request: OracleRequest, i: number): void;
}

/** Predicted costs closer than this (ms) are a tie. */
const TIE_MS = 0.5;
/**
 * Weight of the delay a request's prefill adds to the others, against its own
 * TTFT (1 would be total latency added). Half: of the weights tried (0 to 4,
 * on a few seeds) the one that never fell behind the default profile; 0 (own
 * TTFT only) fell far behind on shared prefixes, 1 and more lost a hot-tenant
 * seed, and 1 did better on tenants at full KV (316 vs 295 req/s, seed 42).
 */
export const OTHERS_WEIGHT = 0.5;

/** Creates the oracle over `engines`. */
export function createOracle(
  engines: readonly OracleEngine[],
  model: OracleModel,
  random: () => number,
  othersWeight = OTHERS_WEIGHT,
): Oracle {
  const c = model.stepCost;
  const blockSize = engines[0]?.kvCache.blockSize ?? 16;
  const budget = model.maxNumBatchedTokens;

  // Per engine, the prompt blocks of requests placed there and not yet prefilled (block hash → requests).
  const pendingBlocks = engines.map(() => new Map<number, number>());

  /** Leading blocks of `hashes` the engine holds: cached, or computed for a request ahead. */
  const heldBlocks = (i: number, hashes: readonly number[]) => {
    const kv = (engines[i] as OracleEngine).kvCache;
    const pending = pendingBlocks[i] as Map<number, number>;
    let n = kv.findCachedPrefix(hashes, hashes.length).length;
    while (n < hashes.length) {
      const h = hashes[n] as number;
      if (!pending.has(h) && kv.findCachedPrefix([h], 1).length === 0) break;
      n++;
    }
    return n;
  };

  const predict = (request: OracleRequest, i: number): OraclePrediction => {
    const e = engines[i] as OracleEngine;
    const state = e.inspect();
    // Prefill still ahead of the request (tokens and their attention positions), decodes sharing the steps.
    let aheadTokens = 0;
    let aheadPositions = 0;
    let decoding = 0;
    let decodeContext = 0;
    let aheadBlocks = 0;
    let growth = 0;
    // Running requests: when each ends (decode steps left) and the blocks it frees.
    const ending: Array<{ steps: number; blocks: number }> = [];
    for (const r of state.requests) {
      const own = e.requests.get(r.id);
      if (r.status === 'running' && r.computedTokens >= r.promptTokens) {
        decoding++;
        decodeContext += r.computedTokens;
        const left = Math.max(0, (own?.maxTokens ?? r.outputTokens) - r.outputTokens);
        const blocks = Math.ceil((r.promptTokens + r.outputTokens) / blockSize);
        ending.push({ steps: left, blocks });
        // Blocks it still takes as it decodes to the end.
        growth += Math.ceil((r.promptTokens + r.outputTokens + left) / blockSize) - blocks;
        continue;
      }
      const done =
        r.status === 'running' ? r.computedTokens : Math.max(r.computedTokens, own?.heldTokens ?? 0);
      const left = Math.max(0, r.promptTokens - done);
      if (r.status !== 'running') aheadBlocks += Math.ceil(left / blockSize);
      aheadTokens += left;
      aheadPositions += left * done + (left * (left - 1)) / 2;
    }
    const cachedBlocks = Math.min(
      heldBlocks(i, request.blockHashes),
      Math.floor((request.promptTokens - 1) / blockSize),
    );
    const cached = cachedBlocks * blockSize;
    const own = request.promptTokens - cached;
    const ownPositions = own * cached + (own * (own - 1)) / 2;
    const stepFixed =
      c.baseMs + c.decodeMsPerSequence * decoding + (c.contextMsPerThousandTokens * decodeContext) / 1000;
    const room = Math.max(1, budget - decoding);
    const prefillMs = (tokens: number, positions: number) =>
      c.prefillMsPerToken * tokens + (c.attentionMsPerMillionPositions * positions) / 1e6;
    const aheadMs = Math.ceil(aheadTokens / room) * stepFixed + prefillMs(aheadTokens, aheadPositions);
    const allMs =
      Math.max(1, Math.ceil((aheadTokens + own) / room)) * stepFixed +
      prefillMs(aheadTokens + own, aheadPositions + ownPositions);
    const ownMs = allMs - aheadMs;
    // The front end takes the request in after what it has queued; the GPU works meanwhile.
    const intakeMs = state.frontEndBacklogMs + model.frontEndRequestMs;
    let ttftMs = Math.max(intakeMs, aheadMs) + ownMs;
    // KV: when the blocks the request needs, beyond those the decoding requests
    // still take as they grow, are not free, it waits for running requests to finish.
    const need = Math.ceil((request.promptTokens + 1) / blockSize) - cachedBlocks + aheadBlocks;
    let deficit = need + growth - e.kvCache.numFreeBlocks();
    if (deficit > 0) {
      ending.sort((a, b) => a.steps - b.steps);
      let waitSteps = Number.POSITIVE_INFINITY;
      for (const x of ending) {
        deficit -= x.blocks;
        if (deficit <= 0) {
          waitSteps = x.steps;
          break;
        }
      }
      ttftMs += Number.isFinite(waitSteps) ? waitSteps * stepFixed : 10_000;
    }
    // Over max_num_seqs: waits for one to finish.
    if (state.requests.length >= model.maxNumSeqs)
      ttftMs += stepFixed * Math.min(...ending.map((x) => x.steps), 1000);
    // Every request already there (prefilling or decoding) waits while the uncached prompt is prefilled.
    const delayOthersMs = state.requests.length * prefillMs(own, ownPositions);
    return { ttftMs, delayOthersMs, cachedTokens: cached, live: state.requests.length };
  };

  return {
    predict,
    pick(request) {
      const predictions = engines.map((_, i) => predict(request, i));
      const costs = predictions.map((p) => p.ttftMs + othersWeight * p.delayOthersMs);
      const least = Math.min(...costs);
      let best: number[] = [];
      let bestCached = -1;
      let bestLive = Number.POSITIVE_INFINITY;
      predictions.forEach((p, i) => {
        if ((costs[i] as number) > least + TIE_MS) return;
        if (p.cachedTokens > bestCached || (p.cachedTokens === bestCached && p.live < bestLive)) {
          best = [i];
          bestCached = p.cachedTokens;
          bestLive = p.live;
        } else if (p.cachedTokens === bestCached && p.live === bestLive) best.push(i);
      });
      const picked = best[Math.floor(random() * best.length)] ?? -1;
      if (picked >= 0) {
        request.heldTokens = (predictions[picked] as OraclePrediction).cachedTokens;
        const pending = pendingBlocks[picked] as Map<number, number>;
        for (const h of request.blockHashes) pending.set(h, (pending.get(h) ?? 0) + 1);
      }
      return picked;
    },
    prefilled(request, i) {
      const pending = pendingBlocks[i] as Map<number, number>;
      for (const h of request.blockHashes) {
        const n = (pending.get(h) ?? 0) - 1;
        if (n > 0) pending.set(h, n);
        else pending.delete(h);
      }
    },
  };
}
