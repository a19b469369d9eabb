/**
 * The text side of one request's output, as vLLM's detokenizer keeps it:
 * appends each token's text, looks for stop strings in the newly added text,
 * truncates at a match, and hands out streaming deltas that hold back the last
 * few characters while a stop string could still be forming.
 */

/** Options of {@link createOutputText}, named after vLLM's sampling parameters. */
export interface OutputTextOptions {
  /** Stop strings; the first one in this list found in the new text wins. */
  stop?: readonly string[];
  /** Keep the matched stop string in the output (default false). */
  includeStopStrInOutput?: boolean;
  /** Stop strings are ignored until more than this many tokens were generated (default 0). */
  minTokens?: number;
}

/** One request's accumulated output text. */
export interface OutputText {
  /** The output text so far (truncated at a stop string once one matched). */
  readonly text: string;
  /**
   * Appends the text of the next token. Returns the stop string when this
   * token completed one (the output is then truncated and must end).
   */
  append(tokenText: string): string | undefined;
  /**
   * The text not yet handed out. Unless `finished`, the characters that could
   * still be the start of a stop string are held back, as vLLM does.
   */
  takeDelta(finished: boolean): string;
}

/** Creates the output text of one request. */
export function createOutputText(options: OutputTextOptions = {}): OutputText {
  const stop = (options.stop ?? []).filter((s) => s.length > 0);
  const includeStop = options.includeStopStrInOutput ?? false;
  const minTokens = options.minTokens ?? 0;
  const holdBack = stop.length > 0 && !includeStop ? Math.max(...stop.map((s) => s.length)) - 1 : 0;
  let text = '';
  let tokens = 0;
  let sentOffset = 0;

  return {
    get text() {
      return text;
    },
    append(tokenText) {
      const checkFrom = text.length;
      text += tokenText;
      tokens++;
      const newChars = text.length - checkFrom;
      if (stop.length === 0 || newChars === 0 || tokens <= minTokens) return undefined;
      for (const s of stop) {
        // Only the new text and the stop string's length before it can hold a new match.
        const index = text.indexOf(s, Math.max(0, text.length + 1 - newChars - s.length));
        if (index === -1) continue;
        text = text.slice(0, includeStop ? index + s.length : index);
        return s;
      }
      return undefined;
    },
    takeDelta(finished) {
      const end = finished ? text.length : text.length - holdBack;
      if (end <= sentOffset) return '';
      const delta = text.slice(sentOffset, end);
      sentOffset = end;
      return delta;
    },
  };
}
