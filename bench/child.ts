/**
 * Entry of the benchmark's helper processes, so each measured component runs
 * in its own process (and, where `taskset` exists, on its own core):
 *
 *     node --import tsx bench/child.ts router|fake-engine|passthrough '<json options>'
 *
 * It talks to the parent over the IPC channel: `{ type: 'ready', ... }` once
 * serving, then answers `{ id, cmd, args }` requests with `{ id, result }` or
 * `{ id, error }`. It stops on `{ cmd: 'stop' }`, SIGTERM, or when the parent goes away.
 * `profile-start` / `profile-stop` sample its CPU (V8 profiler through the
 * inspector, every `intervalUs` µs if given) between the two; `profile-stop` answers with the profile.
 * `allocations-start` / `allocations-stop` sample its allocations likewise;
 * `heap-snapshot` writes a heap snapshot and answers with its path.
 */
import { Session } from 'node:inspector/promises';
import { writeHeapSnapshot } from 'node:v8';
import { silentLogger } from '../common/log.js';
import { validateRouterConfig } from '../router/config/load.js';
import type { RequestTrace } from '../router/request-trace.js';
import { startRouter } from '../router/server.js';
import { startFakeEngine } from './fake-engine.js';
import { startPassthroughProxy } from './passthrough-proxy.js';

type Handler = (args: Record<string, unknown>) => unknown;

interface Request {
  id: number;
  cmd: string;
  args?: Record<string, unknown>;
}

/** One finished request as the router saw it (ms after it arrived). */
export interface RequestTimeline {
  status: string;
  /** Arrival, epoch ms on the router's clock. */
  receivedAt: number;
  /** Waited in the admission queue. */
  queuedMs: number;
  attempts: Array<{ endpoint: string; startMs: number; firstChunkMs: number | undefined }>;
}

function timelineOf(t: RequestTrace): RequestTimeline {
  return {
    status: t.status,
    receivedAt: t.receivedAt,
    queuedMs: t.queuedMs,
    attempts: t.attempts.map((a) => ({
      endpoint: a.endpoint,
      startMs: a.startMs,
      firstChunkMs: a.firstChunkMs,
    })),
  };
}

function memory(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  return process.memoryUsage();
}

async function main(): Promise<void> {
  const [role, json] = process.argv.slice(2);
  const options = JSON.parse(json ?? '{}') as Record<string, unknown>;
  const send = (m: unknown) => process.send?.(m);
  let close: () => Promise<void> = async () => {};
  const profiler = new Session();
  const handlers: Record<string, Handler> = {
    stats: () => ({ memory: memory(), cpu: process.cpuUsage() }),
    'profile-start': async (args) => {
      profiler.connect();
      await profiler.post('Profiler.enable');
      // Sampling interval in µs (V8's default is 1000).
      if (typeof args.intervalUs === 'number')
        await profiler.post('Profiler.setSamplingInterval', { interval: args.intervalUs });
      await profiler.post('Profiler.start');
      return true;
    },
    'profile-stop': async () => {
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      return profile;
    },
    'heap-snapshot': (args) => writeHeapSnapshot(args.path === undefined ? undefined : String(args.path)),
    'allocations-start': async () => {
      profiler.connect();
      await profiler.post('HeapProfiler.enable');
      await profiler.post('HeapProfiler.startSampling', {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      return true;
    },
    'allocations-stop': async () => {
      const { profile } = await profiler.post('HeapProfiler.stopSampling');
      profiler.disconnect();
      return profile;
    },
  };

  if (role === 'router') {
    const config = validateRouterConfig(options.config);
    // With `timelines`, every finished request's routing story is kept
    // (compactly) until the parent takes it: admission wait, attempts.
    const timelines: RequestTimeline[] = [];
    const router = await startRouter({
      config,
      logger: silentLogger,
      admin: false,
      onRequestTrace: options.timelines === true ? (t) => timelines.push(timelineOf(t)) : undefined,
    });
    const ready = () => router.endpoints.snapshot().endpoints.filter((e) => e.ready).length;
    handlers['wait-ready'] = (args) =>
      new Promise<number>((resolve, reject) => {
        const n = Number(args.n ?? 1);
        const timer = setTimeout(
          () => {
            router.endpoints.events.off('change', check);
            reject(
              new Error(`router: ${ready()} of ${n} endpoints ready after ${args.timeoutMs ?? 30_000} ms`),
            );
          },
          Number(args.timeoutMs ?? 30_000),
        );
        function check() {
          if (ready() < n) return;
          clearTimeout(timer);
          router.endpoints.events.off('change', check);
          resolve(ready());
        }
        router.endpoints.events.on('change', check);
        check();
      });
    handlers.stats = () => ({ memory: memory(), cpu: process.cpuUsage(), readyEndpoints: ready() });
    handlers.admission = () => ({ inFlight: router.admission.inFlight, queued: router.admission.queued });
    handlers.timelines = () => timelines.splice(0);
    close = () => router.close(0);
    send({ type: 'ready', address: router.address });
  } else if (role === 'fake-engine') {
    const engine = await startFakeEngine(options as unknown as Parameters<typeof startFakeEngine>[0]);
    handlers.stats = () => ({ memory: memory(), cpu: process.cpuUsage(), ...engine.stats() });
    close = () => engine.close();
    send({ type: 'ready', addresses: engine.addresses });
  } else if (role === 'passthrough') {
    const proxy = await startPassthroughProxy(String(options.listen), String(options.upstream));
    close = () => proxy.close();
    send({ type: 'ready', address: proxy.address });
  } else {
    throw new Error(`unknown role "${role}" (router, fake-engine, passthrough)`);
  }

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await close().catch(() => {});
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  process.on('disconnect', () => void stop());
  process.on('message', (raw) => {
    const m = raw as Request;
    if (m.cmd === 'stop') {
      void stop();
      return;
    }
    const h = handlers[m.cmd];
    Promise.resolve()
      .then(() => {
        if (!h) throw new Error(`unknown command "${m.cmd}"`);
        return h(m.args ?? {});
      })
      .then(
        (result) => send({ id: m.id, result }),
        (err: unknown) => send({ id: m.id, error: String((err as Error).message ?? err) }),
      );
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench child: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
