/** Event-driven waiting for tests: no sleeps, a bounded wait that names what it waited for. */
import type { EventEmitter } from 'node:events';

/**
 * How long a wait may take before the test fails naming it. Only a bound for
 * a wait that will never end: a loaded machine runs a test process many times
 * slower than an idle one, and a slow wait is no failure.
 */
export const WAIT_TIMEOUT_MS = 60_000;

/**
 * Resolves once `predicate()` holds, re-checking on every `event` of
 * `emitter`. Rejects after `timeoutMs` with `what` in the message.
 */
export function waitUntil(
  emitter: EventEmitter,
  event: string,
  predicate: () => boolean,
  what: string,
  timeoutMs = WAIT_TIMEOUT_MS,
): Promise<void> {
  if (predicate()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!predicate()) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      emitter.off(event, check);
    };
    emitter.on(event, check);
  });
}

/** Resolves with the first `event` whose payload satisfies `match`. */
export function nextEvent<T>(
  emitter: EventEmitter,
  event: string,
  match: (payload: T) => boolean = () => true,
  timeoutMs = WAIT_TIMEOUT_MS,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (payload: T) => {
      if (!match(payload)) return;
      cleanup();
      resolve(payload);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      emitter.off(event, on);
    };
    emitter.on(event, on);
  });
}
