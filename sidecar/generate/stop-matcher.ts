/**
 * Stop strings applied by the sidecar, the way vLLM applies them to an
 * output: each appended piece is searched (with the stop string's length
 * less one of the text before it, so a match may straddle pieces), the first
 * stop string in list order found wins, the output is cut before it, and
 * while a stop string could still be forming the last `max(len) - 1`
 * characters are held back from the stream.
 */

/** The output text of one stream under stop strings. */
export interface StopMatcher {
  /** The output so far (cut at the match once one was found). */
  readonly text: string;
  /** The stop string that matched, once one did. */
  readonly matched: string | undefined;
  /**
   * Appends the next piece of output. Returns the stop string when this
   * piece completed one: the output is then cut before it and must end.
   */
  append(piece: string): string | undefined;
  /**
   * The text not yet handed out. Unless `finished` (or a stop string
   * matched), the characters that could still start a stop string stay held.
   */
  takeDelta(finished: boolean): string;
}

/**
 * Creates a matcher for `stop`. `pending` is output that exists but was not
 * handed out yet (the tail an engine held back before a stream moved here):
 * it is searched like any appended piece and handed out by the first
 * {@link StopMatcher.takeDelta}.
 */
export function createStopMatcher(stop: readonly string[], pending = ''): StopMatcher {
  const strings = stop.filter((s) => s.length > 0);
  const holdBack = strings.length > 0 ? Math.max(...strings.map((s) => s.length)) - 1 : 0;
  let text = '';
  let sent = 0;
  let matched: string | undefined;

  const matcher: StopMatcher = {
    get text() {
      return text;
    },
    get matched() {
      return matched;
    },
    append(piece) {
      if (matched !== undefined || piece === '') return undefined;
      const before = text.length;
      text += piece;
      for (const s of strings) {
        // Only the new piece, and the stop string's length less one before it, can hold a new match.
        const at = text.indexOf(s, Math.max(0, before - s.length + 1));
        if (at === -1) continue;
        text = text.slice(0, at);
        matched = s;
        return s;
      }
      return undefined;
    },
    takeDelta(finished) {
      const end = finished || matched !== undefined ? text.length : Math.max(sent, text.length - holdBack);
      const delta = text.slice(sent, end);
      sent = Math.max(sent, end);
      return delta;
    },
  };
  matcher.append(pending);
  return matcher;
}
