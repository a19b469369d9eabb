/**
 * Finds or starts what serves a request, in order: this sidecar's memory
 * (L1), an identical request already running on the engine (coalescing),
 * Redis (L2), and otherwise a new engine run. A continuation of a stream
 * started elsewhere is never looked up, stored or coalesced: its output
 * depends on what that stream delivered.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Context } from '@opentelemetry/api';
import type { CancelSource } from '../../common/cancellation.js';
import { errors } from '../../common/errors.js';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { type CacheMode, responseCacheKey } from '../cache/cache-key.js';
import type { CachedResponse, ResponseCache } from '../cache/response-cache.js';
import type { EngineRunner } from './engine-run.js';
import { type ChunkSource, completedSource, type Flight, type FlightFollower } from './flight.js';

/** How a call was served (the value of `x-llmmesh-cache`). */
export type CacheResult = 'hit-l1' | 'hit-l2' | 'coalesced' | 'miss' | 'bypass' | 'uncacheable';

/** What serves one call. */
export interface Served {
  source: ChunkSource;
  result: CacheResult;
  /** The cache key, for cacheable requests. */
  key?: string;
  /** The call's place in a running flight. */
  follower?: FlightFollower;
}

/** The lookup of one sidecar. */
export interface Lookup {
  /**
   * Finds or starts what serves `req`; throws CANCELLED when the call's
   * `controller` aborts during the L2 lookup. A flight nobody else can join
   * shares the call's controller.
   */
  find(
    req: GenerateRequest__Output,
    mode: CacheMode,
    model: string,
    metadata: grpc.Metadata,
    controller: CancelSource,
    spanCtx: Context,
  ): Promise<Served>;
  /** Identical cacheable requests running on the engine now (one flight each). */
  readonly flights: number;
}

/** Creates the lookup over the response cache (absent when disabled) and the engine runner. */
export function createLookup(version: string, cache: ResponseCache | undefined, run: EngineRunner): Lookup {
  const flights = new Map<string, Flight>();

  const start = (
    req: GenerateRequest__Output,
    metadata: grpc.Metadata,
    key: string | undefined,
    spanCtx: Context,
    controller?: CancelSource,
  ): Flight => {
    const { flight, done } = run(req, metadata, key, spanCtx, controller);
    if (key) {
      flights.set(key, flight);
      void done.finally(() => {
        if (flights.get(key) === flight) flights.delete(key);
      });
    }
    return flight;
  };

  // A flight every follower has left is being aborted: never join it.
  const running = (key: string) => {
    const f = flights.get(key);
    return f && !f.signal.aborted ? f : undefined;
  };

  return {
    get flights() {
      return flights.size;
    },
    async find(req, mode, model, metadata, controller, spanCtx) {
      if (mode !== 'cacheable' || !cache || req.continuation) {
        // With the cache off, a deterministic request is served as if
        // bypassed. Nobody else can join this flight and nothing is stored:
        // it retains no chunk and is aborted with the call.
        const flight = start(req, metadata, undefined, spanCtx, controller);
        const result = mode === 'uncacheable' ? mode : 'bypass';
        return { source: flight, result, follower: flight.join() };
      }
      const signal = controller.signal;
      const key = responseCacheKey(model, version, req);
      const l1 = cache.getL1(key);
      if (l1) return { source: fromCached(l1), result: 'hit-l1', key };
      let flight = running(key);
      if (!flight) {
        const l2 = await cache.getL2(key);
        if (signal.aborted) throw errors.cancelled('cancelled during cache lookup');
        if (l2) return { source: fromCached(l2), result: 'hit-l2', key };
        // An identical call may have started while Redis answered.
        flight = running(key);
      }
      if (flight) return { source: flight, result: 'coalesced', key, follower: flight.join() };
      const started = start(req, metadata, key, spanCtx);
      return { source: started, result: 'miss', key, follower: started.join() };
    },
  };
}

function fromCached(hit: CachedResponse): ChunkSource {
  return completedSource(
    hit.texts.map((text, i) =>
      i === hit.texts.length - 1 ? { text, finishReason: hit.finishReason, usage: hit.usage } : { text },
    ),
  );
}
