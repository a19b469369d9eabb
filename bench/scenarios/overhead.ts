/**
 * overhead: what the router adds. The same closed-loop workload goes directly
 * to an endpoint, through a bare grpc-js pass-through (the floor of any Node
 * proxy), and through the router, in interleaved blocks (the order rotated
 * each round) so all three see the same machine. Two endpoints:
 *
 * - `sim`: a real pod, the simulator (fixed 20 ms inter-token latency) and its sidecar;
 * - `stub`: a synthetic Engine server sending a chunk every 20 ms, which takes
 *   the engine's step timing (±20 ms of TTFT jitter) out, so the proxies' own cost shows.
 *
 * Reported: TTFT p50/p99 and inter-chunk gap p99 per path, and what each proxy adds over direct.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type LoadResult, runLoad } from '../load-generator.js';
import { createProcessGroup, type HelperProcess, type ProcessGroup } from '../processes.js';
import { type BenchReport, createReport, fmt, runReport } from '../report.js';
import { createStatsCollector, type RunStats } from '../stats.js';
import { type BenchTarget, createTargetClient } from '../targets.js';
import { createWorkload, type Workload } from '../workloads.js';
import type { ScenarioContext } from './context.js';
import { startPods } from './pods.js';
import { summarizeProfiles } from './profiles.js';

const MODEL = 'llama-3-8b-chat';
const ITL_MS = 20;

/** Runs the overhead scenario. */
export async function runOverhead(ctx: ScenarioContext): Promise<BenchReport> {
  const report = createReport('Router overhead', ctx.command);
  const levels = ctx.quick ? [1, 16] : [1, 64, 512];
  const rounds = ctx.quick ? 1 : 3;
  const workload = createWorkload('fixed', { seed: 7, params: { promptLen: 128, outputLen: 32 } });
  report.notes.push(
    `Workload ${workload.describe()}, closed loop at concurrency ${levels.join(', ')}. Paths: direct (client → endpoint, llmmesh.v1.Engine), ` +
      'passthrough (client → bare grpc-js forwarder → endpoint), router (client → router → endpoint, llmmesh.v1.Inference). ' +
      `At each concurrency the three paths run in ${rounds} interleaved rounds (order rotated each round); the first wave of each block (= concurrency requests) is warm-up. ` +
      'Every component is its own process on the same 2 cores; "added" = path minus direct, measured side by side in the same run.',
    `Endpoint "sim": llmmesh sim with a fixed-latency cost model (${ITL_MS} ms per decode step, 20 ms + 0.023 ms/token prefill, max_num_seqs 1024) behind its sidecar. ` +
      `Endpoint "stub": a synthetic llmmesh.v1.Engine server (bench/fake-engine.ts) that sends the first chunk at once and then one every ${ITL_MS} ms, so the engine's step timing does not blur the proxies' cost.`,
  );
  const rows: Array<Array<string | number>> = [];
  const group = createProcessGroup(false);
  try {
    for (const endpointKind of ['stub', 'sim'] as const) {
      ctx.log(`overhead: starting the ${endpointKind} endpoint, pass-through and router`);
      const endpoint = await startEndpoint(group, endpointKind);
      const profileDir = ctx.cpuProfDir
        ? join(ctx.cpuProfDir, `overhead-${endpointKind}-${Date.now()}`)
        : undefined;
      if (profileDir) await mkdir(profileDir, { recursive: true });
      const router = await group.helper(
        'router',
        {
          config: {
            listen: '127.0.0.1:0',
            admin: '127.0.0.1:0',
            discovery: { kind: 'static', endpoints: [endpoint] },
            models: { [MODEL]: { versions: { v1: { weight: 1 } } } },
            admission: { max_concurrency: 100_000, max_queue_length: 100_000 },
          },
        },
        { nodeFlags: profileDir ? ['--cpu-prof', '--cpu-prof-dir', resolve(profileDir)] : [] },
      );
      await router.request('wait-ready', { n: 1 });
      const proxy = await group.helper('passthrough', { listen: '127.0.0.1:0', upstream: endpoint });
      const targets: BenchTarget[] = [
        { name: 'direct', kind: 'engine', address: endpoint },
        { name: 'passthrough', kind: 'engine', address: String(proxy.info.address) },
        { name: 'router', kind: 'inference', address: String(router.info.address) },
      ];
      await measure(ctx, report, rows, { endpointKind, targets, router, proxy, workload, levels, rounds });
      if (profileDir) {
        await router.stop();
        await summarizeProfiles(report, profileDir, `router, ${endpointKind} endpoint`);
      }
      await group.stopAll();
    }
  } finally {
    await group.stopAll();
  }
  report.tables.push({
    title: 'Added latency over direct (ms)',
    columns: [
      'endpoint',
      'concurrency',
      'path',
      'TTFT p50',
      'TTFT p99',
      'gap p99',
      'added TTFT p50',
      'added TTFT p99',
      'added gap p99',
      'direct TTFT p50 / p99 / gap p99',
      'proxy CPU ms/request',
    ],
    rows,
    note: `Targets: the router adds ≤ 1 ms TTFT p50 and ≤ 3 ms p99 at 64 streams with ${ITL_MS} ms ITL, and no more than the pass-through adds at 512.`,
  });
  return report;
}

