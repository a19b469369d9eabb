/**
 * The load generator: sends a workload to a target open-loop (Poisson
 * arrivals at a rate, as `vllm bench serve --request-rate`) or closed-loop
 * (a fixed number of requests in flight, `--max-concurrency`), for a number
 * of requests or a duration, with a warm-up that is sent but not counted.
 */
import * as grpc from '@grpc/grpc-js';
import { RETRY_PUSHBACK_KEY, Status } from '../common/errors.js';
import { createRandom, deriveSeed, exponentialGapMs } from '../common/random.js';
import { createStatsCollector, type RequestRecord, type RunStats } from './stats.js';
import { type BenchTarget, createTargetClient, type TargetClient, toGenerateRequest } from './targets.js';
import type { Workload } from './workloads.js';

/** How requests are paced. */
export type LoadMode = { kind: 'closed'; concurrency: number } | { kind: 'open'; ratePerS: number };

/** Progress, reported while a run goes. */
export interface LoadProgress {
  /** Requests started (warm-up included). */
  sent: number;
  /** Requests finished (warm-up included). */
  done: number;
  inFlight: number;
  errors: number;
  elapsedMs: number;
  /** 0–1 when the end is known (request count or duration), else undefined. */
  fraction: number | undefined;
  /** True while warm-up requests are being sent. */
  warmingUp: boolean;
}

/** Options of {@link runLoad}. */
export interface LoadOptions {
  target: BenchTarget;
  /** Reuse an open client (the run does not close it). */
  client?: TargetClient;
  model: string;
  workload: Workload;
  mode: LoadMode;
  /** Measured requests (after warm-up). Either this or `durationMs`. */
  requests?: number;
  /** Measured duration (after warm-up), ms. */
  durationMs?: number;
  /** Requests sent first and not counted (default 0). */
  warmupRequests?: number;
  /** Time at the start whose requests are not counted (default 0). */
  warmupMs?: number;
  /** First workload index (default 0), so consecutive runs can continue a workload. */
  startIndex?: number;
  /** Seed of the arrival times (default: the workload's seed). */
  seed?: number;
  /** Per-request deadline (default 120 s). */
  timeoutMs?: number;
  /** Open loop: requests in flight at most; arrivals beyond fail as `CLIENT_OVERLOADED` (default 10,000). */
  maxInFlight?: number;
  /** Sampling temperature to send (default: none, the engine's default). */
  temperature?: number;
  /** Extra request metadata. */
  metadata?: Record<string, string>;
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
  /** Interval of `onProgress` calls (default 200 ms). */
  progressIntervalMs?: number;
  /** Called with every counted record (e.g. to keep them for a test). */
  onRecord?: (r: RequestRecord) => void;
  /** Clock in ms (default `performance.now`). */
  now?: () => number;
}

/** What a run measured. */
export interface LoadResult {
  target: BenchTarget;
  mode: LoadMode;
  workload: string;
  stats: RunStats;
  /** Requests sent, warm-up included. */
  sent: number;
  /** Counted requests by serving endpoint. */
  endpoints: Record<string, number>;
  /** Wall time of the whole run, warm-up included. */
  wallMs: number;
  /** The next unused workload index. */
  nextIndex: number;
}

const SLOW = Number.POSITIVE_INFINITY;

