/**
 * scale: what one router decision and one in-flight stream cost as the
 * number of endpoints grows (10, 100, 1000).
 *
 * - Decision time: the router's scheduling code (the built-in `default`
 *   profile: filters, prefix-cache + session-affinity + load scorers,
 *   max-score picker) over a pool of simulated endpoint state (load reports
 *   and prefix indexes), for shared-prefix prompts, in this process.
 * - Memory per in-flight stream: a router in its own process (`--expose-gc`)
 *   in front of a synthetic engine listening on N ports; K streams are opened
 *   and held after their first chunk; the router's heap and RSS after GC,
 *   minus the idle figures, divided by K.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type { LoadReport__Output } from '../../common/generated/llmmesh/v1/LoadReport.js';
import { prefixBlockHashes } from '../../common/prefix-hash.js';
import { createRandom } from '../../common/random.js';
import { DEFAULT_PROFILE } from '../../router/config/schema.js';
import { createScheduler } from '../../router/scheduling/profile.js';
import { createBuiltinRegistry } from '../../router/scheduling/registry.js';
import { createSchedulingRequest } from '../../router/scheduling/request.js';
import type { EndpointView } from '../../router/upstream/endpoints.js';
import { createPrefixIndex } from '../../router/upstream/prefix-index.js';
import { HOLD_PROMPT } from '../fake-engine.js';
import { createProcessGroup } from '../processes.js';
import { type BenchReport, createReport, fmt } from '../report.js';
import { benchRouterConfig } from '../router-config.js';
import type { Row as ScheduleCostRow } from '../schedule-cost.js';
import { createLatencyHistogram } from '../stats.js';
import { createTargetClient } from '../targets.js';
import { createWorkload } from '../workloads.js';
import type { ScenarioContext } from './context.js';

const MODEL = 'llama-3-8b-chat';
const BLOCK_CHARS = 64;

interface Mem {
  memory: NodeJS.MemoryUsage;
}

/** Simulated endpoint state: random load, and a prefix index holding the prompts of some groups. */
export function simulatedPool(n: number, seed: number, groupHashes: readonly number[][]): EndpointView[] {
  const random = createRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const index = createPrefixIndex();
    // Each endpoint holds the system prompts of the groups assigned to it (as a prefix-aware router would leave them).
    const added = groupHashes.filter((_, g) => g % n === i % Math.min(n, groupHashes.length)).flat();
    index.apply({ reset: true, added, removed: [], blockChars: BLOCK_CHARS });
    const running = Math.floor(random() * 64);
    const report = {
      model: MODEL,
      version: 'v1',
      servedModelName: MODEL,
      ready: true,
      draining: false,
      inFlight: running,
      queued: Math.floor(random() * 4),
      reason: '',
      sequence: 1,
      engine: {
        numRequestsRunning: running,
        numRequestsWaiting: Math.floor(random() * 4),
        kvCacheUsagePerc: random(),
      },
      capacity: { maxNumSeqs: 256, numGpuBlocks: 26_300, blockSize: 16, maxModelLen: 8192 },
      prefixIndex: null,
    } as unknown as LoadReport__Output;
    return {
      address: `10.0.${Math.floor(i / 250)}.${i % 250}:7001`,
      connected: true,
      model: MODEL,
      version: 'v1',
      ready: true,
      draining: false,
      routerInFlight: Math.floor(random() * 16),
      report,
      reason: '',
      breaker: 'closed',
      failureRatio: 0,
      consecutiveFailures: 0,
      prefixIndex: index,
    } as EndpointView;
  });
}

/** Times `decisions` scheduling decisions of the default profile over `n` simulated endpoints. */
export function measureDecisions(
  n: number,
  decisions: number,
): { p50Us: number; p99Us: number; meanUs: number; hitShare: number } {
  const workload = createWorkload('shared-prefix', {
    seed: 11,
    params: { groups: 64, promptsPerGroup: 16, systemPromptLen: 1000, questionLen: 64 },
  });
  const groupHashes = Array.from({ length: 64 }, (_, g) => {
    let i = 0;
    // The first request of group g gives its system prompt's hashes.
    while ((workload.request(i).group ?? -1) !== g) i++;
    const prompt = workload.request(i).prompt ?? '';
    return prefixBlockHashes(prompt.slice(0, Math.floor(prompt.length * 0.9)), BLOCK_CHARS);
  });
  const pool = simulatedPool(n, n, groupHashes);
  const random = createRandom(5);
  const scheduler = createScheduler('default', DEFAULT_PROFILE, createBuiltinRegistry(), {
    random,
    saturationQueueDepth: 8,
    maxEjectionPercent: 50,
  });
  const hist = createLatencyHistogram();
  const exclude = new Set<string>();
  let hits = 0;
  const requests = Array.from({ length: 256 }, (_, i) => workload.request(i));
  // Warm-up: let V8 optimise the hot paths before timing.
  for (let i = 0; i < Math.min(2000, decisions); i++) {
    const r = requests[i % requests.length]!;
    scheduler.schedule(
      createSchedulingRequest(
        { model: MODEL, prompt: r.prompt ?? '', messages: [], routing: null },
        `w${i}`,
        'v1',
        exclude,
      ),
      pool,
    );
  }
  const t0 = performance.now();
  for (let i = 0; i < decisions; i++) {
    const r = requests[i % requests.length]!;
    const start = performance.now();
    const d = scheduler.schedule(
      createSchedulingRequest(
        { model: MODEL, prompt: r.prompt ?? '', messages: [], routing: null },
        `r${i}`,
        'v1',
        exclude,
      ),
      pool,
    );
    hist.record(performance.now() - start);
    if (d.picked && d.picked.prefixIndex.size > 0) hits++;
  }
  const total = performance.now() - t0;
  return {
    p50Us: hist.at(50) * 1000,
    p99Us: hist.at(99) * 1000,
    meanUs: (total / decisions) * 1000,
    hitShare: hits / decisions,
  };
}

