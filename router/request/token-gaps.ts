/**
 * A stream's inter-token gaps, handed to the metrics in batches: each chunk
 * stores its gap in this per-stream buffer, and every {@link GAP_BATCH} gaps,
 * and once more when the stream ends, they all go into the inter-token
 * latency histogram and the canary's current window at once. Every gap is
 * still observed; a scrape or a canary judgement sees a running stream's
 * gaps up to {@link GAP_BATCH} chunks late, in the window current when they
 * are handed over (a stream's gaps are recorded with the stream, as its
 * request is when it finishes). The per-chunk path then writes one number
 * into a stream-owned buffer instead of reaching the shared histogram and
 * the canary's windows for each chunk.
 */
import type { Canary } from '../canary/types.js';
import type { HistogramSeries } from '../local-histogram.js';

/** Gaps a stream keeps before handing them over. */
export const GAP_BATCH = 32;

/** One stream's gaps not yet observed; see the module comment. */
export class TokenGaps {
  private readonly seconds = new Float64Array(GAP_BATCH);
  private count = 0;

  constructor(
    private readonly itl: HistogramSeries,
    private readonly canary: Canary | undefined,
    private readonly model: string,
    private readonly version: string,
  ) {}

  /** One gap, in seconds. */
  add(seconds: number): void {
    this.seconds[this.count++] = seconds;
    if (this.count === GAP_BATCH) this.flush();
  }

  /** Observes the gaps kept so far (at the end of the stream, and whenever the buffer is full). */
  flush(): void {
    const n = this.count;
    if (n === 0) return;
    this.count = 0;
    const seconds = this.seconds;
    for (let i = 0; i < n; i++) this.itl.observe(seconds[i] as number);
    this.canary?.gaps(this.model, this.version, seconds, n);
  }
}
