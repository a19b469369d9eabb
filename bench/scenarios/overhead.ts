/**
 * overhead: what the router adds. The same closed-loop workload goes directly
 * to an endpoint, through a bare grpc-js pass-through (raw bytes, never
 * decoded: the floor of any Node proxy), and through the router, in
 * interleaved blocks (the order rotated each round; every path gets the same
 * requests of a round) so all three see the same machine. Two endpoints:
 *
 * - `sim`: a real pod, the simulator (fixed 20 ms inter-token latency) and its sidecar;
 * - `stub`: a synthetic Engine server sending a chunk every 20 ms, which takes
 *   the engine's step timing (±20 ms of TTFT jitter) out, so the proxies' own cost shows.
 *
 * Reported: TTFT and inter-chunk gap p50/p99 per path, what each proxy adds
 * over direct, and each proxy process's CPU time per request (from /proc),
 * with the router / pass-through ratio of every round. Then coalescing:
 * long streams read by slow readers (and a mix of slow and fast), chunks
 * delivered per proxy CPU-second per path.
 *
 * `--pin` runs the measured proxy alone on core 0 and everything else on core 1.
 */
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { COALESCE_BACKLOG } from '../../common/coalescing.js';
import type { GenerateChunk__Output } from '../../common/generated/llmmesh/v1/GenerateChunk.js';
import { loadProtos } from '../../common/proto.js';
import { type LoadResult, runLoad } from '../load-generator.js';
import { createProcessGroup, type HelperProcess, type ProcessGroup, pinSelf } from '../processes.js';
import { type BenchReport, createReport, fmt, runReport } from '../report.js';
import { benchRouterConfig } from '../router-config.js';
import { createStatsCollector, type RunStats } from '../stats.js';
import { type BenchTarget, createTargetClient } from '../targets.js';
import { createWorkload } from '../workloads.js';
import type { ScenarioContext } from './context.js';
import { startCostEndpoint } from './pods.js';
import { summarizeProfiles } from './profiles.js';

const MODEL = 'llama-3-8b-chat';
const ITL_MS = 20;

interface Case {
  endpoint: 'stub' | 'sim';
  concurrency: number;
  outputLen: number;
  rounds: number;
  /** Measured waves of `concurrency` requests per block (one more wave is warm-up). */
  waves: number;
}

