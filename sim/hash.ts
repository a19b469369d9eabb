/**
 * Small deterministic, non-cryptographic hashes (cyrb53). The simulator uses
 * them for token ids, generated text and KV block identity, where speed and
 * stability across processes matter and collisions are harmless.
 */

const M1 = 2654435761;
const M2 = 1597334677;
const F1 = 2246822507;
const F2 = 3266489909;

function finish(h1: number, h2: number): number {
  let a = Math.imul(h1 ^ (h1 >>> 16), F1);
  a ^= Math.imul(h2 ^ (h2 >>> 13), F2);
  let b = Math.imul(h2 ^ (h2 >>> 16), F1);
  b ^= Math.imul(a ^ (a >>> 13), F2);
  return 4294967296 * (2097151 & b) + (a >>> 0);
}

/** Hashes a string to a non-negative integer below 2^53. Same input and seed, same result. */
export function hashString(text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, M1);
    h2 = Math.imul(h2 ^ ch, M2);
  }
  return finish(h1, h2);
}

/**
 * Hashes `values[start..end)` (integers, each taken modulo 2^32 per half) to a
 * non-negative integer below 2^53, chained from `seed` (itself any such hash).
 */
export function hashInts(values: ArrayLike<number>, seed = 0, start = 0, end = values.length): number {
  // Split the 53-bit seed into two 32-bit lanes so chained hashes keep all of it.
  const hi = Math.floor(seed / 4294967296);
  let h1 = 0xdeadbeef ^ (seed >>> 0);
  let h2 = 0x41c6ce57 ^ hi;
  for (let i = start; i < end; i++) {
    const v = values[i] ?? 0;
    const lo = v >>> 0;
    const up = Math.floor(v / 4294967296) >>> 0;
    h1 = Math.imul(h1 ^ lo, M1);
    h2 = Math.imul(h2 ^ (lo ^ up), M2);
  }
  return finish(h1, h2);
}
