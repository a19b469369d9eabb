/**
 * The prefix-hash contract shared by sidecars (which index the prompts they
 * served) and routers (which look a new prompt up in those indexes): a prompt
 * is serialized canonically, cut into fixed blocks of characters, and each
 * full block gets a hash chained on the previous one, as vLLM's automatic
 * prefix caching chains block hashes over tokens. Two prompts share block i's
 * hash exactly when they share the first (i+1) blocks.
 */
import type { GenerateRequest__Output } from './generated/llmmesh/v1/GenerateRequest.js';

/** Characters per block: about 16 tokens of English text, one vLLM KV block. */
export const DEFAULT_BLOCK_CHARS = 64;
/** Blocks hashed at most per prompt, bounding the router's cost on huge prompts. */
export const MAX_HASHED_BLOCKS = 512;

/** The canonical text of a request's prompt: the raw prompt, or the messages with role and separators. */
export function canonicalPrompt(req: Pick<GenerateRequest__Output, 'prompt' | 'messages'>): string {
  if (req.messages.length === 0) return req.prompt;
  let out = '';
  for (const m of req.messages) out += `${m.role}\n${m.content}\u0000`;
  return out;
}

/**
 * Chained hashes of the full blocks of `text` (at most `maxBlocks`), each an
 * integer below 2^53 so it survives JSON and protobuf uint64 → number.
 */
export function prefixBlockHashes(
  text: string,
  blockChars = DEFAULT_BLOCK_CHARS,
  maxBlocks = MAX_HASHED_BLOCKS,
): number[] {
  const n = Math.min(Math.floor(text.length / blockChars), maxBlocks);
  const out = new Array<number>(n);
  let prev = 0;
  for (let b = 0; b < n; b++) {
    prev = hash53(text, b * blockChars, (b + 1) * blockChars, prev);
    out[b] = prev;
  }
  return out;
}

/**
 * {@link prefixBlockHashes} with a memory of the last few prompts hashed:
 * a prompt that starts with the same blocks as one of them (a shared system
 * prompt, a conversation's earlier turns) takes those blocks' hashes from it
 * and hashes only the rest. Block i's hash depends on the first (i+1) blocks
 * of text alone, so the hashes are exactly {@link prefixBlockHashes}'s.
 */
export function createPrefixHasher(remember = 8): (text: string, blockChars?: number) => number[] {
  const texts: string[] = [];
  const chains: number[][] = [];
  const sizes: number[] = [];
  let next = 0;
  return (text, blockChars = DEFAULT_BLOCK_CHARS) => {
    const n = Math.min(Math.floor(text.length / blockChars), MAX_HASHED_BLOCKS);
    // The most blocks a remembered prompt of this block size shares with `text`.
    let best = -1;
    let shared = 0;
    for (let e = 0; e < texts.length && shared < n; e++) {
      if (sizes[e] !== blockChars) continue;
      const k = sharedBlocks(
        text,
        texts[e] as string,
        blockChars,
        Math.min(n, (chains[e] as number[]).length),
      );
      if (k > shared) {
        shared = k;
        best = e;
      }
    }
    const out = new Array<number>(n);
    const known = best >= 0 ? (chains[best] as number[]) : [];
    for (let b = 0; b < shared; b++) out[b] = known[b] as number;
    let prev = shared > 0 ? (known[shared - 1] as number) : 0;
    for (let b = shared; b < n; b++) {
      prev = hash53(text, b * blockChars, (b + 1) * blockChars, prev);
      out[b] = prev;
    }
    if (n > shared) {
      // Remembered as its own copy: callers own what they are given.
      texts[next] = text;
      chains[next] = out.slice();
      sizes[next] = blockChars;
      next = (next + 1) % remember;
    }
    return out;
  };
}

/** The number of whole blocks (at most `max`) `a` and `b` share from the start. */
function sharedBlocks(a: string, b: string, blockChars: number, max: number): number {
  const same = (k: number) => a.slice(0, k * blockChars) === b.slice(0, k * blockChars);
  if (max <= 0 || !same(1)) return 0;
  if (same(max)) return max;
  // Blocks 0..lo-1 are shared, block hi is not.
  let lo = 1;
  let hi = max - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (same(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** cyrb53-style 53-bit hash of text[start, end) seeded by the previous block's hash. */
function hash53(text: string, start: number, end: number, seed: number): number {
  let h1 = 0xdeadbeef ^ (seed >>> 0);
  let h2 = 0x41c6ce57 ^ Math.floor(seed / 4294967296);
  for (let i = start; i < end; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
