/**
 * Server-sent events (`text/event-stream`) as OpenAI-compatible engines send
 * them, parsed by `eventsource-parser` (the WHATWG algorithm): text in,
 * complete events out, whatever the TCP segmentation.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

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
  let out: SseEvent[] = [];
  const parser = createParser({
    onEvent(message: EventSourceMessage) {
      const event = message.event || 'message';
      // Some engines (and logs of them) drop the blank line between events,
      // so two complete JSON documents arrive as one multi-line event: split
      // them rather than fail on a JSON parse. Genuine multi-line data stays whole.
      if (message.data.includes('\n')) {
        const lines = message.data.split('\n');
        if (lines.every(looksComplete)) {
          for (const data of lines) out.push({ event, data });
          return;
        }
      }
      out.push({ event, data: message.data });
    },
  });
  const take = () => {
    const events = out;
    out = [];
    return events;
  };
  // The common case, an event of one `data: ` line ended by a blank line
  // (`\n\n`), is read here; any other complete event goes through the
  // parser, which so always starts at an event boundary. Text after the last
  // blank line waits in `pending`. A CR anywhere sends everything through
  // the parser from then on.
  let pending = '';
  let slow = false;
  return {
    push(chunk) {
      if (slow) {
        parser.feed(chunk);
        return take();
      }
      if (chunk.includes('\r')) {
        slow = true;
        parser.feed(pending + chunk);
        pending = '';
        return take();
      }
      const text = pending + chunk;
      let start = 0;
      for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n', start)) {
        // An empty block is a blank line: no event.
        if (end > start) {
          if (text.indexOf('\n', start) === end && text.startsWith('data: ', start)) {
            out.push({ event: 'message', data: text.slice(start + 6, end) });
          } else {
            parser.feed(text.slice(start, end + 2));
          }
        }
        start = end + 2;
      }
      pending = start === 0 ? text : text.slice(start);
      return take();
    },
    flush() {
      // A blank line ends whatever the stream left open: an unterminated
      // line, or an event without its terminating blank line.
      parser.feed(`${pending}\n\n`);
      pending = '';
      parser.reset();
      return take();
    },
  };
}

function looksComplete(value: string): boolean {
  const v = value.trim();
  return v === '[DONE]' || (v.startsWith('{') && v.endsWith('}'));
}
