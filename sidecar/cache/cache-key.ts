/**
 * Which requests the response cache may answer, and their keys. Only
 * deterministic requests are cached: temperature 0 (greedy decoding) or a
 * fixed seed (vLLM seeds the request's own sampler, so the same request gives
 * the same tokens). The key hashes the model, the version and the canonical
 * request (prompt or messages and every sampling parameter); the request id
 * and routing hints are not part of it.
 */
import { createHash } from 'node:crypto';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';

/** Request metadata key a client sets to `bypass` to skip the response cache. */
export const CACHE_CONTROL_KEY = 'x-llmmesh-cache';

/** How the response cache treats a request. */
export type CacheMode = 'cacheable' | 'uncacheable' | 'bypass';

/** True when the engine's answer to `req` is a function of the request alone. */
export function isDeterministic(req: Pick<GenerateRequest__Output, 'sampling'>): boolean {
  const s = req.sampling;
  if (!s) return false;
  return s.temperature === 0 || (s.seed !== undefined && s.seed !== null);
}

/** The cache mode of a request given the value of its `x-llmmesh-cache` metadata. */
export function cacheMode(
  req: Pick<GenerateRequest__Output, 'sampling'>,
  control: string | undefined,
): CacheMode {
  if (control !== undefined && control.trim().toLowerCase() === 'bypass') return 'bypass';
  return isDeterministic(req) ? 'cacheable' : 'uncacheable';
}

/** The cache key of `req` served as `model` / `version`: hex SHA-256 of the canonical request. */
export function responseCacheKey(
  model: string,
  version: string,
  req: Pick<GenerateRequest__Output, 'prompt' | 'messages' | 'sampling'>,
): string {
  const s = req.sampling;
  const canonical = JSON.stringify([
    1, // key format version
    model,
    version,
    req.messages.length > 0 ? null : req.prompt,
    req.messages.map((m) => [m.role, m.content]),
    s ? [s.maxTokens, s.temperature ?? null, s.topP ?? null, s.seed ?? null, [...s.stop]] : null,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}
