/** Simulated pods for the scenarios: `llmmesh sim` and `llmmesh sidecar`, each its own process. */
import type { BenchProcess, ProcessGroup, SpawnOptions } from '../processes.js';

/** One running pod. */
export interface BenchPod {
  sim: BenchProcess;
  sidecar: BenchProcess;
  /** `http://127.0.0.1:port` of the simulator. */
  simUrl: string;
  /** `host:port` of the sidecar. */
  sidecarAddress: string;
}

/** Options of {@link startPods}. */
export interface PodOptions {
  count: number;
  model: string;
  version: string;
  /** Extra `llmmesh sim` flags (preset, latencies, time scale). */
  simArgs: string[];
  /** Extra `llmmesh sidecar` flags. */
  sidecarArgs?: string[];
  spawn?: SpawnOptions;
}

/** Starts `count` pods, all at once; resolves when every sidecar listens. */
export async function startPods(group: ProcessGroup, options: PodOptions): Promise<BenchPod[]> {
  return Promise.all(
    Array.from({ length: options.count }, async (_, i) => {
      const sim = group.llmmesh(
        `sim-${i + 1}`,
        [
          'sim',
          '--port',
          '0',
          '--served-model-name',
          options.model,
          '--load-delay-ms',
          '0',
          ...options.simArgs,
        ],
        options.spawn,
      );
      const simUrl = (await sim.waitForOutput(/serving on (http:\/\/\S+)/, 60_000))[1] as string;
      const sidecar = group.llmmesh(
        `sidecar-${i + 1}`,
        [
          'sidecar',
          '--engine-url',
          simUrl,
          '--listen',
          '127.0.0.1:0',
          '--model',
          options.model,
          '--version',
          options.version,
          '--response-cache',
          'off',
          '--admin',
          'off',
          ...(options.sidecarArgs ?? []),
        ],
        options.spawn,
      );
      const sidecarAddress = (await sidecar.waitForOutput(/listening on (\S+?),/, 60_000))[1] as string;
      return { sim, sidecar, simUrl, sidecarAddress };
    }),
  );
}

/** Reads `vllm:prefix_cache_hits_total` and `vllm:prefix_cache_queries_total` from a simulator's /metrics. */
export async function prefixCacheCounters(simUrl: string): Promise<{ hits: number; queries: number }> {
  const text = await (await fetch(`${simUrl}/metrics`)).text();
  const value = (name: string) => {
    let sum = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  };
  return { hits: value('vllm:prefix_cache_hits_total'), queries: value('vllm:prefix_cache_queries_total') };
}

/**
 * The endpoint the cost benchmarks put a proxy in front of. `sim`: a pod
 * (simulator with a fixed `itlMs` decode step and 20 ms first token, room
 * for 1024 sequences, and its sidecar); `stub`: a synthetic Engine server
 * (bench/fake-engine.ts) that sends the first chunk at once and then one
 * every `itlMs`, which takes the engine's batching out of TTFT. Resolves
 * with the address to send Engine calls to.
 */
export async function startCostEndpoint(
  group: ProcessGroup,
  kind: string,
  options: { model: string; itlMs: number; cpus?: string },
): Promise<string> {
  const { model, itlMs, cpus } = options;
  if (kind === 'stub') {
    const stub = await group.helper('fake-engine', { model, version: 'v1', itlMs }, { cpus });
    return (stub.info.addresses as string[])[0] as string;
  }
  if (kind !== 'sim') throw new Error(`--endpoint is sim or stub, not "${kind}"`);
  const [pod] = await startPods(group, {
    count: 1,
    model,
    version: 'v1',
    spawn: { cpus },
    simArgs: [
      '--inter-token-latency-ms',
      String(itlMs),
      '--time-to-first-token-ms',
      '20',
      '--max-num-seqs',
      '1024',
    ],
    sidecarArgs: ['--max-in-flight', '1024', '--max-queue', '4096'],
  });
  return (pod as BenchPod).sidecarAddress;
}