function cases(quick: boolean): Case[] {
  if (quick) {
    return [
      { endpoint: 'stub', concurrency: 16, outputLen: 32, rounds: 1, waves: 1 },
      { endpoint: 'stub', concurrency: 16, outputLen: 256, rounds: 1, waves: 1 },
    ];
  }
  return [
    { endpoint: 'stub', concurrency: 64, outputLen: 32, rounds: 5, waves: 2 },
    { endpoint: 'stub', concurrency: 64, outputLen: 256, rounds: 3, waves: 1 },
    { endpoint: 'stub', concurrency: 512, outputLen: 32, rounds: 3, waves: 1 },
    { endpoint: 'sim', concurrency: 64, outputLen: 32, rounds: 3, waves: 2 },
    { endpoint: 'sim', concurrency: 512, outputLen: 32, rounds: 3, waves: 1 },
  ];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const spread = (xs: number[]) =>
  xs.length > 1
    ? `${fmt(median(xs))} (${fmt(Math.min(...xs))} – ${fmt(Math.max(...xs))})`
    : xs.length === 1
      ? fmt(xs[0] as number)
      : '';

/** Runs the overhead scenario. */
export async function runOverhead(ctx: ScenarioContext): Promise<BenchReport> {
  const report = createReport('Router overhead', ctx.command);
  const group = createProcessGroup(ctx.pin === true);
  const pinned = ctx.pin === true && group.pinning;
  const restore = pinned ? pinSelf('1') : () => {};
  const proxyCpus = pinned ? '0' : undefined;
  const otherCpus = pinned ? '1' : undefined;
  report.notes.push(
    'Closed loop, workload `fixed` (prompt 128 words, output 32 or 256 tokens). Paths: direct (client → endpoint, llmmesh.v1.Engine), ' +
      'passthrough (client → bare grpc-js forwarder of raw bytes → endpoint), router (client → router → endpoint, llmmesh.v1.Inference). ' +
      'At each case the three paths run in interleaved rounds (order rotated each round, the same requests for every path of a round); ' +
      'the first wave of each block (= concurrency requests) is warm-up. "added" = path minus direct (merged over the rounds); ' +
      '"CPU ms/request" = the proxy process CPU time over the block (from /proc) ÷ requests sent, median (min – max) over rounds; ' +
      '"router ÷ pass-through" is that ratio within each round.',
    `Endpoint "sim": llmmesh sim with a fixed-latency cost model (${ITL_MS} ms per decode step, 20 ms + 0.023 ms/token prefill, max_num_seqs 1024) behind its sidecar (response cache off, so every request is generated). ` +
      `Endpoint "stub": a synthetic llmmesh.v1.Engine server (bench/fake-engine.ts) that sends the first chunk at once and then one every ${ITL_MS} ms (each with its token id).`,
    pinned
      ? 'Pinned: the router and the pass-through run alone on core 0 (taskset -c 0); the endpoint, the simulator, the sidecar and the load generator share core 1.'
      : 'Not pinned: every process shares both cores.',
  );
  const latencyRows: Array<Array<string | number>> = [];
  const cpuRows: Array<Array<string | number>> = [];
  try {
    for (const endpointKind of ['stub', 'sim'] as const) {
      const mine = cases(ctx.quick).filter((c) => c.endpoint === endpointKind);
      if (mine.length === 0) continue;
      ctx.log(`overhead: starting the ${endpointKind} endpoint, pass-through and router`);
      const endpoint = await startCostEndpoint(group, endpointKind, {
        model: MODEL,
        itlMs: ITL_MS,
        cpus: otherCpus,
      });
      const profileDir = ctx.cpuProfDir
        ? join(ctx.cpuProfDir, `overhead-${endpointKind}-${Date.now()}`)
        : undefined;
      if (profileDir) await mkdir(profileDir, { recursive: true });
      const router = await group.helper('router', routerConfig(endpoint), {
        nodeFlags: profileDir ? ['--cpu-prof', '--cpu-prof-dir', resolve(profileDir)] : [],
        cpus: proxyCpus,
      });
      await router.request('wait-ready', { n: 1 });
      const proxy = await group.helper(
        'passthrough',
        { listen: '127.0.0.1:0', upstream: endpoint },
        { cpus: proxyCpus },
      );
      const targets: BenchTarget[] = [
        { name: 'direct', kind: 'engine', address: endpoint },
        { name: 'passthrough', kind: 'engine', address: String(proxy.info.address) },
        { name: 'router', kind: 'inference', address: String(router.info.address) },
      ];
      for (const c of mine) {
        await measure(ctx, report, { c, targets, router, proxy, latencyRows, cpuRows });
      }
      if (endpointKind === 'stub') {
        await measureCoalescing(ctx, report, { group, proxyCpus, otherCpus });
      }
      if (profileDir) {
        await router.stop();
        await summarizeProfiles(report, profileDir, `router, ${endpointKind} endpoint`);
      }
      await group.stopAll();
    }
  } finally {
    await group.stopAll();
    restore();
  }
  report.tables.unshift(
    {
      title: 'Proxy CPU per request (ms), side by side',
      columns: [
        'endpoint',
        'streams',
        'tokens',
        'pass-through CPU ms/request',
        'router CPU ms/request',
        'router ÷ pass-through',
        'errors (direct / pass-through / router)',
      ],
      rows: cpuRows,
      note: 'Target: router ≤ 1.2× the pass-through at 32- and 256-token streams.',
    },
    {
      title: 'Added latency over direct (ms)',
      columns: [
        'endpoint',
        'streams',
        'tokens',
        'path',
        'TTFT p50',
        'TTFT p99',
        'added TTFT p50',
        'added TTFT p99',
        'gap p50',
        'gap p99',
        'added gap p99',
        'direct TTFT p50 / p99',
      ],
      rows: latencyRows,
      note: `Targets: at 64 streams the router adds ≤ the pass-through's + 1 ms TTFT p50 and + 3 ms p99; at 512 its added p99 is no worse than the pass-through's.`,
    },
  );
  return report;
}

function routerConfig(endpoint: string, extra: Record<string, unknown> = {}) {
  return { config: benchRouterConfig(MODEL, [endpoint], extra) };
}

async function measure(
  ctx: ScenarioContext,
  report: BenchReport,
  setup: {
    c: Case;
    targets: BenchTarget[];
    router: HelperProcess;
    proxy: HelperProcess;
    latencyRows: Array<Array<string | number>>;
    cpuRows: Array<Array<string | number>>;
  },
): Promise<void> {
  const { c, targets, router, proxy } = setup;
  const workload = createWorkload('fixed', {
    seed: 7,
    params: { promptLen: 128, outputLen: c.outputLen },
  });
  const proc = new Map([
    ['router', router],
    ['passthrough', proxy],
  ]);
  const label = `${c.endpoint} c=${c.concurrency} ${c.outputLen} tokens`;
  const clients = new Map(targets.map((t) => [t.name, createTargetClient(t)]));
  try {
    for (const cl of clients.values()) await cl.waitForReady(10_000);
    const merged = new Map(targets.map((t) => [t.name, createStatsCollector()]));
    const blocks = new Map<string, LoadResult[]>(targets.map((t) => [t.name, []]));
    const cpuPerRequest = new Map<string, number[]>(targets.map((t) => [t.name, []]));
    const errors = new Map<string, number>(targets.map((t) => [t.name, 0]));
    const ratios: number[] = [];
    let index = 0;
    for (let round = 0; round < c.rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length] as BenchTarget);
      const requests = c.concurrency * c.waves;
      const roundCpu = new Map<string, number>();
      let next = index;
      for (const target of order) {
        if (ctx.signal.aborted) throw new Error('aborted');
        const p = proc.get(target.name);
        const cpuBefore = p?.cpuSeconds();
        const result = await runLoad({
          target,
          client: clients.get(target.name),
          model: MODEL,
          workload,
          mode: { kind: 'closed', concurrency: c.concurrency },
          requests,
          warmupRequests: c.concurrency,
          // The same requests for every path of the round.
          startIndex: index,
          signal: ctx.signal,
          onRecord: (r) => merged.get(target.name)?.add(r),
          onProgress: ctx.onProgress
            ? (pr) => ctx.onProgress?.(`${label} round ${round + 1} ${target.name}`, pr)
            : undefined,
        });
        next = result.nextIndex;
        blocks.get(target.name)?.push(result);
        errors.set(
          target.name,
          (errors.get(target.name) ?? 0) + Object.values(result.stats.errors).reduce((a, b) => a + b, 0),
        );
        const cpuAfter = p?.cpuSeconds();
        if (cpuBefore !== undefined && cpuAfter !== undefined && result.sent > 0) {
          const ms = ((cpuAfter - cpuBefore) * 1000) / result.sent;
          cpuPerRequest.get(target.name)?.push(ms);
          roundCpu.set(target.name, ms);
        }
      }
      index = next;
      const r = roundCpu.get('router');
      const pt = roundCpu.get('passthrough');
      if (r !== undefined && pt !== undefined && pt > 0) ratios.push(r / pt);
    }
    const stats = new Map<string, RunStats>();
    for (const t of targets) {
      const s = merged.get(t.name)?.summarize() as RunStats;
      const bs = blocks.get(t.name) ?? [];
      const seconds = bs.reduce((a, b) => a + b.stats.durationS, 0);
      s.durationS = seconds;
      s.requestsPerS = s.ok / seconds;
      s.outputTokensPerS = s.outputTokens / seconds;
      s.chunksPerS = bs.reduce((a, b) => a + b.stats.chunksPerS * b.stats.durationS, 0) / seconds;
      stats.set(t.name, s);
      const cpu = cpuPerRequest.get(t.name) ?? [];
      report.runs.push(
        runReport(
          `overhead ${label}`,
          t.name,
          { ...(bs[0] as LoadResult), stats: s },
          cpu.length > 0 ? { 'proxy CPU ms/request': median(cpu) } : undefined,
        ),
      );
    }
    const direct = stats.get('direct') as RunStats;
    for (const name of ['passthrough', 'router']) {
      const s = stats.get(name) as RunStats;
      setup.latencyRows.push([
        c.endpoint,
        c.concurrency,
        c.outputLen,
        name,
        fmt(s.ttft.p50),
        fmt(s.ttft.p99),
        fmt(s.ttft.p50 - direct.ttft.p50),
        fmt(s.ttft.p99 - direct.ttft.p99),
        fmt(s.itl.p50),
        fmt(s.itl.p99),
        fmt(s.itl.p99 - direct.itl.p99),
        `${fmt(direct.ttft.p50)} / ${fmt(direct.ttft.p99)}`,
      ]);
    }
    setup.cpuRows.push([
      c.endpoint,
      c.concurrency,
      c.outputLen,
      spread(cpuPerRequest.get('passthrough') ?? []),
      spread(cpuPerRequest.get('router') ?? []),
      `${spread(ratios)}×`,
      `${errors.get('direct')} / ${errors.get('passthrough')} / ${errors.get('router')}`,
    ]);
    const r = stats.get('router') as RunStats;
    const pt = stats.get('passthrough') as RunStats;
    ctx.log(
      `overhead ${label}: added TTFT p50 router ${fmt(r.ttft.p50 - direct.ttft.p50)} vs pass-through ${fmt(pt.ttft.p50 - direct.ttft.p50)} ms, ` +
        `p99 ${fmt(r.ttft.p99 - direct.ttft.p99)} vs ${fmt(pt.ttft.p99 - direct.ttft.p99)} ms; CPU router ÷ pass-through ${spread(ratios)}`,
    );
  } finally {
    for (const cl of clients.values()) cl.close();
  }
}

