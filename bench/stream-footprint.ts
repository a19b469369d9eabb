/**
 * What one in-flight stream holds in the router's heap next to the bare
 * pass-through's: both proxies in front of the same synthetic engine, each
 * given `--streams` streams that the engine answers with one chunk and then
 * holds open. Each proxy's heap is read after a full GC before the streams
 * open and once all have their first chunk; the difference per stream is
 * what the proxy keeps for a stream's life (what every scavenge of a busy
 * proxy walks). Unlike CPU time this is nearly free of the machine's noise.
 * With `--baseline-root DIR`, a router from another checkout (built with
 * `npm run build`) is measured in the same rounds (before / after a change).
 * With `--by-type`, heap snapshots of the router before and during give the
 * difference by constructor and closure name, per stream.
 *
 *     npm run build && LLMMESH_BENCH_COMPILED=1 node dist/bench/stream-footprint.js \
 *       [--streams 256] [--rounds 3] [--baseline-root DIR] [--by-type] [--top 30]
 */
import { readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { HOLD_PROMPT } from './fake-engine.js';
import { createProcessGroup, type HelperProcess } from './processes.js';
import { benchRouterConfig } from './router-config.js';
import { type BenchTarget, createTargetClient, type TargetClient } from './targets.js';

const MODEL = 'llama-3-8b-chat';
const { values: opts } = parseArgs({
  options: {
    streams: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    'by-type': { type: 'boolean', default: false },
    top: { type: 'string', default: '30' },
    'baseline-root': { type: 'string' },
  },
});
const streams = Number(opts.streams);
const rounds = Number(opts.rounds);

interface Stats {
  memory: NodeJS.MemoryUsage;
}

/** Opens `n` held streams; resolves once each has its first chunk, with a function that cancels them all. */
async function openHeld(client: TargetClient, n: number): Promise<() => Promise<void>> {
  const calls: grpc.ClientReadableStream<unknown>[] = [];
  const ended: Promise<void>[] = [];
  const first: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const call = client.stream(
      { model: MODEL, prompt: `${HOLD_PROMPT} stream ${i}`, sampling: { maxTokens: 16 } },
      new grpc.Metadata(),
      { deadline: Date.now() + 120_000 },
    );
    calls.push(call);
    first.push(
      new Promise<void>((resolve, reject) => {
        call.once('data', () => resolve());
        call.once('error', (err: Error) =>
          reject(new Error(`${client.target.name}: stream ${i}: ${err.message}`, { cause: err })),
        );
      }),
    );
    ended.push(
      new Promise<void>((resolve) => {
        call.on('error', () => resolve());
        call.on('end', () => resolve());
        call.on('status', () => resolve());
      }),
    );
  }
  await Promise.all(first);
  return async () => {
    for (const c of calls) c.cancel();
    await Promise.all(ended);
  };
}

/** Self size by `type:name` in a heap snapshot file. */
async function sizesByType(path: string): Promise<Map<string, { size: number; count: number }>> {
  const snap = JSON.parse(await readFile(path, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const types = snap.snapshot.meta.node_types[0];
  const out = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt] as number] as string;
    const raw = type === 'string' || type === 'concatenated string' || type === 'sliced string';
    const name = raw ? '' : (snap.strings[snap.nodes[i + nameAt] as number] as string).slice(0, 60);
    const key = `${type}:${name}`;
    const e = out.get(key) ?? { size: 0, count: 0 };
    e.size += snap.nodes[i + sizeAt] as number;
    e.count++;
    out.set(key, e);
  }
  return out;
}

