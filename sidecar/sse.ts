/**
 * An incremental parser for `text/event-stream` (the WHATWG server-sent events
 * format) as OpenAI-compatible engines send it: bytes in, complete events out,
 * whatever the TCP segmentation.
 */

/** One server-sent event. */
export interface SseEvent {
  /** The `event:` field, `message` when absent. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
}

/** A stateful parser; feed it chunks in order. */
export interface SseParser {
  /** Parses a chunk and returns the events it completed. */
  push(chunk: string): SseEvent[];
  /** Returns the event left without its terminating blank line, if any (end of stream). */
  flush(): SseEvent[];
}

/** Creates an SSE parser. */
export function createSseParser(): SseParser {
  let buffer = '';
  let data: string[] = [];
  let event = '';

  const dispatch = (out: SseEvent[]) => {
    if (data.length > 0) out.push({ event: event || 'message', data: data.join('\n') });
    data = [];
    event = '';
  };

  const line = (text: string, out: SseEvent[]) => {
    if (text === '') {
      dispatch(out);
      return;
    }
    if (text.startsWith(':')) return; // comment / keep-alive
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      // Some engines (and hand-made logs) omit the blank line between events:
      // a new `data:` line that is itself a complete JSON document or [DONE]
      // after a complete one starts a new event.
      if (data.length > 0 && looksComplete(data[data.length - 1] ?? '') && looksComplete(value))
        dispatch(out);
      data.push(value);
    } else if (field === 'event') {
      event = value;
    }
  };

  return {
    push(chunk) {
      buffer += chunk;
      const out: SseEvent[] = [];
      let start = 0;
      for (;;) {
        const nl = buffer.indexOf('\n', start);
        if (nl < 0) break;
        let end = nl;
        if (end > start && buffer.charCodeAt(end - 1) === 13) end--;
        line(buffer.slice(start, end), out);
        start = nl + 1;
      }
      buffer = buffer.slice(start);
      return out;
    },
    flush() {
      const out: SseEvent[] = [];
      if (buffer.length > 0) line(buffer, out);
      buffer = '';
      dispatch(out);
      return out;
    },
  };
}

function looksComplete(value: string): boolean {
  const v = value.trim();
  return v === '[DONE]' || (v.startsWith('{') && v.endsWith('}'));
}
