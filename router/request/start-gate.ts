/**
 * Starts the requests of a burst in turns of the event loop, so the first
 * ones reach their pods while the router still sets up the rest.
 *
 * Node writes an HTTP/2 session's frames once per turn of the event loop
 * (after the turn's callbacks and their promise jobs), and gRPC hands the
 * router every request that arrived in one read within a single callback.
 * Set up all at once, a burst of N requests sends its first Engine call only
 * after the N-th is set up: each request's time to first token includes the
 * setup of the whole burst. Here at most {@link START_PER_TURN} requests (or
 * half of those waiting, when more wait) start in one turn; the rest start
 * in the next turns, after the calls of the earlier ones went out. A request
 * that arrives with nobody waiting and the turn's share left starts at once,
 * with no promise and no tick.
 */

/** Requests that start in one turn of the event loop while others wait. */
export const START_PER_TURN = 8;

/** Lets requests start, a share of them per turn of the event loop. */
export class StartGate {
  private readonly waiting: Array<() => void> = [];
  /** Requests started at once since the last turn. */
  private startedAtOnce = 0;
  private resetScheduled = false;
  /** Starts scheduled for the next turn (one immediate each). */
  private slots = 0;

  constructor(private readonly perTurn = START_PER_TURN) {}

  /** Requests waiting for their turn. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Undefined when the request may start now; else resolves at its turn (in arrival order). */
  enter(): Promise<void> | undefined {
    if (this.waiting.length === 0 && this.startedAtOnce < this.perTurn) {
      this.startedAtOnce++;
      if (!this.resetScheduled) {
        this.resetScheduled = true;
        setImmediate(this.reset);
      }
      return undefined;
    }
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.plan();
    });
  }

  private readonly reset = (): void => {
    this.resetScheduled = false;
    this.startedAtOnce = 0;
  };

  /**
   * Schedules the next turn's starts: half of those waiting, at least
   * `perTurn` (so a burst drains in a few turns however long each takes).
   * One immediate per start: Node runs the promise jobs of each immediate
   * before the next, so a request whose setup needs no I/O is set up
   * (admitted, its pod picked and counted) before the next one asks, as when
   * requests arrive apart. One that waits (a shared rate limit's Redis
   * round trip, the admission queue) lets the next ones go ahead.
   * Node writes the frames of earlier turns before it runs immediates.
   */
  private plan(): void {
    const want = Math.min(this.waiting.length, Math.max(this.perTurn, Math.ceil(this.waiting.length / 2)));
    for (; this.slots < want; this.slots++) setImmediate(this.slot);
  }

  private readonly slot = (): void => {
    this.slots--;
    this.waiting.shift()?.();
    // The turn's last start: plan the next turn (immediates scheduled now run after the next poll).
    if (this.slots === 0 && this.waiting.length > 0) this.plan();
  };
}
