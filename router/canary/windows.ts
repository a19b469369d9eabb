/**
 * Sliding windows of per-version statistics: a ring of time buckets per
 * (model, version), read as any window up to the history's length (one and
 * five minutes for the comparison, thirty for the charts). Time comes from
 * an injected clock.
 */
import { emptyStats, mergeStats, type StatsSummary, summarize, type VersionStats } from './stats.js';

/** One point of a chart: the summary of the requests that finished in [at, at + stepMs). */
export interface SeriesPoint extends StatsSummary {
  at: number;
}

/** The windows of one router. */
export interface VersionWindows {
  /** The bucket a request finishing now goes into. */
  current(model: string, version: string): VersionStats;
  /** Statistics of `model`/`version` over the last `windowMs`. */
  window(model: string, version: string, windowMs: number): VersionStats;
  /** `points` consecutive summaries covering the history, oldest first. */
  series(model: string, version: string, points: number): SeriesPoint[];
  /** Versions seen for `model`. */
  versions(model: string): string[];
  /** Changes bucket size and history (existing data is kept when the bucket size stays). */
  configure(bucketMs: number, historyMs: number): void;
}

/** Creates windows of `historyMs` in buckets of `bucketMs`. */
export function createVersionWindows(bucketMs: number, historyMs: number, now: () => number): VersionWindows {
  let size = bucketMs;
  let history = historyMs;
  // key model\0version → buckets by slot number
  // model → version → buckets by slot number (nested maps: no key string per chunk)
  const rings = new Map<string, Map<string, Map<number, VersionStats>>>();
  // The bucket of the current slot per ring, found without a map lookup by slot.
  const hot = new WeakMap<Map<number, VersionStats>, { slot: number; stats: VersionStats }>();
  const ringOf = (m: string, v: string, create: boolean) => {
    let byVersion = rings.get(m);
    if (!byVersion) {
      if (!create) return undefined;
      byVersion = new Map();
      rings.set(m, byVersion);
    }
    let ring = byVersion.get(v);
    if (!ring && create) {
      ring = new Map();
      byVersion.set(v, ring);
    }
    return ring;
  };
  const prune = (ring: Map<number, VersionStats>, slot: number) => {
    const keep = Math.ceil(history / size);
    for (const s of ring.keys()) if (slot - s >= keep) ring.delete(s);
  };
  const collect = (model: string, version: string, fromSlot: number, toSlot: number) => {
    const out = emptyStats();
    const ring = ringOf(model, version, false);
    if (!ring) return out;
    for (const [s, b] of ring) if (s >= fromSlot && s <= toSlot) mergeStats(out, b);
    return out;
  };
  return {
    current(model, version) {
      const ring = ringOf(model, version, true) as Map<number, VersionStats>;
      const slot = Math.floor(now() / size);
      const h = hot.get(ring);
      if (h && h.slot === slot) return h.stats;
      let b = ring.get(slot);
      if (!b) {
        prune(ring, slot);
        b = emptyStats();
        ring.set(slot, b);
      }
      hot.set(ring, { slot, stats: b });
      return b;
    },
    window(model, version, windowMs) {
      const slot = Math.floor(now() / size);
      const n = Math.max(1, Math.ceil(windowMs / size));
      return collect(model, version, slot - n + 1, slot);
    },
    series(model, version, points) {
      const slot = Math.floor(now() / size);
      const total = Math.max(1, Math.ceil(history / size));
      const per = Math.max(1, Math.ceil(total / points));
      const out: SeriesPoint[] = [];
      const first = slot - per * points + 1;
      for (let i = 0; i < points; i++) {
        const from = first + i * per;
        out.push({ at: from * size, ...summarize(collect(model, version, from, from + per - 1)) });
      }
      return out;
    },
    versions(model) {
      return [...(rings.get(model)?.keys() ?? [])];
    },
    configure(bucketMs, historyMs) {
      if (bucketMs !== size) rings.clear();
      size = bucketMs;
      history = historyMs;
    },
  };
}
