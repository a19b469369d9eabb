/**
 * Aborting one call's work. A GenerateStream call needs one abort source
 * (its caller going away, a drain handing the stream back, the last
 * follower leaving a flight) seen by a handful of listeners: admission, the
 * engine request, the stream writer. Node's `AbortController` does that
 * through an `EventTarget`, and creating one, adding its listeners and
 * removing them costs 5–6 µs in a loop here (more on a loaded request
 * path); a {@link CallAbort} does the same for a twentieth of that. A real
 * `AbortSignal` still fits wherever an {@link AbortLike} is taken.
 */

/** The part of an `AbortSignal` the sidecar's request path uses; a real `AbortSignal` is one. */
export interface AbortLike {
  readonly aborted: boolean;
  /** Calls `listener` once, when aborted (never if it is already). */
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** What aborts an {@link AbortLike}; a real `AbortController` is one. */
export interface AborterLike {
  readonly signal: AbortLike;
  abort(): void;
}

/**
 * An abort source and its signal in one object, as an `AbortController`
 * and its signal behave: `abort()` sets `aborted` and calls every listener
 * once, in the order added; a listener added twice is called once; one
 * added after the abort is never called. Listeners must not throw.
 */
export class CallAbort implements AbortLike, AborterLike {
  aborted = false;
  private listeners: Array<() => void> | undefined = undefined;

  get signal(): AbortLike {
    return this;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners;
    if (listeners === undefined) return;
    // As an EventTarget dispatches: a listener removed by an earlier one is
    // not called (one added meanwhile never is: the signal is aborted).
    for (const l of listeners.slice()) if (listeners.includes(l)) l();
    this.listeners = undefined;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    const listeners = this.listeners;
    if (listeners === undefined) this.listeners = [listener];
    else if (!listeners.includes(listener)) listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const listeners = this.listeners;
    if (listeners === undefined) return;
    const i = listeners.indexOf(listener);
    if (i >= 0) listeners.splice(i, 1);
  }
}
