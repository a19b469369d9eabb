/**
 * A prom-client Histogram whose observations are counted in plain numbers
 * per label set and handed to prom-client only when the registry is
 * scraped. prom-client's own `observe` hashes and validates the labels on
 * every call; on the data path (one inter-token observation per streamed
 * chunk) that costs more than the rest of the relay. Here a caller binds a
 * {@link HistogramSeries} once (per request) and each observation is a
 * bucket search and three additions; `observe(labels, v)` keeps working
 * (one map lookup). The scrape output is the Histogram's own: same name,
 * labels, buckets and order, since prom-client formats the values.
 */
import { Histogram, type HistogramConfiguration, type LabelValues } from 'prom-client';

/** One label set's counts; `observe` is cheap enough for every chunk. */
export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string | number>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }
}

/** What prom-client keeps per label set (its export reads these fields). */
interface PromEntry {
  labels: Readonly<Record<string, string | number>>;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

type ObserveFn<T extends string> = (labels: LabelValues<T> | number, value?: number) => void;

/** A labelled Histogram with cheap observations; see the module comment. */
export class LocalHistogram<T extends string> extends Histogram<T> {
  // Not a field initializer: prom-client's constructor calls reset() before fields exist.
  private local!: Map<string, HistogramSeries>;
  private readonly bounds: readonly number[];
  private readonly names: readonly string[];

  constructor(config: HistogramConfiguration<T>) {
    const collect = config.collect;
    super({
      ...config,
      collect(this: Histogram<T>) {
        (this as LocalHistogram<T>).publish();
        return collect?.call(this);
      },
    });
    this.local ??= new Map();
    const self = this as unknown as { upperBounds: readonly number[]; labelNames: readonly string[] };
    this.bounds = self.upperBounds;
    this.names = self.labelNames;
    const observe: ObserveFn<T> = (labels, value) => {
      if (typeof labels === 'number') this.series({} as LabelValues<T>).observe(labels);
      else this.series(labels).observe(value as number);
    };
    (this as unknown as { observe: ObserveFn<T> }).observe = observe;
    // prom-client shows an unlabelled histogram's zero buckets before any observation.
    if (this.names.length === 0) this.series({} as LabelValues<T>);
  }

  /** The series for `labels`, created (and validated) on first use; keep it to observe on a hot path. */
  series(labels: LabelValues<T>): HistogramSeries {
    const key = this.keyOf(labels);
    let s = this.local.get(key);
    if (!s) {
      for (const name of Object.keys(labels)) {
        if (!this.names.includes(name)) {
          throw new Error(
            `Added label "${name}" is not included in initial labelset: ${this.names.join(', ')}`,
          );
        }
      }
      s = new HistogramSeries(labels as Record<string, string | number>, this.bounds);
      this.local.set(key, s);
    }
    return s;
  }

  override labels(...args: unknown[]): { observe(value: number): void; startTimer(): () => number } {
    const labels = (
      typeof args[0] === 'object'
        ? args[0]
        : Object.fromEntries(this.names.map((n, i) => [n, args[i] as string]))
    ) as LabelValues<T>;
    const s = this.series(labels);
    return {
      observe: (value: number) => s.observe(value),
      startTimer: () => {
        const start = process.hrtime.bigint();
        return () => {
          const value = Number(process.hrtime.bigint() - start) / 1e9;
          s.observe(value);
          return value;
        };
      },
    };
  }

  override zero(labels: LabelValues<T>): void {
    this.local.delete(this.keyOf(labels));
    this.series(labels);
  }

  override remove(...args: unknown[]): void {
    const labels = (
      typeof args[0] === 'object'
        ? args[0]
        : Object.fromEntries(this.names.map((n, i) => [n, args[i] as string]))
    ) as LabelValues<T>;
    this.local.delete(this.keyOf(labels));
    super.remove(labels);
  }

  override reset(): void {
    this.local?.clear();
    super.reset();
  }

  /** Copies the local counts into prom-client's store (at scrape time). */
  private publish(): void {
    const store: Record<string, PromEntry> = {};
    for (const [key, s] of this.local) {
      const bucketValues: Record<number, number> = {};
      for (let i = 0; i < this.bounds.length; i++) {
        bucketValues[this.bounds[i] as number] = s.counts[i] as number;
      }
      store[key] = { labels: s.labels, bucketValues, sum: s.sum, count: s.count };
    }
    (this as unknown as { hashMap: Record<string, PromEntry> }).hashMap = store;
  }

  private keyOf(labels: LabelValues<T>): string {
    const l = labels as Record<string, string | number | undefined>;
    const names = this.names;
    if (names.length === 1) return String(l[names[0] as string] ?? '\u0002');
    let key = '';
    for (let i = 0; i < names.length; i++) key += `${l[names[i] as string] ?? '\u0002'}\u0001`;
    return key;
  }
}
