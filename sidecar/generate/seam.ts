/**
 * The seam of an exact continuation. An engine streams the id of every token
 * it generates but holds back the last characters of text while a stop string
 * could still be forming, so the ids a client received can cover text it never
 * got. The tail they cover beyond the delivered text (found by decoding the
 * ids) is output the continuation must hand out first, and a stop string may
 * start in it or straddle the seam: the sidecar applies the stop strings to
 * the tail and the new output itself, as the engine would have to the whole.
 */
import { MeshError, Status } from '../../common/errors.js';
import type { Continuation__Output } from '../../common/generated/llmmesh/v1/Continuation.js';
import type { EngineCallOptions, EngineClient, EngineEvent } from '../engine-client.js';
import type { EngineUsage } from '../openai.js';
import type { StreamChunk } from './flight.js';
import { createStopMatcher, type StopMatcher } from './stop-matcher.js';

/** How the delivered ids relate to the delivered text. */
export type SeamCheck =
  /** The ids decode to the delivered text followed by `heldBack` (possibly empty). */
  | { kind: 'tail'; heldBack: string }
  /** The ids do not decode to the delivered text: continue from the text. */
  | { kind: 'mismatch'; reason: string }
  /** The engine cannot decode ids (no `/detokenize`). */
  | { kind: 'unsupported' };

/**
 * Ids of the prompt decoded before the delivered ones: tokenizers that drop a
 * word's leading space at the start of a text (SentencePiece) decode the
 * delivered ids as the engine's incremental detokenizer does only with some
 * context before them (vLLM's detokenizer starts 5 tokens back).
 */
export const SEAM_CONTEXT_TOKENS = 5;

/**
 * Decodes the delivered ids (after `contextIds`, the prompt's last ids)
 * through the engine's `/detokenize` and compares them with the delivered
 * text. Errors other than NOT_FOUND are rethrown.
 */
export async function checkSeam(
  engine: EngineClient,
  model: string,
  cont: Continuation__Output,
  contextIds: readonly number[],
  options: EngineCallOptions,
): Promise<SeamCheck> {
  let context: string;
  let decoded: string;
  try {
    [context, decoded] = await Promise.all([
      contextIds.length > 0 ? engine.detokenize(model, contextIds, options) : '',
      engine.detokenize(model, [...contextIds, ...cont.tokenIds], options),
    ]);
  } catch (err) {
    const e = MeshError.from(err, `engine at ${engine.url}`);
    if (options.signal?.aborted || e.code !== Status.NOT_FOUND) throw e;
    return { kind: 'unsupported' };
  }
  if (!decoded.startsWith(context)) {
    return { kind: 'mismatch', reason: "the delivered ids change how the prompt's last ids decode" };
  }
  decoded = decoded.slice(context.length);
  if (!decoded.startsWith(cont.text)) {
    const at = firstDifference(decoded, cont.text);
    return {
      kind: 'mismatch',
      reason: `the ${cont.tokenIds.length} delivered ids decode to text that differs from the delivered text at character ${at}`,
    };
  }
  // Ids that end inside a character decode to U+FFFD; that character is not
  // output yet (the engine held it back too) and is not handed out.
  return { kind: 'tail', heldBack: decoded.slice(cont.text.length).replace(/\uFFFD+$/, '') };
}

function firstDifference(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * Turns the engine's events of a continuation into the chunks of the stream:
 * the held-back tail first, then the engine's text, through the stop strings.
 * The engine is given no stop strings (see {@link createSeam}).
 */
export interface Seam {
  /**
   * The chunk for one engine event, or undefined when it carries nothing
   * (text still held, no ids). A chunk with a finish reason ends the stream;
   * when it is `stop` from a match here, the engine request must be ended.
   */
  next(ev: EngineEvent): StreamChunk | undefined;
  /** True once a stop string matched here. */
  readonly stopped: boolean;
}

/**
 * Creates the seam of a continuation whose ids decode to `heldBack` beyond
 * the delivered text. The stop strings are applied here to the tail and all
 * new text, per engine event (one token each on vLLM and the simulator), so
 * the cut, the ids and the token count are those of an undisturbed run; the
 * engine itself runs without them, so that it holds no text back and a match
 * ends its request at the token that completes it. `usage` maps the engine's
 * usage to the whole generation's; `promptTokens` is the original prompt's
 * length, for the usage of a stream ended here.
 */
export function createSeam(
  stop: readonly string[],
  heldBack: string,
  cont: Continuation__Output,
  promptTokens: number,
  usage: (engine: EngineUsage) => EngineUsage,
): Seam {
  const matcher: StopMatcher = createStopMatcher(stop, heldBack);
  let generated = 0;
  return {
    get stopped() {
      return matcher.matched !== undefined;
    },
    next(ev) {
      if (matcher.matched !== undefined) return undefined;
      generated += ev.tokenIds?.length ?? 0;
      matcher.append(ev.text);
      const stopped = matcher.matched !== undefined;
      const chunk: StreamChunk = { text: matcher.takeDelta(stopped || ev.finishReason !== undefined) };
      if (ev.tokenIds?.length) chunk.tokenIds = ev.tokenIds;
      if (stopped) {
        chunk.finishReason = 'stop';
        // The engine request ends here, before its own usage: count as it would.
        chunk.usage = {
          promptTokens,
          completionTokens: cont.completionTokens + generated,
          cachedTokens: 0,
        };
      } else if (ev.finishReason !== undefined) {
        chunk.finishReason = ev.finishReason;
        if (ev.usage) chunk.usage = usage(ev.usage);
      } else if (chunk.text === '' && !chunk.tokenIds) {
        return undefined;
      }
      return chunk;
    },
  };
}
