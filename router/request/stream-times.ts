/**
 * A stream's chunk times: when its first and last chunk reached the
 * lifecycle, and its inter-token gaps, handed to the metrics in batches.
 * Each chunk stores its gap in this per-stream record; every
 * {@link GAP_BATCH} gaps, and once more when the stream ends, they all go
 * into the inter-token latency histogram and the canary's current window at
 * once. Every gap is still observed; a scrape or a canary judgement sees a
 * running stream's gaps up to {@link GAP_BATCH} chunks late, in the window
 * current when they are handed over (a stream's gaps are recorded with the
 * stream, as its request is when it finishes). The per-chunk path then
 * writes two numbers into one stream-owned object (its fields hold doubles
 * in place, where a closure's variables would box a new number each chunk)
 * instead of reaching the shared histogram and the canary's windows.
 */
import type { Canary } from '../canary/types.js';
import type { HistogramSeries } from '../local-histogram.js';

/** Gaps a stream keeps before handing them over. */
export const GAP_BATCH = 32;

/** Where a stream's gaps go, bound at its first chunk. */
interface GapSink {
  itl: HistogramSeries;
  canary: Canary | undefined;
  model: string;
  version: string;
}

/** One stream's chunk times; see the module comment. */
export class StreamTimes {
  /** When the first chunk arrived (the router's clock, ms); 0 until then. */
  firstAt = 0;
  /** When the latest chunk arrived. */
  lastAt = 0;
  private count = 0;
  /** Both set at the first chunk (a request that never streams allocates neither). */
  private gaps: Float64Array | undefined;
  private sink: GapSink | undefined;

  /** The first chunk, at `at`; later gaps go to `sink`. */
  first(at: number, sink: GapSink): void {
    this.firstAt = at;
    this.lastAt = at;
    this.sink = sink;
    this.gaps = new Float64Array(GAP_BATCH);
  }

  /** A later chunk, at `at`. */
  next(at: number): void {
    (this.gaps as Float64Array)[this.count++] = (at - this.lastAt) / 1000;
    this.lastAt = at;
    if (this.count === GAP_BATCH) this.flush();
  }

  /** Observes the gaps kept so far (at the end of the stream, and whenever the buffer is full). */
  flush(): void {
    const n = this.count;
    const sink = this.sink;
    const gaps = this.gaps;
    if (n === 0 || !sink || !gaps) return;
    this.count = 0;
    for (let i = 0; i < n; i++) sink.itl.observe(gaps[i] as number);
    sink.canary?.gaps(sink.model, sink.version, gaps, n);
  }
}
