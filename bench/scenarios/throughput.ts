/**
 * throughput: how many token chunks per second the router forwards on one
 * core, and where it saturates. A synthetic engine (`fake-engine.ts`) sends
 * chunks as fast as they are read; the router runs in its own process, pinned
 * to core 0 with `taskset` where available, while the engine and the load
 * generator share core 1. Streams in flight rise until the router's core is
 * busy; each level also runs directly against the engine, to show the load
 * generator's own ceiling. A last probe reads one long stream slowly, to see
 * whether the router coalesces pending chunks for a slow reader.
 */
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { runLoad } from '../load-generator.js';
import { createProcessGroup, pinSelf } from '../processes.js';
import { type BenchReport, createReport, fmt, runReport } from '../report.js';
import { benchRouterConfig } from '../router-config.js';
import { type BenchTarget, createTargetClient, type TargetClient } from '../targets.js';
import { createWorkload } from '../workloads.js';
import type { ScenarioContext } from './context.js';
import { summarizeProfiles } from './profiles.js';

const MODEL = 'llama-3-8b-chat';

interface EngineStats {
  chunks: number;
}

/** Runs the throughput scenario. */
export async function runThroughput(ctx: ScenarioContext): Promise<BenchReport> {
  const report = createReport('Router forwarding throughput', ctx.command);
  const levels = ctx.quick ? [1, 16] : [1, 4, 16, 64, 256];
  const seconds = ctx.quick ? 1.5 : 4;
  const chunksPerStream = 256;
  const workload = createWorkload('fixed', { seed: 3, params: { promptLen: 8, outputLen: chunksPerStream } });
  const profileRoot = ctx.cpuProfDir;
  const profileDir = profileRoot ? join(profileRoot, `throughput-${Date.now()}`) : undefined;
  const group = createProcessGroup(true);
  const restore = group.pinning ? pinSelf('1') : () => {};
  report.notes.push(
    `A synthetic engine streams ${chunksPerStream}-chunk completions as fast as they are read (each chunk is one GenerateChunk of 4 characters). ` +
      (group.pinning
        ? 'The router runs alone on core 0 (taskset -c 0); the engine and the load generator share core 1. '
        : 'taskset is not available: processes are not pinned. ') +
      `At each level, ${seconds} s of closed-loop load (after 1 s of warm-up) through the router, then the same directly to the engine. ` +
      'chunks/s = chunks the engine wrote ÷ wall time; router core = router CPU seconds ÷ wall seconds; chunks per router CPU-second = chunks ÷ router CPU seconds (the per-core figure).',
  );
  const rows: Array<Array<string | number>> = [];
  try {
    const engine = await group.helper('fake-engine', { model: MODEL, version: 'v1' }, { cpus: '1' });
    const engineAddress = (engine.info.addresses as string[])[0] as string;
    if (profileDir) await mkdir(profileDir, { recursive: true });
    const router = await group.helper(
      'router',
      {
        config: benchRouterConfig(MODEL, [engineAddress]),
      },
      {
        cpus: '0',
        nodeFlags: profileDir ? ['--cpu-prof', '--cpu-prof-dir', resolve(profileDir)] : [],
      },
    );
    await router.request('wait-ready', { n: 1 });
    const targets: BenchTarget[] = [
      { name: 'router', kind: 'inference', address: String(router.info.address) },
      { name: 'direct', kind: 'engine', address: engineAddress },
    ];
    const clients = new Map(targets.map((t) => [t.name, createTargetClient(t)]));
    for (const c of clients.values()) await c.waitForReady(10_000);
    let index = 0;
    let best = { chunksPerS: 0, perCore: 0, concurrency: 0, routerCore: 0 };
    for (const concurrency of levels) {
      for (const target of targets) {
        if (ctx.signal.aborted) throw new Error('aborted');
        const cpu0 = router.cpuSeconds() ?? Number.NaN;
        const chunks0 = (await engine.request<EngineStats>('stats')).chunks;
        const t0 = performance.now();
        const result = await runLoad({
          target,
          client: clients.get(target.name),
          model: MODEL,
          workload,
          mode: { kind: 'closed', concurrency },
          durationMs: seconds * 1000,
          warmupMs: 1000,
          startIndex: index,
          signal: ctx.signal,
          onProgress: ctx.onProgress
            ? (p) => ctx.onProgress?.(`c=${concurrency} ${target.name}`, p)
            : undefined,
        });
        const wall = (performance.now() - t0) / 1000;
        const chunks = (await engine.request<EngineStats>('stats')).chunks - chunks0;
        const cpu = (router.cpuSeconds() ?? Number.NaN) - cpu0;
        index = result.nextIndex;
        const chunksPerS = chunks / wall;
        const extra: Record<string, number> = { 'chunks/s (engine)': chunksPerS };
        if (target.name === 'router') {
          extra['router core'] = cpu / wall;
          extra['chunks per router CPU-s'] = chunks / cpu;
          if (chunksPerS > best.chunksPerS) {
            best = { chunksPerS, perCore: chunks / cpu, concurrency, routerCore: cpu / wall };
          }
        }
        report.runs.push(runReport(`throughput c=${concurrency}`, target.name, result, extra));
        rows.push([
          concurrency,
          target.name,
          fmt(chunksPerS),
          target.name === 'router' ? `${fmt((cpu / wall) * 100)} %` : '',
          target.name === 'router' ? fmt(chunks / cpu) : '',
          result.stats.itl.count > 0 ? fmt(result.stats.itl.p99) : '—',
          Object.values(result.stats.errors).reduce((a, b) => a + b, 0),
        ]);
        ctx.log(
          `throughput c=${concurrency} ${target.name}: ${fmt(chunksPerS)} chunks/s` +
            (target.name === 'router'
              ? `, router core ${fmt((cpu / wall) * 100)} %, ${fmt(chunks / cpu)} chunks per router CPU-s`
              : ''),
        );
      }
    }
    report.tables.push({
      title: 'Chunks forwarded',
      columns: [
        'streams',
        'path',
        'chunks/s',
        'router core busy',
        'chunks per router CPU-s',
        'gap p99 ms',
        'errors',
      ],
      rows,
      note: `Best through the router: ${fmt(best.chunksPerS)} chunks/s at ${best.concurrency} streams (router core ${fmt(best.routerCore * 100)} % busy); ${fmt(best.perCore)} chunks per router CPU-second. Target ≥ 50,000 per core.`,
    });

    const slow = await slowReaderProbe(clients.get('router') as TargetClient, ctx.quick ? 5_000 : 20_000);
    report.tables.push({
      title: 'Slow reader (coalescing probe)',
      columns: [
        'chunks generated',
        'messages received',
        'messages per chunk',
        'reader paused ms',
        'text intact',
      ],
      rows: [
        [
          slow.chunks,
          slow.messages,
          fmt(slow.messages / slow.chunks),
          slow.pausedMs,
          slow.intact ? 'yes' : 'no',
        ],
      ],
      note:
        slow.messages < slow.chunks
          ? 'The router coalesced chunks that were pending while the reader was paused.'
          : 'Each engine chunk reached the reader as its own message: the router does not coalesce pending chunks for a slow reader (it applies backpressure upstream instead, so nothing queues without bound).',
    });
    for (const c of clients.values()) c.close();
    if (profileDir) {
      await router.stop();
      await summarizeProfiles(report, profileDir, 'router');
    }
  } finally {
    restore();
    await group.stopAll();
  }
  return report;
}

/** One stream of `n` chunks through the router, read after a pause of 1 s. */
async function slowReaderProbe(
  client: TargetClient,
  n: number,
): Promise<{ chunks: number; messages: number; pausedMs: number; intact: boolean }> {
  const call = client.stream(
    { model: MODEL, prompt: 'slow reader', sampling: { maxTokens: n } },
    new grpc.Metadata(),
    { deadline: Date.now() + 120_000 },
  );
  let messages = 0;
  let text = '';
  const pausedMs = 1000;
  call.on('data', (chunk: { text: string }) => {
    messages++;
    text += chunk.text;
    if (messages === 1) {
      call.pause();
      setTimeout(() => call.resume(), pausedMs);
    }
  });
  call.on('error', () => {});
  await once(call, 'status');
  return { chunks: n, messages, pausedMs, intact: text === ' tok'.repeat(n) };
}