/** One stream read by a reader that may fall behind. */
/** What one stream's reader got. */
export interface ReadResult {
  messages: number;
  tokens: number;
  ok: boolean;
}

/**
 * Reads one stream; a slow reader takes `burst` messages, then stops reading
 * for `pauseMs`, and so on (it falls behind a fast engine).
 */
export function readStream(
  call: grpc.ClientReadableStream<GenerateChunk__Output>,
  slow: { burst: number; pauseMs: number } | undefined,
): Promise<ReadResult> {
  return new Promise((resolvePromise) => {
    const out: ReadResult = { messages: 0, tokens: 0, ok: false };
    call.on('data', (chunk: GenerateChunk__Output) => {
      out.messages++;
      out.tokens += chunk.tokenIds.length;
      if (slow && out.messages % slow.burst === 0) {
        call.pause();
        setTimeout(() => call.resume(), slow.pauseMs);
      }
    });
    call.on('error', () => resolvePromise(out));
    call.on('end', () => {
      out.ok = true;
      resolvePromise(out);
    });
  });
}

/**
 * Coalescing: long streams from an engine that sends as fast as it is read,
 * to readers that fall behind (all slow, then half slow and half fast).
 * Per path: messages the readers got, tokens, and tokens per proxy CPU-second.
 */
