/**
 * A deterministic stand-in for a BPE tokenizer. Text is split the way GPT-style
 * pre-tokenizers split it (a word with its leading space, up to three digits,
 * runs of punctuation, whitespace), long pieces are cut into chunks, and each
 * piece maps to an id by hashing. Llama-3 special tokens are recognised as
 * single tokens. Counts land near real tokenizers for English text (about one
 * token per word) and are stable across processes, which is what prompt
 * accounting, prefix caching and `/tokenize` need.
 */
import { hashString } from './hash.js';

/** Llama-3 special tokens and their ids. */
export const SPECIAL_TOKENS: Readonly<Record<string, number>> = {
  '<|begin_of_text|>': 128000,
  '<|end_of_text|>': 128001,
  '<|start_header_id|>': 128006,
  '<|end_header_id|>': 128007,
  '<|eot_id|>': 128009,
};

/** The beginning-of-sequence token added to completion prompts. */
export const BOS_TOKEN = '<|begin_of_text|>';

/** Size of the id space (Llama-3's). Ordinary pieces hash into [256, 128000). */
export const VOCAB_SIZE = 128256;

/** Pieces longer than this many characters (after a leading space) are cut into chunks. */
const MAX_PIECE_CHARS = 10;
const FIRST_ORDINARY_ID = 256;
/** Pieces remembered for {@link Tokenizer.spell}; beyond this many, new ones are not. */
const MAX_REMEMBERED_PIECES = 1 << 16;
const ORDINARY_ID_SPAN = 128000 - FIRST_ORDINARY_ID;

const PRETOKENIZE = / ?\p{L}+| ?\p{N}{1,3}| ?[^\s\p{L}\p{N}]+|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
const SPECIAL_SPLIT = new RegExp(
  `(${Object.keys(SPECIAL_TOKENS)
    .map((t) => t.replace(/[|]/g, '\\|'))
    .join('|')})`,
);

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Prepend the BOS token, as vLLM does for completion prompts (default false). */
  addSpecialTokens?: boolean;
}

/** The result of {@link Tokenizer.encodeWithPieces}: ids and the text of each. */
export interface EncodedText {
  ids: number[];
  pieces: string[];
}

/** Turns text into token ids. */
export interface Tokenizer {
  /** Token ids of `text`. */
  encode(text: string, options?: EncodeOptions): number[];
  /** Token ids of `text` with the text piece each id stands for. */
  encodeWithPieces(text: string, options?: EncodeOptions): EncodedText;
  /** The id of one piece (a special token or an ordinary piece). */
  pieceId(piece: string): number;
  /**
   * The text of an id: a special token, or a piece this tokenizer produced
   * (hashing is one-way, so ids it never produced have no known text).
   */
  spell(tokenId: number): string | undefined;
}

const SPECIAL_TEXT = new Map(Object.entries(SPECIAL_TOKENS).map(([text, id]) => [id, text]));

/**
 * Creates the simulator's tokenizer. Its ids depend on the text alone; the
 * only state is a bounded memory of pieces seen, for {@link Tokenizer.spell}.
 */
export function createTokenizer(): Tokenizer {
  const remembered = new Map<number, string>();
  const pieceId = (piece: string): number =>
    SPECIAL_TOKENS[piece] ?? FIRST_ORDINARY_ID + (hashString(piece) % ORDINARY_ID_SPAN);
  const remember = (id: number, piece: string) => {
    if (remembered.size < MAX_REMEMBERED_PIECES && !remembered.has(id)) remembered.set(id, piece);
  };

  const encodeWithPieces = (text: string, options: EncodeOptions = {}): EncodedText => {
    const pieces: string[] = [];
    if (options.addSpecialTokens) pieces.push(BOS_TOKEN);
    for (const part of text.split(SPECIAL_SPLIT)) {
      if (part === '') continue;
      if (SPECIAL_TOKENS[part] !== undefined) {
        pieces.push(part);
        continue;
      }
      for (const match of part.matchAll(PRETOKENIZE)) pushChunks(pieces, match[0]);
    }
    const ids = pieces.map(pieceId);
    for (let i = 0; i < ids.length; i++) remember(ids[i]!, pieces[i]!);
    return { ids, pieces };
  };

  return {
    encode: (text, options) => encodeWithPieces(text, options).ids,
    encodeWithPieces,
    pieceId(piece) {
      const id = pieceId(piece);
      remember(id, piece);
      return id;
    },
    spell: (tokenId) => SPECIAL_TEXT.get(tokenId) ?? remembered.get(tokenId),
  };
}

function pushChunks(out: string[], piece: string): void {
  const chars = Array.from(piece);
  const limit = chars[0] === ' ' ? MAX_PIECE_CHARS + 1 : MAX_PIECE_CHARS;
  if (chars.length <= limit) {
    out.push(piece);
    return;
  }
  out.push(chars.slice(0, limit).join(''));
  for (let i = limit; i < chars.length; i += MAX_PIECE_CHARS) {
    out.push(chars.slice(i, i + MAX_PIECE_CHARS).join(''));
  }
}
