/**
 * What a run measured: per-request records folded into HDR histograms and
 * counters, and the summary reports print (p50/p90/p99 of TTFT, ITL, TPOT and
 * end-to-end latency, throughput, errors by status, split by version, prompt
 * cache hit rate).
 */
import * as hdr from 'hdr-histogram-js';

/** One finished (or failed) request, as the load generator saw it. Times in ms. */
export interface RequestRecord {
  /** Which target (series) served it, e.g. `router` or `direct`. */
  target: string;
  /** `OK` or the gRPC status name (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`, …). */
  status: string;
  /** Model version (`x-llmmesh-version`, else the first chunk's `model_version`); '' when unknown. */
  version: string;
  /** Serving endpoint (`x-llmmesh-endpoint`); '' when unknown. */
  endpoint: string;
  /** Start, relative to the run's start. */
  startMs: number;
  /** Time to the first chunk; undefined when none arrived. */
  ttftMs: number | undefined;
  /** Start to end of the call. */
  e2eMs: number;
  /** Chunks received. */
  chunks: number;
  /** Completion tokens (usage on the last chunk, else the chunk count). */
  outputTokens: number;
  promptTokens: number;
  /** Prompt tokens the engine served from its prefix cache. */
  cachedTokens: number;
  /** Gaps between consecutive chunks (inter-token latency as streamed). */
  gapsMs: readonly number[];
  /** The status message of a failed request. */
  message?: string;
  /** `grpc-retry-pushback-ms` of a failed request's trailers, when it had one. */
  pushbackMs?: number;
}

