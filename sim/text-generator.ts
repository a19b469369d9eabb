/**
 * Deterministic greedy "sampling" that behaves like an autoregressive model:
 * each output token is a pure function of everything before it (model,
 * sampling seed, prompt token ids, then the output token ids so far). So a
 * request whose prompt is another request's prompt followed by the first k
 * tokens of its output continues with exactly that output's token k+1 onwards,
 * which is what resuming a stream on another engine relies on. The context is
 * folded into a rolling hash, one step per token, so a token costs O(1)
 * whatever the context length. Tokens are words with a leading space, with the
 * occasional comma or full stop, so streams look like text and every token is
 * one piece of the simulator's tokenizer (generated text tokenizes back to the
 * same ids).
 */
import { hashString } from './hash.js';
import type { Tokenizer } from './tokenizer.js';

// Short common words: every entry is a single token of the tokenizer.
const WORDS = (
  'the of and to in is was for on that with as it by at from this be are or an have not which but had one ' +
  'they you were all their there can more has been would when we if will each about how up out them then ' +
  'she many some so these could time very what see way him like long make thing look two more day could go ' +
  'come did number sound no most people my over know water than call first who may down side been now find ' +
  'any new work part take get place made live where after back little only round man year came show every ' +
  'good me give our under name just form great think say help low line turn cause much mean before move ' +
  'right boy old too same tell does set three want air well also play small end put home read hand port ' +
  'large spell add even land here must big high such follow act why ask men change went light kind off ' +
  'need house picture try us again animal point mother world near build self earth father head stand own ' +
  'page should country found answer school grow study still learn plant cover food sun four thought let ' +
  'keep eye never last door between city tree cross since hard start might story saw far sea draw left late ' +
  'run while press close night real life few stop open seem together next white children begin got walk ' +
  'example ease paper often always music those both mark book letter until mile river car feet care second ' +
  'group carry took rain eat room friend began idea fish mountain north once base hear horse cut sure watch ' +
  'color face wood main enough plain girl usual young ready above ever red list though feel talk bird soon ' +
  'body dog family direct pose leave song measure state product black short numeral class wind question'
)
  .split(' ')
  .filter((w, i, all) => all.indexOf(w) === i);

const PUNCTUATION = [',', '.'];
/** Percent of positions right after a word that carry punctuation instead of a word. */
const PUNCTUATION_PERCENT = 9;

/** What makes one request's output: the same key, the same tokens. */
export interface GenerationKey {
  model: string;
  /** The whole context the output follows: a continuation passes the prompt plus the output so far. */
  promptTokenIds: readonly number[];
  /** The request's `seed`; absent seeds behave like one fixed seed. */
  seed: number | undefined;
}

/**
 * The token ids of one request's output. Called with 0, 1, 2, … in order,
 * once per position (each token depends on the ones before it).
 */
export type TokenSource = (index: number) => number;

/** Produces deterministic output tokens and their text. */
export interface TextGenerator {
  /** The token source for a request. */
  start(key: GenerationKey): TokenSource;
  /** Text of a token id this generator produced ('' for ids it does not know). */
  decode(tokenId: number): string;
}

// The context hash: two 32-bit multiply-xor lanes (cyrb53's inner loop), so
// folding in one more token is O(1) and the state after a sequence depends
// only on that sequence, however it was split into prompt and output.
const M1 = 2654435761;
const M2 = 1597334677;
const F1 = 2246822507;
const F2 = 3266489909;

/** Creates a generator whose tokens are ids of `tokenizer`. */
export function createTextGenerator(tokenizer: Tokenizer): TextGenerator {
  const texts = new Map<number, string>();
  const register = (text: string): number[] => {
    const id = tokenizer.pieceId(text);
    // Skip a piece whose id another piece already has, so decoding is exact.
    if (texts.has(id)) return [];
    texts.set(id, text);
    return [id];
  };
  const punctuationIds = PUNCTUATION.flatMap(register);
  const wordIds = WORDS.flatMap((w) => register(` ${w}`));
  const isWord = new Set(wordIds);

  return {
    start(key) {
      const seed = hashString(`${key.model}\u0000${key.seed === undefined ? '' : String(key.seed)}`);
      let h1 = 0xdeadbeef ^ (seed >>> 0);
      let h2 = 0x41c6ce57 ^ Math.floor(seed / 4294967296);
      const prompt = key.promptTokenIds;
      for (let i = 0; i < prompt.length; i++) {
        h1 = Math.imul(h1 ^ prompt[i]!, M1);
        h2 = Math.imul(h2 ^ prompt[i]!, M2);
      }
      // Rules over the context, not the output position: punctuation only right after a word
      // (so never two in a row, and never first after a chat header, BOS or punctuation).
      let afterWord = prompt.length > 0 && isWord.has(prompt[prompt.length - 1]!);
      let next = 0;
      return (index) => {
        if (index !== next) throw new RangeError(`output token ${index} requested, expected ${next}`);
        next++;
        // Two well-mixed draws from the context (cyrb53's finaliser).
        let a = Math.imul(h1 ^ (h1 >>> 16), F1);
        a ^= Math.imul(h2 ^ (h2 >>> 13), F2);
        let b = Math.imul(h2 ^ (h2 >>> 16), F1);
        b ^= Math.imul(a ^ (a >>> 13), F2);
        const token =
          afterWord && (a >>> 0) % 100 < PUNCTUATION_PERCENT
            ? punctuationIds[(b >>> 0) % punctuationIds.length]!
            : wordIds[(b >>> 0) % wordIds.length]!;
        h1 = Math.imul(h1 ^ token, M1);
        h2 = Math.imul(h2 ^ token, M2);
        afterWord = isWord.has(token);
        return token;
      };
    },
    decode: (tokenId) => texts.get(tokenId) ?? '',
  };
}