const group = createProcessGroup(false);
try {
  process.stdout.write(
    `stream footprint (${new Date().toISOString()}): ${streams} held streams, ${rounds} rounds, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  const flags = { nodeFlags: ['--expose-gc'] };
  const stub = await group.helper('fake-engine', { model: MODEL, version: 'v1' });
  const endpoint = (stub.info.addresses as string[])[0] as string;
  const router = await group.helper('router', { config: benchRouterConfig(MODEL, [endpoint]) }, flags);
  await router.request('wait-ready', { n: 1 });
  const proxy = await group.helper('passthrough', { listen: '127.0.0.1:0', upstream: endpoint }, flags);
  const baselineRoot = opts['baseline-root'];
  const baseline = baselineRoot
    ? await group.helper(
        'router',
        { config: benchRouterConfig(MODEL, [endpoint]) },
        { ...flags, root: baselineRoot, compiled: true },
      )
    : undefined;
  if (baseline) await baseline.request('wait-ready', { n: 1 });
  const contenders: Array<{ target: BenchTarget; proc: HelperProcess; perStream: number[] }> = [
    { target: { name: 'router', kind: 'inference', address: String(router.info.address) }, proc: router },
    ...(baseline
      ? [
          {
            target: { name: 'baseline', kind: 'inference', address: String(baseline.info.address) },
            proc: baseline,
          },
        ]
      : []),
    { target: { name: 'passthrough', kind: 'engine', address: String(proxy.info.address) }, proc: proxy },
  ].map((c) => ({ ...c, target: c.target as BenchTarget, perStream: [] }));
  /**
   * A client of its own for each batch, connected before the heap is read:
   * a burst of cancels on one connection past the server's rapid-reset
   * limit would close it (common/rotating-client.ts).
   */
  const connect = async (target: BenchTarget) => {
    const client = createTargetClient(target);
    await client.waitForReady(10_000);
    return client;
  };
  /** Holds `streams` streams through `target`, reads `proc`'s heap, lets them go; the heap grown per stream. */
  const holdAndRead = async (target: BenchTarget, read: () => Promise<number>) => {
    const client = await connect(target);
    try {
      const before = await read();
      const close = await openHeld(client, streams);
      const during = await read();
      await close();
      return (during - before) / streams;
    } finally {
      client.close();
    }
  };
  const heap = async (proc: HelperProcess) => (await proc.request<Stats>('stats')).memory.heapUsed;
  /** Waits until the engine holds no stream (a proxy lets go of a stream before its upstream call ends). */
  const settled = async () => {
    for (let i = 0; i < 500; i++) {
      if ((await stub.request<{ active: number }>('stats')).active === 0) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the engine still holds streams 5 s after they were cancelled');
  };
  // Warm-up: JIT, connections, lazily built caches.
  for (const c of contenders) await holdAndRead(c.target, async () => 0);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...contenders].reverse() : contenders;
    for (const c of order) {
      await settled();
      c.perStream.push(await holdAndRead(c.target, () => heap(c.proc)));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  for (const c of contenders) {
    const kib = c.perStream.map((b) => (b / 1024).toFixed(1)).join(', ');
    process.stdout.write(
      `${c.target.name.padEnd(12)} heap per held stream: ${(median(c.perStream) / 1024).toFixed(1)} KiB (rounds: ${kib})\n`,
    );
  }
  const medianOf = (name: string) =>
    median((contenders.find((c) => c.target.name === name) as (typeof contenders)[number]).perStream);
  const floor = medianOf('passthrough');
  for (const name of baseline ? ['router', 'baseline'] : ['router'])
    process.stdout.write(`${name} ÷ pass-through: ${(medianOf(name) / floor).toFixed(2)}×\n`);
  if (baseline)
    process.stdout.write(
      `router - pass-through: ${((medianOf('router') - floor) / 1024).toFixed(1)} KiB per stream; baseline - pass-through: ${((medianOf('baseline') - floor) / 1024).toFixed(1)} KiB\n`,
    );

  if (opts['by-type']) {
    const dir = tmpdir();
    const idlePath = join(dir, `footprint-idle-${process.pid}.heapsnapshot`);
    const busyPath = join(dir, `footprint-busy-${process.pid}.heapsnapshot`);
    await settled();
    let first = true;
    // A full GC (the stats command) before each snapshot; the first read is before the streams open.
    await holdAndRead((contenders[0] as (typeof contenders)[number]).target, async () => {
      await router.request('stats');
      await router.request('heap-snapshot', { path: first ? idlePath : busyPath }, 300_000);
      first = false;
      return 0;
    });
    const [idle, busy] = [await sizesByType(idlePath), await sizesByType(busyPath)];
    await Promise.all([rm(idlePath, { force: true }), rm(busyPath, { force: true })]);
    const rows = [...busy]
      .map(([key, b]) => {
        const i = idle.get(key) ?? { size: 0, count: 0 };
        return { key, bytes: (b.size - i.size) / streams, count: (b.count - i.count) / streams };
      })
      .filter((row) => row.bytes > 0)
      .sort((a, b) => b.bytes - a.bytes);
    const total = rows.reduce((s, row) => s + row.bytes, 0);
    process.stdout.write(
      `\nrouter heap per held stream by type (snapshots; grown entries only, ${(total / 1024).toFixed(1)} KiB):\n`,
    );
    for (const row of rows.slice(0, Number(opts.top))) {
      process.stdout.write(
        `  ${row.bytes.toFixed(0).padStart(6)} B  ${row.count.toFixed(2).padStart(6)}×  ${row.key}\n`,
      );
    }
  }
} finally {
  await group.stopAll();
}
