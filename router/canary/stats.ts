/**
 * Mergeable request statistics of one model version: counts, a sparse
 * log-bucketed histogram for TTFT and inter-token latency (percentiles within
 * 2.5 % of the true value, whatever the range), output tokens and their
 * streaming time, cost. Sums of these are exact, so windows, replicas and
 * steps merge by adding; the JSON form travels through Redis.
 */

/** Smallest latency told apart (seconds); anything below lands in the first bin. */
const MIN_SECONDS = 1e-5;
/** Ratio between neighbouring bins: a bin's value is within 2.5 % of any sample in it. */
const GROWTH = 1.05;
const LOG_GROWTH = Math.log(GROWTH);

/** A sparse histogram: bin index → count. */
export type Histogram = Map<number, number>;

/** The bin of a latency in seconds. */
export function binOf(seconds: number): number {
  if (!(seconds > MIN_SECONDS)) return 0;
  return Math.ceil(Math.log(seconds / MIN_SECONDS) / LOG_GROWTH);
}

/** The value (seconds) a bin stands for: the geometric middle of its range. */
export function binValue(bin: number): number {
  return bin === 0 ? MIN_SECONDS : MIN_SECONDS * GROWTH ** (bin - 0.5);
}

/** The `q` quantile (0..1) of a histogram, in seconds; undefined when empty. */
export function quantile(h: Histogram, q: number): number | undefined {
  let total = 0;
  for (const n of h.values()) total += n;
  if (total === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (const bin of [...h.keys()].sort((a, b) => a - b)) {
    seen += h.get(bin) ?? 0;
    if (seen >= rank) return binValue(bin);
  }
  return undefined;
}

/** Statistics of some requests of one version. */
export interface VersionStats {
  /** Finished requests (any outcome but the client's own cancellation or fault). */
  requests: number;
  /** Requests that met an endpoint fault, whether or not a retry hid it from the client. */
  faults: number;
  ttft: Histogram;
  itl: Histogram;
  inputTokens: number;
  outputTokens: number;
  /** Time from first to last chunk, summed over requests (seconds). */
  streamSeconds: number;
  /** Cost of these requests (currency units of the configured price). */
  cost: number;
}

/** Empty statistics. */
export function emptyStats(): VersionStats {
  return {
    requests: 0,
    faults: 0,
    ttft: new Map(),
    itl: new Map(),
    inputTokens: 0,
    outputTokens: 0,
    streamSeconds: 0,
    cost: 0,
  };
}

/** Adds `from` into `into` (and returns `into`). */
export function mergeStats(into: VersionStats, from: VersionStats): VersionStats {
  into.requests += from.requests;
  into.faults += from.faults;
  into.inputTokens += from.inputTokens;
  into.outputTokens += from.outputTokens;
  into.streamSeconds += from.streamSeconds;
  into.cost += from.cost;
  for (const [b, n] of from.ttft) into.ttft.set(b, (into.ttft.get(b) ?? 0) + n);
  for (const [b, n] of from.itl) into.itl.set(b, (into.itl.get(b) ?? 0) + n);
  return into;
}

/** Counts one sample into a histogram. */
export function observe(h: Histogram, seconds: number): void {
  const b = binOf(seconds);
  h.set(b, (h.get(b) ?? 0) + 1);
}

/** The JSON form (for Redis). */
export interface StatsJson {
  r: number;
  f: number;
  i: number;
  o: number;
  s: number;
  c: number;
  t: Array<[number, number]>;
  l: Array<[number, number]>;
}

/** Serialises statistics. */
export function statsToJson(s: VersionStats): StatsJson {
  return {
    r: s.requests,
    f: s.faults,
    i: s.inputTokens,
    o: s.outputTokens,
    s: s.streamSeconds,
    c: s.cost,
    t: [...s.ttft],
    l: [...s.itl],
  };
}

/** Reads statistics back; tolerant of missing fields (a replica of another build). */
export function statsFromJson(j: Partial<StatsJson>): VersionStats {
  const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  const hist = (x: unknown): Histogram =>
    new Map(
      Array.isArray(x)
        ? x
            .filter((p): p is [number, number] => Array.isArray(p) && p.length === 2)
            .map(([b, n]) => [num(b), num(n)])
        : [],
    );
  return {
    requests: num(j.r),
    faults: num(j.f),
    inputTokens: num(j.i),
    outputTokens: num(j.o),
    streamSeconds: num(j.s),
    cost: num(j.c),
    ttft: hist(j.t),
    itl: hist(j.l),
  };
}

/** What the status page, metrics and the judge read of some statistics. */
export interface StatsSummary {
  requests: number;
  /** Endpoint-fault error rate, 0..1 (null without requests). */
  errorRate: number | null;
  ttftP50: number | null;
  ttftP90: number | null;
  ttftP99: number | null;
  itlP90: number | null;
  /** Output tokens per second of streaming (null when nothing streamed). */
  outputTokensPerSecond: number | null;
  /** Cost of 1,000 such requests (null without requests). */
  costPer1kRequests: number | null;
  cost: number;
}

/** Summarises statistics (latencies in seconds). */
export function summarize(s: VersionStats): StatsSummary {
  const q = (h: Histogram, p: number) => quantile(h, p) ?? null;
  return {
    requests: s.requests,
    errorRate: s.requests > 0 ? s.faults / s.requests : null,
    ttftP50: q(s.ttft, 0.5),
    ttftP90: q(s.ttft, 0.9),
    ttftP99: q(s.ttft, 0.99),
    itlP90: q(s.itl, 0.9),
    outputTokensPerSecond: s.streamSeconds > 0 ? s.outputTokens / s.streamSeconds : null,
    costPer1kRequests: s.requests > 0 ? (1000 * s.cost) / s.requests : null,
    cost: s.cost,
  };
}