async function measureCoalescing(
  ctx: ScenarioContext,
  report: BenchReport,
  setup: { group: ProcessGroup; proxyCpus?: string; otherCpus?: string },
): Promise<void> {
  const streams = ctx.quick ? 4 : 16;
  const tokens = 8192;
  const tokensPerMs = 4;
  const rounds = ctx.quick ? 1 : 3;
  const slow = { burst: 16, pauseMs: 10 };
  ctx.log('overhead: coalescing, slow readers');
  const fast = await setup.group.helper(
    'fake-engine',
    { model: MODEL, version: 'v1', tokensPerMs },
    { cpus: setup.otherCpus },
  );
  const endpoint = (fast.info.addresses as string[])[0] as string;
  const router = await setup.group.helper('router', routerConfig(endpoint), { cpus: setup.proxyCpus });
  await router.request('wait-ready', { n: 1 });
  const proxy = await setup.group.helper(
    'passthrough',
    { listen: '127.0.0.1:0', upstream: endpoint },
    { cpus: setup.proxyCpus },
  );
  const protos = loadProtos();
  const paths = [
    {
      name: 'passthrough',
      proc: proxy,
      client: new protos.engine.Engine(String(proxy.info.address), grpc.credentials.createInsecure()),
    },
    {
      name: 'router',
      proc: router,
      client: new protos.inference.Inference(String(router.info.address), grpc.credentials.createInsecure()),
    },
  ];
  const rows: Array<Array<string | number>> = [];
  try {
    for (const mix of ['slow', 'half slow, half fast'] as const) {
      const per = new Map<
        string,
        { messages: number; tokens: number; cpu: number; ok: number; perCpu: number[] }
      >();
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? paths : [...paths].reverse();
        for (const p of order) {
          const before = p.proc.cpuSeconds() ?? 0;
          const results = await Promise.all(
            Array.from({ length: streams }, (_, i) => {
              const call = (
                p.client as unknown as {
                  GenerateStream(r: unknown): grpc.ClientReadableStream<GenerateChunk__Output>;
                }
              ).GenerateStream({
                model: MODEL,
                prompt: `coalescing ${i}`,
                sampling: { maxTokens: tokens },
              });
              const isSlow = mix === 'slow' || i % 2 === 0;
              return readStream(call, isSlow ? slow : undefined);
            }),
          );
          const cpu = (p.proc.cpuSeconds() ?? 0) - before;
          const agg = per.get(p.name) ?? { messages: 0, tokens: 0, cpu: 0, ok: 0, perCpu: [] };
          const t = results.reduce((a, r) => a + r.tokens, 0);
          agg.messages += results.reduce((a, r) => a + r.messages, 0);
          agg.tokens += t;
          agg.cpu += cpu;
          agg.ok += results.filter((r) => r.ok).length;
          if (cpu > 0) agg.perCpu.push(t / cpu);
          per.set(p.name, agg);
        }
      }
      const pt = per.get('passthrough');
      const r = per.get('router');
      for (const [name, a] of per) {
        rows.push([
          mix,
          name,
          a.tokens,
          a.messages,
          fmt(a.tokens / Math.max(1, a.messages)),
          spread(a.perCpu),
          `${a.ok} / ${streams * rounds}`,
        ]);
      }
      if (pt && r) {
        ctx.log(
          `coalescing (${mix}): tokens per CPU-second router ${fmt(median(r.perCpu))} vs pass-through ${fmt(median(pt.perCpu))}; messages ${r.messages} vs ${pt.messages}`,
        );
      }
    }
  } finally {
    for (const p of paths) p.client.close();
    await proxy.stop();
    await router.stop();
    await fast.stop();
  }
  report.tables.push({
    title: 'Coalescing: readers that fall behind',
    columns: [
      'readers',
      'path',
      'tokens',
      'messages received',
      'tokens per message',
      'tokens per proxy CPU-second',
      'streams complete',
    ],
    rows,
    note:
      `${streams} concurrent streams of ${tokens} tokens from a synthetic engine generating ${tokensPerMs} tokens/ms per stream whether read or not, and writing as a sidecar does (one chunk per token; all that wait as one chunk once a reader is behind by ${COALESCE_BACKLOG}); ` +
      `a slow reader takes ${slow.burst} messages, then stops for ${slow.pauseMs} ms; a fast reader takes everything at once. ` +
      `${rounds} rounds per path, interleaved; tokens per proxy CPU-second: median (min – max) over rounds. ` +
      'The pass-through forwards every message it gets (backpressure only, so the engine merges behind it); the router also merges the chunks waiting for a reader that is behind.',
  });
}
