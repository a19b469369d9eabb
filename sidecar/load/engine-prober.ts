/**
 * The sidecar's one probe loop against its engine, however many routers
 * watch: `GET /health` (readiness), `GET /v1/models` (served name, context
 * length) when the engine becomes ready, `GET /metrics` (scheduler gauges and
 * KV capacity) every interval, and the engine's `max_num_seqs` once, where the
 * engine tells it. A failed probe turns the state not ready at once, so the
 * next load report says so, unless it only timed out while the sidecar's own
 * event loop stalled (CPU throttling, a GC pause): then it proves nothing
 * about the engine and the prober asks again at once.
 */
import { MeshError, Status } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { EngineClient } from '../engine-client.js';
import { parseEngineMetrics, type ScrapedEngineMetrics } from '../engine-metrics.js';

/** Default interval between engine probes (`/health`, `/metrics`). */
export const DEFAULT_PROBE_INTERVAL_MS = 500;

/** Shortest probe timeout, whatever the interval. */
export const MIN_PROBE_TIMEOUT_MS = 1_000;

/**
 * Timed-out probes in a row excused by a stall of the sidecar itself; the
 * next one counts whatever happened, so a sidecar that is starved for good
 * still reports a hung engine.
 */
export const MAX_EXCUSED_PROBES = 3;

/** Period of the timer that notices stalls of this process during a probe. */
const STALL_TICK_MS = 50;

/** What the prober knows about the engine. */
export interface EngineState {
  /** `/health` answered 200 and the last scrape worked. */
  ready: boolean;
  /** Why not, when not ready. */
  reason: string;
  /** The engine's model name (`/v1/models`), empty until first seen. */
  servedModelName: string;
  /** Context length from `/v1/models`, 0 when unknown. */
  maxModelLen: number;
  /** Gauges and capacity from the last successful scrape. */
  metrics: ScrapedEngineMetrics;
  /**
   * The sidecar's requests at the engine while that scrape ran (the more of
   * the counts at its start and end): the gauges' share that is the
   * sidecar's own, so the rest is traffic that bypasses it.
   */
  inFlightAtScrape: number;
  /** When the last successful scrape answered (`performance.now()` ms), 0 before one. */
  scrapedAt: number;
  /** The engine's concurrent-sequence limit, when it publishes it. */
  maxNumSeqs: number | undefined;
  /** False once the engine answered 404 on `/metrics` (e.g. llama.cpp without --metrics). */
  metricsSupported: boolean;
}

/** The probe loop. */
export interface EngineProber {
  readonly state: Readonly<EngineState>;
  /** Runs one probe now (a probe already running is not duplicated). */
  probe(): Promise<void>;
  /** Stops the loop. */
  stop(): void;
}

/** Options of {@link createEngineProber}. */
export interface EngineProberOptions {
  engine: EngineClient;
  /** Default {@link DEFAULT_PROBE_INTERVAL_MS}. */
  intervalMs?: number;
  /** Called whenever any part of the state changed. */
  onChange(state: Readonly<EngineState>): void;
  /** Called when readiness flips. */
  onReadyChange?(ready: boolean, reason: string): void;
  /** Requests the sidecar has at the engine now (sampled around each metrics scrape). */
  inFlight?(): number;
  logger: Logger;
}