/** Runs one load test to completion (or until `signal` aborts, which cancels in-flight calls). */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { mode, workload, target } = options;
  if (options.requests === undefined && options.durationMs === undefined) {
    throw new RangeError('give requests or durationMs');
  }
  if (mode.kind === 'closed' && !(mode.concurrency >= 1)) throw new RangeError('concurrency must be >= 1');
  if (mode.kind === 'open' && !(mode.ratePerS > 0)) throw new RangeError('rate must be > 0');
  const now = options.now ?? (() => performance.now());
  const client = options.client ?? createTargetClient(target);
  const warmupRequests = options.warmupRequests ?? 0;
  const warmupMs = options.warmupMs ?? 0;
  const totalRequests = options.requests === undefined ? SLOW : warmupRequests + options.requests;
  const endMs = options.durationMs === undefined ? SLOW : warmupMs + options.durationMs;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const maxInFlight = options.maxInFlight ?? 10_000;
  const startIndex = options.startIndex ?? 0;
  const collector = createStatsCollector();
  const endpoints: Record<string, number> = {};
  const calls = new Set<grpc.ClientReadableStream<unknown>>();
  const start = now();
  let sent = 0;
  let done = 0;
  let errors = 0;
  let stopped = false;
  // Steady-state rates of duration runs: chunks that arrived inside the measured window.
  const window = { chunks: 0 };

  const elapsed = () => now() - start;
  const moreToSend = () => !stopped && !options.signal?.aborted && sent < totalRequests && elapsed() < endMs;

  const record = (r: RequestRecord, counted: boolean) => {
    done++;
    if (r.status !== 'OK') errors++;
    if (!counted) return;
    collector.add(r);
    if (r.status === 'OK') endpoints[r.endpoint || '(none)'] = (endpoints[r.endpoint || '(none)'] ?? 0) + 1;
    options.onRecord?.(r);
  };

  /** Sends request `n` (0-based within this run); resolves when it ended. */
  const send = (n: number): Promise<void> => {
    const req = workload.request(startIndex + n);
    const startMs = elapsed();
    const counted = n >= warmupRequests && startMs >= warmupMs;
    sent++;
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(options.metadata ?? {})) md.set(k, v);
    return new Promise<void>((resolve) => {
      const call = client.stream(toGenerateRequest(req, options.model, options.temperature), md, {
        deadline: Date.now() + timeoutMs,
      });
      calls.add(call);
      const gaps: number[] = [];
      let first: number | undefined;
      let last = 0;
      let chunks = 0;
      let version = '';
      let endpoint = '';
      let usage: { promptTokens: number; completionTokens: number; cachedTokens: number } | null = null;
      call.on('metadata', (m: grpc.Metadata) => {
        version ||= String(m.get('x-llmmesh-version')[0] ?? '');
        endpoint ||= String(m.get('x-llmmesh-endpoint')[0] ?? '');
      });
      call.on('data', (chunk) => {
        const t = now();
        const at = t - start;
        if (at >= warmupMs && at < endMs) window.chunks++;
        if (first === undefined) first = t;
        else gaps.push(t - last);
        last = t;
        chunks++;
        if (!version && chunk.modelVersion) version = chunk.modelVersion;
        if (chunk.usage) usage = chunk.usage;
      });
      call.on('error', () => {});
      call.on('status', (s: grpc.StatusObject) => {
        calls.delete(call);
        const end = now();
        const u = usage as typeof usage;
        const pushback = s.code === Status.OK ? undefined : s.metadata?.get(RETRY_PUSHBACK_KEY)[0];
        record(
          {
            target: target.name,
            status: s.code === Status.OK ? 'OK' : (Status[s.code] ?? String(s.code)),
            version,
            endpoint: endpoint || (target.kind === 'engine' ? target.address : ''),
            startMs,
            ttftMs: first === undefined ? undefined : first - start - startMs,
            e2eMs: end - start - startMs,
            chunks,
            outputTokens: u?.completionTokens || chunks,
            promptTokens: u?.promptTokens ?? 0,
            cachedTokens: u?.cachedTokens ?? 0,
            gapsMs: gaps,
            ...(s.code === Status.OK ? {} : { message: s.details }),
            ...(pushback === undefined ? {} : { pushbackMs: Number(pushback) }),
          },
          counted,
        );
        resolve();
      });
    });
  };

  const onAbort = () => {
    stopped = true;
    for (const c of calls) c.cancel();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const progressTimer = options.onProgress
    ? setInterval(() => options.onProgress?.(progress()), options.progressIntervalMs ?? 200)
    : undefined;
  const progress = (): LoadProgress => {
    const e = elapsed();
    const byCount = totalRequests === SLOW ? undefined : done / totalRequests;
    const byTime = endMs === SLOW ? undefined : Math.min(1, e / endMs);
    return {
      sent,
      done,
      inFlight: calls.size,
      errors,
      elapsedMs: e,
      fraction: byCount ?? byTime,
      warmingUp: sent <= warmupRequests || e < warmupMs,
    };
  };

  try {
    if (mode.kind === 'closed') {
      const worker = async () => {
        while (moreToSend()) await send(sent);
      };
      await Promise.all(Array.from({ length: mode.concurrency }, worker));
    } else {
      const random = createRandom(deriveSeed(options.seed ?? workload.seed, 0x0a11));
      let nextAt = 0;
      while (moreToSend()) {
        const wait = nextAt - elapsed();
        if (wait > 1) await sleep(wait, options.signal);
        if (!moreToSend()) break;
        if (calls.size >= maxInFlight) {
          const n = sent++;
          record(
            {
              target: target.name,
              status: 'CLIENT_OVERLOADED',
              version: '',
              endpoint: '',
              startMs: elapsed(),
              ttftMs: undefined,
              e2eMs: 0,
              chunks: 0,
              outputTokens: 0,
              promptTokens: 0,
              cachedTokens: 0,
              gapsMs: [],
            },
            n >= warmupRequests && elapsed() >= warmupMs,
          );
        } else {
          void send(sent);
        }
        nextAt += exponentialGapMs(mode.ratePerS, random);
      }
      while (calls.size > 0) await sleep(10);
    }
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    options.signal?.removeEventListener('abort', onAbort);
    if (!options.client) client.close();
  }
  options.onProgress?.(progress());
  const stats = collector.summarize();
  if (options.durationMs !== undefined && options.durationMs > 0) {
    // A duration run's throughput is what arrived inside the window (warm-up
    // and the tail of requests still running after it excluded), so a rate
    // sweep compares steady states rather than drain times.
    const seconds = Math.min(options.durationMs, Math.max(0, elapsed() - warmupMs)) / 1000;
    const tokensPerChunk = stats.chunks > 0 ? stats.outputTokens / stats.chunks : 1;
    stats.durationS = seconds;
    // Requests: those that arrived in the window and succeeded (whenever they ended).
    stats.requestsPerS = stats.ok / seconds;
    stats.chunksPerS = window.chunks / seconds;
    stats.outputTokensPerS = (window.chunks * tokensPerChunk) / seconds;
  }
  return {
    target,
    mode,
    workload: workload.describe(),
    stats,
    sent,
    endpoints,
    wallMs: elapsed(),
    nextIndex: startIndex + sent,
  };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
