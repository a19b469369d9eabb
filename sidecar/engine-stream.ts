/**
 * Reading one streamed completion response of an OpenAI-compatible engine:
 * its SSE events turned into {@link EngineEvent}s (text as it arrives, then
 * one last event with the finish reason and usage), either as an async
 * generator or handed to a callback in the read that brought them, and the
 * response released afterwards: read to its end after `[DONE]` so the
 * keep-alive connection goes back to the pool, destroyed otherwise (which
 * vLLM sees as a client disconnect and aborts).
 */
import type http from 'node:http';
import { finished } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { errors, fromEngineErrorObject, MeshError } from '../common/errors.js';
import { type EngineUsage, parseStreamChunk } from './openai.js';
import { createSseParser, type SseEvent } from './sse.js';

/** One event of a streamed completion. */
export interface EngineEvent {
  /** Generated text (may be empty on the final event). */
  text: string;
  /** Token ids of `text`, when the engine gives them. */
  tokenIds?: number[];
  /** Set on the final event only: `stop`, `length` or an engine-specific reason. */
  finishReason?: string;
  /** Set on the final event only, when the engine reported usage. */
  usage?: EngineUsage;
}

/**
 * The events of one streamed completion response, from its SSE `data`
 * fields in order: text as it arrives, then one last event with the finish
 * reason and usage (and any text or ids that came with or after the finish).
 * Throws on in-band errors and malformed events.
 */
interface EventReader {
  /** `[DONE]` was read. */
  readonly done: boolean;
  /** The event one `data` field yields now, if any. */
  read(data: string): EngineEvent | undefined;
  /** The last event; throws when the stream ended without a finish. */
  last(): EngineEvent;
}

function createEventReader(label: string): EventReader {
  return new StreamEventReader(label);
}

/** A class: `done` is read at every event, and its methods are shared on the prototype, not made per stream (see createFlight). */
class StreamEventReader implements EventReader {
  done = false;
  private finishReason: string | undefined = undefined;
  private usage: EngineUsage | undefined = undefined;
  private pendingText = '';
  private pendingIds: number[] | undefined = undefined;

  constructor(private readonly label: string) {}

  read(data: string): EngineEvent | undefined {
    // An event that opens a JSON object (every one but the last) is not `[DONE]`.
    if (data.charCodeAt(0) !== 0x7b && data.trim() === '[DONE]') {
      this.done = true;
      return undefined;
    }
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      throw errors.internal(`engine at ${this.label} sent a malformed stream event: ${data.slice(0, 200)}`);
    }
    if (typeof json === 'object' && json !== null && 'error' in json) {
      throw fromEngineErrorObject(json, this.label);
    }
    const chunk = parseStreamChunk(json);
    if (!chunk) return undefined;
    if (chunk.usage) this.usage = chunk.usage;
    if (this.finishReason !== undefined || chunk.finishReason !== undefined) {
      // Hold the finish chunk until usage (vLLM sends it right after), so
      // the last text, finish reason and usage travel as one chunk. Text
      // after the finish chunk is unusual but must not be lost.
      this.finishReason ??= chunk.finishReason;
      this.pendingText += chunk.text;
      if (chunk.tokenIds?.length) this.pendingIds = [...(this.pendingIds ?? []), ...chunk.tokenIds];
      return undefined;
    }
    // A token may decode to no text yet (part of a character): its id still counts.
    if (!chunk.text && !chunk.tokenIds?.length) return undefined;
    // Usage travels on the last event only.
    if (!chunk.usage && (chunk.tokenIds === undefined || chunk.tokenIds.length > 0)) return chunk;
    const ev: EngineEvent = { text: chunk.text };
    if (chunk.tokenIds?.length) ev.tokenIds = chunk.tokenIds;
    return ev;
  }

  last(): EngineEvent {
    if (this.finishReason === undefined) {
      throw errors.unavailable(`engine at ${this.label} closed the stream before finishing`);
    }
    const last: EngineEvent = { text: this.pendingText, finishReason: this.finishReason };
    if (this.pendingIds) last.tokenIds = this.pendingIds;
    if (this.usage) last.usage = this.usage;
    return last;
  }
}