/** Creates the prober and starts its loop (the first probe runs at once). */
export function createEngineProber(options: EngineProberOptions): EngineProber {
  const { engine, logger: log } = options;
  const intervalMs = options.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
  // A dead engine (connection refused) shows at the next probe. A hung one
  // (accepts, never answers) shows once a probe times out: after one interval,
  // but never less than a second, so a busy engine whose /metrics is slow
  // under load (vLLM renders it in Python) does not flap.
  const timeoutMs = Math.max(MIN_PROBE_TIMEOUT_MS, intervalMs);
  const state: EngineState = {
    ready: false,
    reason: 'engine not probed yet',
    servedModelName: '',
    maxModelLen: 0,
    metrics: {},
    inFlightAtScrape: 0,
    scrapedAt: 0,
    maxNumSeqs: undefined,
    metricsSupported: true,
  };
  let learnedSeqs = false;
  let running: Promise<void> | undefined;
  let stopped = false;
  // The longest gap between ticks of a short timer during the current probe:
  // a probe that timed out while this process stood still for half the
  // timeout may have had its answer waiting, unread.
  let probeStarted = 0;
  let lastTick = 0;
  let longestStall = 0;
  const tick = () => {
    const now = performance.now();
    longestStall = Math.max(longestStall, now - lastTick);
    lastTick = now;
  };
  let excused = 0;
  let again = false;

  const setReady = (ready: boolean, reason: string) => {
    if (state.ready === ready && state.reason === reason) return;
    const flipped = state.ready !== ready;
    state.ready = ready;
    state.reason = reason;
    if (flipped) {
      log.info(ready ? 'engine ready' : 'engine not ready', { engine: engine.url, reason });
      options.onReadyChange?.(ready, reason);
    }
    options.onChange(state);
  };

  /** A failed probe: not ready, unless it timed out during a stall of this process. */
  const fail = async (reason: string) => {
    // Timers that came due during a stall all run before the check phase;
    // the last tick counts a stall its timer has not reported yet.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (stopped) return;
    tick();
    const timedOut = performance.now() - probeStarted >= timeoutMs;
    const stalledMs = longestStall;
    if (state.ready && timedOut && stalledMs >= timeoutMs / 2 && excused < MAX_EXCUSED_PROBES) {
      excused++;
      again = true;
      log.debug('engine probe timed out while the sidecar stalled; probing again', {
        engine: engine.url,
        stalledMs: Math.round(stalledMs),
      });
      return;
    }
    setReady(false, reason);
  };

  const probeOnce = async () => {
    probeStarted = performance.now();
    lastTick = probeStarted;
    longestStall = 0;
    const ticker = setInterval(tick, STALL_TICK_MS);
    ticker.unref();
    try {
      await probeSteps();
    } catch (err) {
      if (!stopped) await fail(MeshError.from(err, `engine at ${engine.url}`).message);
    } finally {
      clearInterval(ticker);
    }
  };

  const probeSteps = async () => {
    const healthy = await engine.health({ timeoutMs });
    if (stopped) return;
    if (!healthy) {
      await fail(`engine at ${engine.url} /health is not 200 (loading, down or not answering)`);
      return;
    }
    if (!state.ready || !state.servedModelName) {
      // (Re)read the model on every transition to ready: a restarted engine may serve another.
      const models = await engine.models({ timeoutMs });
      const first = models[0];
      if (!first) {
        setReady(false, `engine at ${engine.url} serves no model`);
        return;
      }
      if (first.id !== state.servedModelName || (first.maxModelLen ?? 0) !== state.maxModelLen) {
        state.servedModelName = first.id;
        state.maxModelLen = first.maxModelLen ?? 0;
        options.onChange(state);
      }
    }
    if (!learnedSeqs) {
      learnedSeqs = true;
      const seqs = await engine.maxNumSeqs({ timeoutMs });
      if (seqs !== undefined) {
        state.maxNumSeqs = seqs;
        log.info('engine max_num_seqs learned', { engine: engine.url, maxNumSeqs: seqs });
        options.onChange(state);
      }
    }
    if (state.metricsSupported) {
      try {
        const before = options.inFlight?.() ?? 0;
        const next = parseEngineMetrics(await engine.metrics({ timeoutMs }));
        const own = Math.max(before, options.inFlight?.() ?? 0);
        state.scrapedAt = performance.now();
        if (!sameMetrics(next, state.metrics) || own !== state.inFlightAtScrape) {
          state.metrics = next;
          state.inFlightAtScrape = own;
          options.onChange(state);
        }
      } catch (err) {
        const e = MeshError.from(err, `engine at ${engine.url}`);
        if (e.code === Status.NOT_FOUND) {
          state.metricsSupported = false;
          log.info('engine has no /metrics; load reports carry the sidecar counts only', {
            engine: engine.url,
          });
        } else {
          await fail(`metrics scrape of engine at ${engine.url} failed: ${e.message}`);
          return;
        }
      }
    }
    excused = 0;
    setReady(true, '');
  };

  const probe = (): Promise<void> => {
    running ??= probeOnce().finally(() => {
      running = undefined;
      if (again && !stopped) {
        again = false;
        void probe();
      }
    });
    return running;
  };

  const timer = setInterval(() => void probe(), intervalMs);
  timer.unref();
  void probe();

  return {
    state,
    probe,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}

function sameMetrics(a: ScrapedEngineMetrics, b: ScrapedEngineMetrics): boolean {
  return (
    a.numRequestsRunning === b.numRequestsRunning &&
    a.numRequestsWaiting === b.numRequestsWaiting &&
    a.kvCacheUsagePerc === b.kvCacheUsagePerc &&
    a.blockSize === b.blockSize &&
    a.numGpuBlocks === b.numGpuBlocks
  );
}
