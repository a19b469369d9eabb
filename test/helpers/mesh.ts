/**
 * An in-process mesh on loopback for integration tests: real simulators,
 * real sidecars and a real router, each on its own port 0.
 */
import { createInferenceClient, type InferenceClient } from '../../client/index.js';
import { silentLogger } from '../../common/log.js';
import { validateRouterConfig } from '../../router/config/load.js';
import { type Router, startRouter } from '../../router/server.js';
import { type Sidecar, startSidecar } from '../../sidecar/server.js';
import { createSimServer, type SimOptions, type SimServer } from '../../sim/server.js';
import { waitUntil } from './wait.js';

/** One pod: a simulator and its sidecar. */
export interface PodSpec {
  version: string;
  model?: string;
  sim?: Partial<SimOptions>;
  /** Sidecar engine-probe interval; default 50 ms so readiness changes show fast. */
  probeIntervalMs?: number;
}

/** A running pod. */
export interface TestPod {
  sim: SimServer;
  simUrl: string;
  sidecar: Sidecar;
  version: string;
}

/** A running test mesh. */
export interface TestMesh {
  router: Router;
  pods: TestPod[];
  client: InferenceClient;
  /** Waits until the router sees `n` ready endpoints. */
  waitReady(n?: number): Promise<void>;
  close(): Promise<void>;
}

/** Default model name of test meshes. */
export const MODEL = 'llama-3-8b-chat';

/** Starts pods and a router with `models` config (default: MODEL with the pods' versions at equal weight). */
export async function startTestMesh(options: {
  pods: PodSpec[];
  models?: Record<string, unknown>;
  upstream?: Record<string, unknown>;
  random?: () => number;
  admin?: boolean;
}): Promise<TestMesh> {
  const pods: TestPod[] = [];
  for (const spec of options.pods) {
    const model = spec.model ?? MODEL;
    // The local mesh's context length (deploy/local/mesh.yaml), not the model's own 131072.
    const sim = createSimServer({ servedModelName: model, timeScale: 0, maxModelLen: 8192, ...spec.sim });
    const bound = await sim.listen(0, '127.0.0.1');
    const sidecar = await startSidecar({
      engineUrl: bound.url,
      listen: '127.0.0.1:0',
      model,
      version: spec.version,
      probeIntervalMs: spec.probeIntervalMs ?? 50,
      logger: silentLogger,
    });
    pods.push({ sim, simUrl: bound.url, sidecar, version: spec.version });
  }
  const versions = [...new Set(options.pods.map((p) => p.version))];
  const config = validateRouterConfig({
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    discovery: { kind: 'static', endpoints: pods.map((p) => p.sidecar.address) },
    models: options.models ?? {
      [MODEL]: { versions: Object.fromEntries(versions.map((v) => [v, { weight: 1 }])) },
    },
    ...(options.upstream ? { upstream: options.upstream } : {}),
  });
  const router = await startRouter({
    config,
    logger: silentLogger,
    random: options.random,
    admin: options.admin ? '127.0.0.1:0' : false,
  });
  const client = createInferenceClient(router.address);
  const waitReady = (n = pods.length) =>
    waitUntil(
      router.endpoints.events,
      'change',
      () => router.endpoints.snapshot().endpoints.filter((e) => e.ready).length >= n,
      `${n} ready endpoints`,
    );
  await waitReady();
  return {
    router,
    pods,
    client,
    waitReady,
    async close() {
      client.close();
      await router.close(0);
      for (const p of pods) {
        await p.sidecar.close();
        await p.sim.close();
      }
    },
  };
}
