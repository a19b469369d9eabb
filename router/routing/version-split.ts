/**
 * Version choice for one request (DESIGN §3): a pinned version wins; else a
 * session key maps to a version by weighted rendezvous hashing; else weighted
 * random. A version with no usable endpoint falls back to another version of
 * the same model when the model allows it.
 */
import { createHash } from 'node:crypto';
import { errors } from '../../common/errors.js';
import type { ModelConfig } from '../config/schema.js';

/** Why a version was chosen; recorded in metrics and traces. */
export type VersionReason = 'pinned' | 'sticky' | 'weighted' | 'fallback';

/** A version decision. */
export interface VersionChoice {
  version: string;
  reason: VersionReason;
  /** Set when falling back: the version first chosen, which had no usable endpoint. */
  fallbackFrom?: string;
}

/** Inputs of {@link chooseVersion}. */
export interface VersionRequest {
  model: string;
  pinnedVersion?: string;
  sessionKey?: string;
}

/**
 * Chooses a version. `usable(version)` says whether the version has at least
 * one endpoint that can take the request now. `random` returns [0, 1).
 * Throws NOT_FOUND for an unknown pinned version and UNAVAILABLE when nothing
 * can serve.
 */
export function chooseVersion(
  req: VersionRequest,
  model: ModelConfig,
  usable: (version: string) => boolean,
  random: () => number = Math.random,
): VersionChoice {
  const { versions, weighted } = versionsOf(model);
  if (req.pinnedVersion) {
    if (!(req.pinnedVersion in model.versions)) {
      throw errors.notFound(
        `model "${req.model}" has no version "${req.pinnedVersion}" (versions: ${versions.map(([v]) => v).join(', ')})`,
      );
    }
    // A pin is an explicit request (canary tests): never silently serve another version.
    if (!usable(req.pinnedVersion)) {
      throw errors.unavailable(`no ready endpoint for model "${req.model}" version "${req.pinnedVersion}"`);
    }
    return { version: req.pinnedVersion, reason: 'pinned' };
  }

  const sticky = model.sticky === 'session_key' && req.sessionKey;
  const order = sticky ? stickyOrder(model, req.sessionKey ?? '', weighted) : weightedOrder(weighted, random);
  const first = order[0];
  if (first === undefined) throw errors.unavailable(`model "${req.model}" has no version with weight > 0`);
  if (usable(first)) return { version: first, reason: sticky ? 'sticky' : 'weighted' };

  if (model.fallback) {
    // Next choices in the same order, then versions at weight 0 (still deployed, just not preferred).
    const rest = [...order.slice(1), ...versions.filter(([, v]) => v.weight === 0).map(([name]) => name)];
    for (const v of rest) if (usable(v)) return { version: v, reason: 'fallback', fallbackFrom: first };
    throw errors.unavailable(`no ready endpoint for any version of model "${req.model}"`);
  }
  throw errors.unavailable(`no ready endpoint for model "${req.model}" version "${first}" (fallback is off)`);
}

type VersionEntries = ReadonlyArray<readonly [string, { weight: number }]>;

/** A model config's versions, and those with weight > 0, listed once per config object (configs are immutable). */
const versionLists = new WeakMap<ModelConfig, { versions: VersionEntries; weighted: VersionEntries }>();

function versionsOf(model: ModelConfig): { versions: VersionEntries; weighted: VersionEntries } {
  let lists = versionLists.get(model);
  if (!lists) {
    const versions = Object.entries(model.versions);
    lists = { versions, weighted: versions.filter(([, v]) => v.weight > 0) };
    versionLists.set(model, lists);
  }
  return lists;
}

/**
 * Weighted rendezvous (highest random weight) hashing: every version gets the
 * score `-weight / ln(u)` with `u` a uniform hash of (key, version); the order
 * of scores is stable for a key, proportional to weights across keys, and a
 * weight change moves only the keys it must.
 */
export function rendezvousOrder(
  key: string,
  versions: ReadonlyArray<readonly [string, { weight: number }]>,
): string[] {
  return versions
    .map(([name, v]) => ({ name, score: -v.weight / Math.log(unitHash(`${key}\u0000${name}`)) }))
    .sort((a, b) => b.score - a.score || (a.name < b.name ? -1 : 1))
    .map((s) => s.name);
}

/** Session keys whose order is remembered per model config (a reload brings a new config object, so new weights start afresh). */
const STICKY_CACHE_SIZE = 10_000;
const stickyOrders = new WeakMap<ModelConfig, Map<string, string[]>>();

/**
 * {@link rendezvousOrder} of a session key, remembered: a session's requests
 * hash (one SHA-256 per version) once per config, not once per request.
 */
function stickyOrder(
  model: ModelConfig,
  key: string,
  versions: ReadonlyArray<readonly [string, { weight: number }]>,
): string[] {
  let orders = stickyOrders.get(model);
  if (!orders) {
    orders = new Map();
    stickyOrders.set(model, orders);
  }
  const known = orders.get(key);
  if (known) return known;
  const order = rendezvousOrder(key, versions);
  // Bounded: the oldest half goes when it is full.
  if (orders.size >= STICKY_CACHE_SIZE) {
    let drop = STICKY_CACHE_SIZE / 2;
    for (const k of orders.keys()) {
      orders.delete(k);
      if (--drop === 0) break;
    }
  }
  orders.set(key, order);
  return order;
}

/** Weighted random order without replacement (Efraimidis–Spirakis keys). */
export function weightedOrder(
  versions: ReadonlyArray<readonly [string, { weight: number }]>,
  random: () => number,
): string[] {
  if (versions.length === 1) {
    // One version: the order is known, but the draw is still taken, so the random sequence stays the same.
    random();
    return [(versions[0] as readonly [string, unknown])[0]];
  }
  return versions
    .map(([name, v]) => ({ name, key: Math.log(Math.max(random(), Number.MIN_VALUE)) / v.weight }))
    .sort((a, b) => b.key - a.key)
    .map((s) => s.name);
}

/** A uniform number in (0, 1) from a string. */
function unitHash(s: string): number {
  const h = createHash('sha256').update(s).digest();
  // 52 random bits → (0, 1), never 0 or 1 (log must stay finite and negative).
  const hi = h.readUInt32BE(0) >>> 0;
  const lo = h.readUInt32BE(4) >>> 12;
  return (hi * 2 ** 20 + lo + 0.5) / 2 ** 52;
}
