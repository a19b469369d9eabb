/**
 * Deterministic "sampling": the text a request gets is a pure function of a
 * seed derived from the request (model, prompt tokens, sampling seed) and the
 * token position. Tokens are words with a leading space, with the occasional
 * comma or full stop, so streams look like text and every token is one piece of
 * the simulator's tokenizer (generated text tokenizes back to the same ids).
 */
import { hashInts, hashString } from './hash.js';
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
/** Percent of positions (after a word) that carry punctuation instead of a word. */
const PUNCTUATION_PERCENT = 9;

/** What makes one request's output: the same key, the same tokens. */
export interface GenerationKey {
  model: string;
  promptTokenIds: readonly number[];
  /** The request's `seed`; absent seeds behave like one fixed seed. */
  seed: number | undefined;
}

/** The token ids of one request's output, by position. */
export type TokenSource = (index: number) => number;

/** Produces deterministic output tokens and their text. */
export interface TextGenerator {
  /** The token source for a request. */
  start(key: GenerationKey): TokenSource;
  /** Text of a token id this generator produced ('' for ids it does not know). */
  decode(tokenId: number): string;
}

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

  return {
    start(key) {
      const seed = hashInts(
        key.promptTokenIds,
        hashString(`${key.model}\u0000${key.seed === undefined ? '' : String(key.seed)}`),
      );
      const draw = (index: number, salt: number) => hashInts([index, salt], seed);
      const wantsPunctuation = (index: number) => index > 0 && draw(index, 1) % 100 < PUNCTUATION_PERCENT;
      return (index) => {
        // Never two punctuation tokens in a row, and never one first.
        if (wantsPunctuation(index) && !wantsPunctuation(index - 1)) {
          return punctuationIds[draw(index, 2) % punctuationIds.length]!;
        }
        return wordIds[draw(index, 3) % wordIds.length]!;
      };
    },
    decode: (tokenId) => texts.get(tokenId) ?? '',
  };
}
