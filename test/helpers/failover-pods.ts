/**
 * Pods for failover tests: a real simulator each (its faults set over HTTP,
 * `POST /sim/faults`) and a sidecar that is either in this process or a real
 * `llmmesh sidecar` process, for the pods a test kills with real signals.
 * A router in this process sits in front of them.
 */
import { EventEmitter } from 'node:events';
import { createInferenceClient, type InferenceClient } from '../../client/index.js';
import { silentLogger } from '../../common/log.js';
import { validateRouterConfig } from '../../router/config/load.js';
import type { RequestTrace } from '../../router/request-trace.js';
import { type Router, startRouter } from '../../router/server.js';
import { type Sidecar, startSidecar } from '../../sidecar/server.js';
import { createSimServer, type SimOptions, type SimServer } from '../../sim/server.js';
import { MODEL } from './mesh.js';
import { listeningOn, type RunningCommand, runCommand } from './processes.js';
import { WAIT_TIMEOUT_MS, waitUntil } from './wait.js';

/** One pod: a simulator and its sidecar. */
export interface FailoverPod {
  sim: SimServer;
  /** The sidecar's `host:port`. */
  address: string;
  /** The sidecar process, for pods started with one. */
  process: RunningCommand | undefined;
  /** Sends the simulator's fault settings (`POST /sim/faults`). */
  faults(body: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

/** Options of {@link startFailoverPods}. */
export interface FailoverPodOptions {
  sim?: Partial<SimOptions>;
  /** Indexes of the pods whose sidecar runs as a process (the others run here). */
  processSidecars?: readonly number[];
  /** Flags of sidecar processes (e.g. `--drain-grace-ms 700`). */
  sidecarArgs?: string[];
  /**
   * Engine-probe interval of every sidecar (the probe timeout follows it, at
   * least 1 s); default {@link FAILOVER_PROBE_MS}.
   */
  probeIntervalMs?: number;
}

/**
 * Engine-probe interval of the failover tests' sidecars: generous, because
 * the simulators run in the test process, which a loaded machine starves for
 * seconds while it runs dozens of streams (at load 25, /health answers took
 * over 3 s); a probe that times out then takes
 * a healthy pod out and its requests fail over. These tests are about the
 * faults they inject (crashes, signals, stalls, errors), which reach the
 * router at once, not about probes.
 */
export const FAILOVER_PROBE_MS = 10_000;

/** Starts `n` pods of MODEL version v1, with the response cache off (tests compare engine output). */
export async function startFailoverPods(n: number, options: FailoverPodOptions = {}): Promise<FailoverPod[]> {
  const asProcess = new Set(options.processSidecars ?? []);
  const probeIntervalMs = options.probeIntervalMs ?? FAILOVER_PROBE_MS;
  return Promise.all(
    Array.from({ length: n }, async (_, i): Promise<FailoverPod> => {
      // A crash (`crash_after_tokens`) drops every connection and stops
      // listening, as a dying engine does, but leaves this test process alive.
      const sim = createSimServer({
        servedModelName: MODEL,
        timeScale: 0,
        onCrash: () => {},
        ...options.sim,
      });
      const { url } = await sim.listen(0, '127.0.0.1');
      const faults = async (body: Record<string, unknown>) => {
        const res = await fetch(`${url}/sim/faults`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (!res.ok) throw new Error(`faults: ${res.status} ${await res.text()}`);
      };
      if (!asProcess.has(i)) {
        const sidecar: Sidecar = await startSidecar({
          engineUrl: url,
          listen: '127.0.0.1:0',
          model: MODEL,
          version: 'v1',
          probeIntervalMs,
          responseCache: false,
          admin: false,
          logger: silentLogger,
        });
        return {
          sim,
          address: sidecar.address,
          process: undefined,
          faults,
          async close() {
            await sidecar.close();
            await sim.close();
          },
        };
      }
      const proc = runCommand([
        'sidecar',
        ...['--engine-url', url, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
        ...[
          '--model',
          MODEL,
          '--version',
          'v1',
          '--probe-interval-ms',
          String(probeIntervalMs),
          '--response-cache',
          'off',
        ],
        ...(options.sidecarArgs ?? []),
      ]);
      const { address } = await listeningOn(proc, 'sidecar');
      return {
        sim,
        address,
        process: proc,
        faults,
        async close() {
          if (proc.proc.exitCode === null && proc.proc.signalCode === null) proc.proc.kill('SIGKILL');
          await proc.exit;
          await sim.close();
        },
      };
    }),
  );
}

/** Stops every pod. */
export async function stopFailoverPods(pods: readonly FailoverPod[]): Promise<void> {
  await Promise.all(pods.map((p) => p.close()));
}

/** A router in this process in front of the pods, with its request traces. */
export interface FrontRouter {
  router: Router;
  client: InferenceClient;
  traces: RequestTrace[];
  /** Emits `trace` for each finished request. */
  events: EventEmitter;
  waitReady(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Starts a router over `addresses` with extra config (`upstream`, `breaker`, ...). */
export async function startFrontRouter(
  addresses: readonly string[],
  extra: Record<string, unknown> = {},
): Promise<FrontRouter> {
  const traces: RequestTrace[] = [];
  const events = new EventEmitter();
  const router = await startRouter({
    config: validateRouterConfig({
      listen: '127.0.0.1:0',
      discovery: { kind: 'static', endpoints: [...addresses] },
      models: { [MODEL]: { versions: { v1: { weight: 1 } } } },
      ...extra,
    }),
    admin: false,
    logger: silentLogger,
    onRequestTrace: (t) => {
      traces.push(t);
      events.emit('trace', t);
    },
  });
  const client = createInferenceClient(router.address, { maxAttempts: 1 });
  return {
    router,
    client,
    traces,
    events,
    waitReady: (n, timeoutMs = WAIT_TIMEOUT_MS) =>
      waitUntil(
        router.endpoints.events,
        'change',
        () => router.endpoints.snapshot().endpoints.filter((e) => e.ready).length >= n,
        `${n} ready endpoints`,
        timeoutMs,
      ),
    async close() {
      client.close();
      await router.close(0);
    },
  };
}
