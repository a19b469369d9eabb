/**
 * A request's cancellation without AbortController: an AbortSignal is an
 * EventTarget, and creating one (with its listener bookkeeping) per request
 * costs more than the rest of the request's setup. The pipeline needs only
 * `aborted` and one-shot listeners; {@link CancelSignal} is that subset, so
 * an AbortSignal works wherever a stage takes one.
 */

/** What the pipeline reads of a cancellation: AbortSignal satisfies it. */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** One request's cancellation; `abort` runs each listener once, in the order added. */
export class Cancellation implements CancelSignal {
  aborted = false;
  private listeners: Array<() => void> | undefined;

  /** Aborts (for `call.once('cancelled', ...)`); later calls do nothing. */
  readonly abort = (): void => {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (!listeners) return;
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        // As an EventTarget does: a throwing listener neither stops the others nor the caller.
        process.nextTick(() => {
          throw err;
        });
      }
    }
  };

  /** Listens for the abort; after it, as with an AbortSignal, the listener is never called. */
  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    if (this.listeners) this.listeners.push(listener);
    else this.listeners = [listener];
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const listeners = this.listeners;
    if (!listeners) return;
    const i = listeners.indexOf(listener);
    if (i >= 0) listeners.splice(i, 1);
  }
}
