/**
 * Pods for router tests: a real simulator behind a real sidecar, optionally
 * with a fault-injecting HTTP proxy between them (the engine "answers 503"
 * while the simulator itself stays healthy).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../common/log.js';
import { type Sidecar, startSidecar } from '../../sidecar/server.js';
import { createSimServer, type SimOptions, type SimServer } from '../../sim/server.js';
import { MODEL } from './mesh.js';

/** A fault-injecting reverse proxy in front of an engine. */
export interface FaultProxy {
  url: string;
  /** When set, generation requests (POST /v1/…) get this HTTP status with a vLLM error body. */
  fault: number | undefined;
  /** Generation requests seen (faulted or not). */
  generations: number;
  close(): Promise<void>;
}

/** Starts a proxy to `target` on 127.0.0.1:0. */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const proxy: FaultProxy = { url: '', fault: undefined, generations: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    const generation = req.method === 'POST' && (req.url ?? '').startsWith('/v1/');
    if (generation) proxy.generations++;
    if (generation && proxy.fault !== undefined) {
      const status = proxy.fault;
      req.resume();
      req.on('end', () => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: { message: `injected fault ${status}`, type: 'ServiceUnavailable', code: status },
          }),
        );
      });
      return;
    }
    const out = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      agent.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}

/** One running pod. */
export interface Pod {
  version: string;
  sim: SimServer;
  /** The simulator's base URL (for `/sim/faults`). */
  simUrl: string;
  sidecar: Sidecar;
  proxy: FaultProxy | undefined;
  close(): Promise<void>;
}

/** Starts a simulator (as fast as possible unless `sim` says otherwise) and its sidecar. */
export async function startPod(options: {
  version: string;
  model?: string;
  sim?: Partial<SimOptions>;
  maxInFlight?: number;
  faultProxy?: boolean;
  /** Sidecar engine-probe interval (and probe timeout, at least 500 ms); default 1000 so a busy test machine does not fail probes. */
  probeIntervalMs?: number;
}): Promise<Pod> {
  const model = options.model ?? MODEL;
  // The local mesh's context length (deploy/local/mesh.yaml), not the model's own 131072.
  const sim = createSimServer({ servedModelName: model, timeScale: 0, maxModelLen: 8192, ...options.sim });
  const bound = await sim.listen(0, '127.0.0.1');
  const proxy = options.faultProxy ? await startFaultProxy(bound.url) : undefined;
  const sidecar = await startSidecar({
    engineUrl: proxy?.url ?? bound.url,
    listen: '127.0.0.1:0',
    model,
    version: options.version,
    probeIntervalMs: options.probeIntervalMs ?? 1000,
    maxInFlight: options.maxInFlight,
    logger: silentLogger,
  });
  return {
    version: options.version,
    sim,
    simUrl: bound.url,
    sidecar,
    proxy,
    async close() {
      await sidecar.close();
      await proxy?.close();
      await sim.close();
    },
  };
}
