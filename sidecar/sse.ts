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
  return {
    push(chunk) {
      parser.feed(chunk);
      return take();
    },
    flush() {
      // A blank line ends whatever the stream left open: an unterminated
      // line, or an event without its terminating blank line.
      parser.feed('\n\n');
      parser.reset();
      return take();
    },
  };
}

function looksComplete(value: string): boolean {
  const v = value.trim();
  return v === '[DONE]' || (v.startsWith('{') && v.endsWith('}'));
}