interface ScheduleCostOutput {
  promptHashUs: number;
  rows: Array<Omit<ScheduleCostRow, 'pluginsUs'>>;
}

/** Runs `bench/schedule-cost.ts --json` when it is there (the scheduling benchmark); undefined otherwise. */
function decisionsFromScheduleCost(iterations: number): ScheduleCostOutput | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  const script = join(here, '..', 'schedule-cost.ts');
  if (!import.meta.url.endsWith('.ts') || !existsSync(script)) return undefined;
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', script, '--json', '--iterations', String(iterations)],
    {
      encoding: 'utf8',
      cwd: join(here, '..', '..'),
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  if (run.status !== 0) return undefined;
  try {
    return JSON.parse(run.stdout) as ScheduleCostOutput;
  } catch {
    return undefined;
  }
}

/** Load report interval of the memory measurement. */
const MEMORY_REPORT_MS = 1000;

const clip = (s: string) => (s.length > 160 ? `${s.slice(0, 160)}…` : s);

/** Runs the scale scenario. */
export async function runScale(ctx: ScenarioContext): Promise<BenchReport> {
  const report = createReport(
    'Scale: decision time and memory per stream against endpoint count',
    ctx.command,
  );
  const sizes = [10, 100, 1000];
  const streams = ctx.quick ? 100 : 1000;
  const decisions = ctx.quick ? 2000 : 20_000;
  report.notes.push(
    `Decision time: ${decisions} decisions of the built-in default profile (filters ${DEFAULT_PROFILE.filters.join(', ')}; scorers ${DEFAULT_PROFILE.scorers.map((x) => `${x.type} ×${x.weight}`).join(', ')}; ${DEFAULT_PROFILE.picker} picker) ` +
      'over simulated endpoint state, in one process, including hashing the prompt. ' +
      `Memory: a router process (node --expose-gc) in front of a synthetic engine listening on N ports (N endpoints, each with its load stream, reporting every ${MEMORY_REPORT_MS} ms); ${streams} streams opened and held open after their first chunk; heap and RSS after GC with the streams open, minus before, divided by ${streams}.`,
  );
  const decisionRows: Array<Array<string | number>> = [];
  const shared = decisionsFromScheduleCost(decisions);
  if (shared) {
    report.notes.push(
      `Decision time comes from bench/schedule-cost.ts (its pool: load, KV usage and 500 random prefix blocks per endpoint, a tenth holding the requests' system prompt; prompt hashing ≈ ${fmt(shared.promptHashUs)} µs of each decision).`,
    );
    for (const r of shared.rows) {
      const kb = r.bytesPerDecision === undefined ? '–' : fmt(r.bytesPerDecision / 1000);
      decisionRows.push([r.endpoints, fmt(r.meanUs), fmt(r.p50Us), fmt(r.p99Us), fmt(r.nsPerEndpoint), kb]);
      ctx.log(`scale: ${r.endpoints} endpoints, decision mean ${fmt(r.meanUs)} µs, p99 ${fmt(r.p99Us)} µs`);
    }
  } else {
    for (const n of sizes) {
      const d = measureDecisions(n, decisions);
      decisionRows.push([n, fmt(d.meanUs), fmt(d.p50Us), fmt(d.p99Us), fmt((d.meanUs * 1000) / n), '–']);
      ctx.log(`scale: ${n} endpoints, decision mean ${fmt(d.meanUs)} µs, p99 ${fmt(d.p99Us)} µs`);
    }
  }
  report.tables.push({
    title: 'Scheduling decision time (default profile)',
    columns: ['endpoints', 'mean µs', 'p50 µs', 'p99 µs', 'ns per endpoint', 'KB allocated per decision'],
    rows: decisionRows,
  });

  const memRows: Array<Array<string | number>> = [];
  const routerConfig = (addresses: string[]) => ({ config: benchRouterConfig(MODEL, addresses) });
  for (const n of sizes) {
    if (ctx.signal.aborted) break;
    // Idle cost with sidecar-like reports (every 250 ms per endpoint).
    let idleCore = Number.NaN;
    const idleGroup = createProcessGroup(false);
    try {
      const engine = await idleGroup.helper('fake-engine', {
        model: MODEL,
        version: 'v1',
        endpoints: n,
        reportIntervalMs: 250,
      });
      const router = await idleGroup.helper('router', routerConfig(engine.info.addresses as string[]));
      await router.request('wait-ready', { n, timeoutMs: 120_000 }, 130_000);
      const cpu0 = router.cpuSeconds() ?? Number.NaN;
      await new Promise((r) => setTimeout(r, 3000));
      idleCore = ((router.cpuSeconds() ?? Number.NaN) - cpu0) / 3;
    } catch (err) {
      ctx.log(`scale: ${n} endpoints, idle measurement failed: ${clip((err as Error).message)}`);
    } finally {
      await idleGroup.stopAll();
    }
    const group = createProcessGroup(false);
    try {
      // Memory with reports every REPORT_MS (see the note: at 1000 endpoints, 250 ms saturates the router).
      const engine = await group.helper('fake-engine', {
        model: MODEL,
        version: 'v1',
        endpoints: n,
        reportIntervalMs: MEMORY_REPORT_MS,
      });
      const addresses = engine.info.addresses as string[];
      const router = await group.helper('router', routerConfig(addresses), { nodeFlags: ['--expose-gc'] });
      await router.request('wait-ready', { n, timeoutMs: 120_000 }, 130_000);
      const idle = await router.request<Mem>('stats');
      const client = createTargetClient({
        name: 'router',
        kind: 'inference',
        address: String(router.info.address),
      });
      await client.waitForReady(120_000);
      const calls: grpc.ClientReadableStream<unknown>[] = [];
      const firsts: Promise<unknown>[] = [];
      for (let i = 0; i < streams; i++) {
        const call = client.stream(
          { model: MODEL, prompt: `${HOLD_PROMPT} stream ${i}`, sampling: { maxTokens: 16 } },
          new grpc.Metadata(),
          { deadline: Date.now() + 300_000 },
        );
        const failed: { status?: string } = {};
        call.on('error', (err: grpc.ServiceError) => {
          failed.status = `${grpc.status[err.code] ?? err.code}: ${err.details}`;
        });
        calls.push(call);
        // Held once its first chunk arrived; failed if it ended first.
        firsts.push(
          Promise.race([
            once(call, 'data').then(
              () => true,
              () => false,
            ),
            once(call, 'status').then(() => false),
          ]).then((held) => (held ? undefined : clip(failed.status ?? 'ended'))),
        );
      }
      const outcomes = await Promise.all(firsts);
      const failures = outcomes.filter((o) => o !== undefined) as string[];
      const heldCount = streams - failures.length;
      if (failures.length > 0)
        ctx.log(`scale: ${n} endpoints: ${failures.length} streams failed, e.g. ${failures[0]}`);
      const held = await router.request<Mem>('stats', {}, 120_000).catch((err: Error) => {
        throw new Error(`router unresponsive with ${heldCount} streams open: ${err.message}`);
      });
      const heapPer = (held.memory.heapUsed - idle.memory.heapUsed) / Math.max(1, heldCount);
      const rssPer = (held.memory.rss - idle.memory.rss) / Math.max(1, heldCount);
      memRows.push([
        n,
        failures.length > 0 ? `${heldCount} (${failures.length} failed: ${failures[0]})` : heldCount,
        fmt(idle.memory.heapUsed / 2 ** 20),
        fmt(idle.memory.rss / 2 ** 20),
        `${fmt(idleCore * 100)} %`,
        fmt(heapPer / 1024),
        fmt(rssPer / 1024),
      ]);
      ctx.log(
        `scale: ${n} endpoints, ${heldCount} streams: ${fmt(heapPer / 1024)} KiB heap, ${fmt(rssPer / 1024)} KiB RSS per stream`,
      );
      for (const c of calls) c.cancel();
      client.close();
    } catch (err) {
      const message = clip((err as Error).message);
      ctx.log(`scale: ${n} endpoints: ${message}`);
      memRows.push([n, message, '', '', Number.isNaN(idleCore) ? '' : `${fmt(idleCore * 100)} %`, '', '']);
    } finally {
      await group.stopAll();
    }
  }
  report.tables.push({
    title: 'Router memory per in-flight stream',
    columns: [
      'endpoints',
      'streams',
      'idle heap MiB',
      'idle RSS MiB',
      'idle router CPU',
      'heap KiB/stream',
      'RSS KiB/stream',
    ],
    rows: memRows,
    note: `Idle router CPU: the router with N endpoints connected (one channel and one load stream each, a report per endpoint every 250 ms, as sidecars send them) and no request. Memory: measured with a report per endpoint every ${MEMORY_REPORT_MS} ms.`,
  });
  return report;
}