/** Distribution of one latency, in ms. */
export interface LatencyStats {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** One version's share of a run. */
export interface VersionStats {
  requests: number;
  ok: number;
  /** Share of the run's requests. */
  share: number;
  ttft: LatencyStats;
  e2e: LatencyStats;
  outputTokens: number;
}

/** The summary of one run (or one target of it). */
export interface RunStats {
  requests: number;
  ok: number;
  /** Failed requests by gRPC status name. */
  errors: Record<string, number>;
  /** The first message seen for each failed status (for diagnosis). */
  errorMessages: Record<string, string>;
  /**
   * Measured window: first start to last end of the counted requests; for
   * duration runs, the measurement window, the throughputs then counting only
   * what arrived inside it.
   */
  durationS: number;
  requestsPerS: number;
  outputTokensPerS: number;
  chunksPerS: number;
  promptTokens: number;
  outputTokens: number;
  cachedTokens: number;
  /** Chunks of the successful requests. */
  chunks: number;
  /** cachedTokens / promptTokens (0 when no prompt tokens were reported). */
  cacheHitRate: number;
  ttft: LatencyStats;
  /** Inter-chunk gaps. */
  itl: LatencyStats;
  /** Per request: (e2e − TTFT) / (output tokens − 1). */
  tpot: LatencyStats;
  e2e: LatencyStats;
  versions: Record<string, VersionStats>;
  /** TTFT CDF: [ms, cumulative fraction] points, for plots. */
  ttftCdf: Array<[number, number]>;
}

/** Latencies are recorded in microseconds, up to an hour, with 3 significant digits. */
const HIGHEST_US = 3_600_000_000;
const CDF_PERCENTILES = [
  0, 1, 2.5, 5, 7.5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 92.5, 95, 97.5, 99,
  99.5, 99.9, 100,
];

/** An HDR histogram of milliseconds (stored as microseconds). */
export interface LatencyHistogram {
  record(ms: number): void;
  add(other: LatencyHistogram): void;
  readonly count: number;
  /** The value at `percentile` (0–100), in ms. */
  at(percentile: number): number;
  stats(): LatencyStats;
  /** [ms, fraction] points of the cumulative distribution. */
  cdf(): Array<[number, number]>;
  /** The underlying histogram (for {@link LatencyHistogram.add}). */
  readonly raw: hdr.Histogram;
}

/** Creates an empty latency histogram. */
export function createLatencyHistogram(): LatencyHistogram {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
  const at = (p: number) => (h.totalCount === 0 ? 0 : h.getValueAtPercentile(p) / 1000);
  return {
    raw: h,
    record(ms) {
      h.recordValue(Math.min(HIGHEST_US, Math.max(1, Math.round(ms * 1000))));
    },
    add(other) {
      h.add(other.raw);
    },
    get count() {
      return h.totalCount;
    },
    at,
    stats() {
      if (h.totalCount === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0 };
      return {
        count: h.totalCount,
        mean: h.mean / 1000,
        p50: at(50),
        p90: at(90),
        p99: at(99),
        max: h.maxValue / 1000,
      };
    },
    cdf() {
      if (h.totalCount === 0) return [];
      return CDF_PERCENTILES.map((p) => [p === 0 ? h.minNonZeroValue / 1000 : at(p), p / 100]);
    },
  };
}

/** Folds request records into {@link RunStats}. */
export interface StatsCollector {
  add(record: RequestRecord): void;
  /** Records added so far (gaps dropped). */
  readonly count: number;
  summarize(): RunStats;
}

/** Creates an empty collector. */
export function createStatsCollector(): StatsCollector {
  const ttft = createLatencyHistogram();
  const itl = createLatencyHistogram();
  const tpot = createLatencyHistogram();
  const e2e = createLatencyHistogram();
  const errors: Record<string, number> = {};
  const errorMessages: Record<string, string> = {};
  const versions = new Map<
    string,
    { requests: number; ok: number; ttft: LatencyHistogram; e2e: LatencyHistogram; outputTokens: number }
  >();
  let requests = 0;
  let ok = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  const totals = { promptTokens: 0, outputTokens: 0, cachedTokens: 0, chunks: 0 };

  return {
    get count() {
      return requests;
    },
    add(r) {
      requests++;
      first = Math.min(first, r.startMs);
      last = Math.max(last, r.startMs + r.e2eMs);
      const vkey = r.version || '(none)';
      let v = versions.get(vkey);
      if (!v) {
        v = {
          requests: 0,
          ok: 0,
          ttft: createLatencyHistogram(),
          e2e: createLatencyHistogram(),
          outputTokens: 0,
        };
        versions.set(vkey, v);
      }
      v.requests++;
      if (r.status !== 'OK') {
        errors[r.status] = (errors[r.status] ?? 0) + 1;
        if (r.message && errorMessages[r.status] === undefined) errorMessages[r.status] = r.message;
        return;
      }
      ok++;
      v.ok++;
      totals.promptTokens += r.promptTokens;
      totals.outputTokens += r.outputTokens;
      totals.cachedTokens += r.cachedTokens;
      totals.chunks += r.chunks;
      v.outputTokens += r.outputTokens;
      e2e.record(r.e2eMs);
      v.e2e.record(r.e2eMs);
      if (r.ttftMs !== undefined) {
        ttft.record(r.ttftMs);
        v.ttft.record(r.ttftMs);
        if (r.outputTokens > 1) tpot.record((r.e2eMs - r.ttftMs) / (r.outputTokens - 1));
      }
      for (const g of r.gapsMs) itl.record(g);
    },
    summarize() {
      const durationS = requests > 0 ? Math.max(1e-9, (last - first) / 1000) : 0;
      const per = (n: number) => (durationS > 0 ? n / durationS : 0);
      return {
        requests,
        ok,
        errors: { ...errors },
        errorMessages: { ...errorMessages },
        durationS,
        requestsPerS: per(ok),
        outputTokensPerS: per(totals.outputTokens),
        chunksPerS: per(totals.chunks),
        promptTokens: totals.promptTokens,
        outputTokens: totals.outputTokens,
        cachedTokens: totals.cachedTokens,
        chunks: totals.chunks,
        cacheHitRate: totals.promptTokens > 0 ? totals.cachedTokens / totals.promptTokens : 0,
        ttft: ttft.stats(),
        itl: itl.stats(),
        tpot: tpot.stats(),
        e2e: e2e.stats(),
        versions: Object.fromEntries(
          [...versions].map(([name, v]) => [
            name,
            {
              requests: v.requests,
              ok: v.ok,
              share: v.requests / requests,
              ttft: v.ttft.stats(),
              e2e: v.e2e.stats(),
              outputTokens: v.outputTokens,
            },
          ]),
        ),
        ttftCdf: ttft.cdf(),
      };
    },
  };
}