/**
 * Ends a response whether its stream finished, failed or was abandoned.
 * After `[DONE]` only the end of the body is left: it is read, so the
 * connection goes back to the pool (an engine that does not end the
 * response soon loses it). Any other unfinished response is destroyed,
 * which vLLM sees as a client disconnect and aborts.
 */
function release(res: http.IncomingMessage, done: boolean): void {
  if (res.complete) return;
  if (done) drainRest(res);
  else res.destroy();
}

/** The events of one streamed completion response (see {@link createEventReader}), as a generator. */
export async function* streamEvents(res: http.IncomingMessage, label: string): AsyncGenerator<EngineEvent> {
  const parser = createSseParser();
  const decoder = new StringDecoder('utf8');
  const reader = createEventReader(label);
  try {
    // Not destroyed when the loop leaves at `[DONE]`: see release().
    for await (const part of res.iterator({ destroyOnReturn: false })) {
      for (const sse of parser.push(decoder.write(part as Buffer))) {
        const ev = reader.read(sse.data);
        if (ev) yield ev;
        if (reader.done) break;
      }
      if (reader.done) break;
    }
    if (!reader.done) {
      for (const sse of parser.push(decoder.end()).concat(parser.flush())) {
        const ev = reader.read(sse.data);
        if (ev) yield ev;
      }
    }
  } catch (err) {
    if (err instanceof MeshError) throw err;
    throw MeshError.from(err, `engine at ${label}`);
  } finally {
    release(res, reader.done);
  }
  yield reader.last();
}

/**
 * The events of one streamed completion response (see {@link createEventReader}),
 * each handed to `onEvent` in the `data` event that brought it.
 */
export function eachEvent(
  res: http.IncomingMessage,
  label: string,
  onEvent: (ev: EngineEvent) => boolean | undefined,
): Promise<void> {
  const parser = createSseParser();
  const decoder = new StringDecoder('utf8');
  const reader = createEventReader(label);
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    // What `onEvent` threw goes to the caller as it is.
    let thrown: { err: unknown } | undefined;
    const deliver = (ev: EngineEvent): boolean => {
      try {
        return onEvent(ev) !== false;
      } catch (err) {
        thrown = { err };
        throw err;
      }
    };
    const fail = (err: unknown) =>
      reject(
        thrown ? thrown.err : err instanceof MeshError ? err : MeshError.from(err, `engine at ${label}`),
      );
    const settle = (err?: unknown) => {
      settled = true;
      res.off('data', onData);
      stopWatching();
      release(res, err === undefined && reader.done);
      if (err === undefined) resolve();
      else fail(err);
    };
    /** Hands the events of `parts` on; false once the stream is over. */
    const feed = (parts: SseEvent[], stopAtDone: boolean): boolean => {
      for (const sse of parts) {
        const ev = reader.read(sse.data);
        if (ev && !deliver(ev)) {
          settle();
          return false;
        }
        if (stopAtDone && reader.done) {
          finish();
          return false;
        }
      }
      return true;
    };
    const finish = () => {
      // The last event goes out after the response is released, as the generator's does.
      settled = true;
      res.off('data', onData);
      stopWatching();
      release(res, reader.done);
      try {
        deliver(reader.last());
      } catch (err) {
        fail(err);
        return;
      }
      resolve();
    };
    const onData = (part: Buffer) => {
      if (settled) return;
      try {
        feed(parser.push(decoder.write(part)), true);
      } catch (err) {
        settle(err);
      }
    };
    const stopWatching = finished(res, { writable: false }, (err) => {
      if (settled) return;
      if (err) {
        settle(err);
        return;
      }
      try {
        if (feed(parser.push(decoder.end()).concat(parser.flush()), false)) finish();
      } catch (e) {
        settle(e);
      }
    });
    res.on('data', onData);
  });
}

/** How long the end of a response may take to arrive after `[DONE]`. */
const END_AFTER_DONE_MS = 1000;

/** Reads what is left of a finished stream's response, destroying it if it does not end soon. */
function drainRest(res: http.IncomingMessage): void {
  const timer = setTimeout(() => res.destroy(), END_AFTER_DONE_MS);
  timer.unref();
  res.once('close', () => clearTimeout(timer));
  res.resume();
}
