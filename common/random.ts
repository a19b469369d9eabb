/**
 * Seeded randomness: the one pseudo-random generator of the project, for
 * reproducible workloads, arrival times and tests of random choices.
 */

/** A pseudo-random source in [0, 1): the same seed gives the same sequence (mulberry32). */
export function createRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Derives an independent seed from a base seed and a stream of integers (e.g. group, index). */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/** An exponentially distributed gap (ms) for Poisson arrivals at `ratePerS`. */
export function exponentialGapMs(ratePerS: number, random: () => number): number {
  return (-Math.log(1 - random()) / ratePerS) * 1000;
}
