/**
 * The observed version split: version choices per model over a sliding
 * window (one minute by default), next to the configured weights in metrics
 * and the status page.
 */

/** Counts recent version choices. */
export interface SplitTracker {
  record(model: string, version: string): void;
  /** Share (0..1) of each version among the model's choices in the window; {} when none. */
  shares(model: string): Record<string, number>;
  /** Choices of the model in the window. */
  total(model: string): number;
}

const BUCKETS = 6;

/** Creates a tracker over `windowMs`. */
export function createSplitTracker(windowMs = 60_000, now: () => number = Date.now): SplitTracker {
  const bucketMs = windowMs / BUCKETS;
  // model → ring of { slot, counts by version }
  const rings = new Map<string, Array<{ slot: number; counts: Map<string, number> }>>();
  const live = (model: string) => {
    const slot = Math.floor(now() / bucketMs);
    const ring = rings.get(model) ?? [];
    return { slot, ring: ring.filter((b) => slot - b.slot < BUCKETS) };
  };
  const counts = (model: string) => {
    const { ring } = live(model);
    const out = new Map<string, number>();
    for (const b of ring) for (const [v, n] of b.counts) out.set(v, (out.get(v) ?? 0) + n);
    return out;
  };
  return {
    record(model, version) {
      // Every request records: the current bucket is the ring's last one, found without a copy.
      const slot = Math.floor(now() / bucketMs);
      const last = rings.get(model)?.at(-1);
      let b = last?.slot === slot ? last : undefined;
      if (!b) {
        const { ring } = live(model);
        b = ring.find((x) => x.slot === slot);
        if (!b) {
          b = { slot, counts: new Map() };
          ring.push(b);
        }
        rings.set(model, ring);
      }
      b.counts.set(version, (b.counts.get(version) ?? 0) + 1);
    },
    shares(model) {
      const c = counts(model);
      let total = 0;
      for (const n of c.values()) total += n;
      if (total === 0) return {};
      return Object.fromEntries([...c].map(([v, n]) => [v, n / total]));
    },
    total(model) {
      let total = 0;
      for (const n of counts(model).values()) total += n;
      return total;
    },
  };
}