async function startEndpoint(group: ProcessGroup, kind: 'sim' | 'stub'): Promise<string> {
  if (kind === 'stub') {
    const stub = await group.helper('fake-engine', { model: MODEL, version: 'v1', itlMs: ITL_MS });
    return (stub.info.addresses as string[])[0] as string;
  }
  const [pod] = await startPods(group, {
    count: 1,
    model: MODEL,
    version: 'v1',
    simArgs: [
      '--inter-token-latency-ms',
      String(ITL_MS),
      '--time-to-first-token-ms',
      '20',
      '--max-num-seqs',
      '1024',
    ],
    sidecarArgs: ['--max-in-flight', '1024', '--max-queue', '4096'],
  });
  return (pod as { sidecarAddress: string }).sidecarAddress;
}

async function measure(
  ctx: ScenarioContext,
  report: BenchReport,
  rows: Array<Array<string | number>>,
  setup: {
    endpointKind: string;
    targets: BenchTarget[];
    router: HelperProcess;
    proxy: HelperProcess;
    workload: Workload;
    levels: number[];
    rounds: number;
  },
): Promise<void> {
  const { targets, router, proxy, workload, endpointKind } = setup;
  const proc = new Map([
    ['router', router],
    ['passthrough', proxy],
  ]);
  const clients = new Map(targets.map((t) => [t.name, createTargetClient(t)]));
  try {
    for (const c of clients.values()) await c.waitForReady(10_000);
    let index = 0;
    for (const concurrency of setup.levels) {
      const merged = new Map(targets.map((t) => [t.name, createStatsCollector()]));
      const blocks = new Map<string, LoadResult[]>(targets.map((t) => [t.name, []]));
      const cpuUse = new Map<string, { seconds: number; requests: number }>();
      for (let round = 0; round < setup.rounds; round++) {
        const order = targets.map((_, i) => targets[(i + round) % targets.length] as BenchTarget);
        for (const target of order) {
          if (ctx.signal.aborted) throw new Error('aborted');
          const p = proc.get(target.name);
          const cpuBefore = p?.cpuSeconds();
          const result = await runLoad({
            target,
            client: clients.get(target.name),
            model: MODEL,
            workload,
            mode: { kind: 'closed', concurrency },
            requests:
              concurrency === 1 ? (ctx.quick ? 3 : 8) : concurrency * (ctx.quick || concurrency > 64 ? 1 : 2),
            warmupRequests: concurrency === 1 ? 2 : concurrency,
            startIndex: index,
            signal: ctx.signal,
            onRecord: (r) => merged.get(target.name)?.add(r),
            onProgress: ctx.onProgress
              ? (p) =>
                  ctx.onProgress?.(`${endpointKind} c=${concurrency} round ${round + 1} ${target.name}`, p)
              : undefined,
          });
          index = result.nextIndex;
          blocks.get(target.name)?.push(result);
          const cpuAfter = p?.cpuSeconds();
          if (cpuBefore !== undefined && cpuAfter !== undefined) {
            const u = cpuUse.get(target.name) ?? { seconds: 0, requests: 0 };
            u.seconds += cpuAfter - cpuBefore;
            u.requests += result.sent;
            cpuUse.set(target.name, u);
          }
        }
      }
      const stats = new Map<string, RunStats>();
      for (const t of targets) {
        const s = merged.get(t.name)?.summarize() as RunStats;
        // Throughput over the blocks' own windows (the merged window spans the other paths' blocks).
        const bs = blocks.get(t.name) ?? [];
        const seconds = bs.reduce((a, b) => a + b.stats.durationS, 0);
        s.durationS = seconds;
        s.requestsPerS = s.ok / seconds;
        s.outputTokensPerS = s.outputTokens / seconds;
        s.chunksPerS = bs.reduce((a, b) => a + b.stats.chunksPerS * b.stats.durationS, 0) / seconds;
        stats.set(t.name, s);
        const extra: Record<string, number> = {};
        const u = cpuUse.get(t.name);
        if (u && u.requests > 0) extra['proxy CPU ms/request'] = (u.seconds * 1000) / u.requests;
        report.runs.push(
          runReport(
            `overhead ${endpointKind} c=${concurrency}`,
            t.name,
            { ...(bs[0] as LoadResult), stats: s },
            extra,
          ),
        );
      }
      const direct = stats.get('direct') as RunStats;
      for (const name of ['passthrough', 'router']) {
        const s = stats.get(name) as RunStats;
        rows.push([
          endpointKind,
          concurrency,
          name,
          fmt(s.ttft.p50),
          fmt(s.ttft.p99),
          fmt(s.itl.p99),
          fmt(s.ttft.p50 - direct.ttft.p50),
          fmt(s.ttft.p99 - direct.ttft.p99),
          fmt(s.itl.p99 - direct.itl.p99),
          `${fmt(direct.ttft.p50)} / ${fmt(direct.ttft.p99)} / ${fmt(direct.itl.p99)}`,
          (() => {
            const u = cpuUse.get(name);
            return u && u.requests > 0 ? fmt((u.seconds * 1000) / u.requests) : '';
          })(),
        ]);
      }
      const r = stats.get('router') as RunStats;
      ctx.log(
        `overhead ${endpointKind} c=${concurrency}: router adds TTFT p50 ${fmt(r.ttft.p50 - direct.ttft.p50)} ms, p99 ${fmt(r.ttft.p99 - direct.ttft.p99)} ms, gap p99 ${fmt(r.itl.p99 - direct.itl.p99)} ms`,
      );
    }
  } finally {
    for (const c of clients.values()) c.close();
  }
}
