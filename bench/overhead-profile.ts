/**
 * Where the router's CPU goes next to the pass-through's: both proxies in
 * front of the same endpoint (`--endpoint stub`, the default: a synthetic
 * engine that sends the first chunk at once, then one every 20 ms; `sim`: a
 * simulated pod and its sidecar, whose load reports the router also reads), sampled by V8's profiler (through the inspector) only while the
 * closed-loop load runs, in interleaved blocks of the same requests.
 *
 *     node --import tsx bench/overhead-profile.ts [--concurrency 64] [--output-len 32] [--endpoint stub|sim]
 *       [--rounds 4] [--waves 4] [--out DIR] [--top 25] [--interval-us 1000]
 *
 * Prints each proxy's CPU per request and its self time by area and by
 * function (share of its busy time); writes both `.cpuprofile` files to
 * `--out` (default bench/results/profiles) for a closer look in DevTools.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summarizeCpuProfile } from './cpu-profile.js';
import { runLoad } from './load-generator.js';
import { createProcessGroup, type HelperProcess } from './processes.js';
import { fmt } from './report.js';
import { benchRouterConfig } from './router-config.js';
import { startCostEndpoint } from './scenarios/pods.js';
import { type BenchTarget, createTargetClient } from './targets.js';
import { createWorkload } from './workloads.js';

const MODEL = 'llama-3-8b-chat';
const { values: opts } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '64' },
    'output-len': { type: 'string', default: '32' },
    rounds: { type: 'string', default: '4' },
    waves: { type: 'string', default: '4' },
    out: { type: 'string', default: 'bench/results/profiles' },
    top: { type: 'string', default: '25' },
    'interval-us': { type: 'string', default: '1000' },
    endpoint: { type: 'string', default: 'stub' },
  },
});
const concurrency = Number(opts.concurrency);
const outputLen = Number(opts['output-len']);

const group = createProcessGroup(false);
try {
  process.stdout.write(
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  const endpoint = await startCostEndpoint(group, String(opts.endpoint), { model: MODEL, itlMs: 20 });
  const router = await group.helper('router', { config: benchRouterConfig(MODEL, [endpoint]) });
  await router.request('wait-ready', { n: 1 });
  const proxy = await group.helper('passthrough', { listen: '127.0.0.1:0', upstream: endpoint });
  const contenders: Array<{ target: BenchTarget; proc: HelperProcess; cpuMs: number; requests: number }> = [
    { target: { name: 'router', kind: 'inference', address: String(router.info.address) }, proc: router },
    { target: { name: 'passthrough', kind: 'engine', address: String(proxy.info.address) }, proc: proxy },
  ].map((c) => ({ ...c, target: c.target as BenchTarget, cpuMs: 0, requests: 0 }));
  const workload = createWorkload('fixed', { seed: 7, params: { promptLen: 128, outputLen } });
  const clients = new Map(contenders.map((c) => [c.target.name, createTargetClient(c.target)]));
  for (const cl of clients.values()) await cl.waitForReady(10_000);
  const block = (c: (typeof contenders)[number], index: number, requests: number) =>
    runLoad({
      target: c.target,
      client: clients.get(c.target.name),
      model: MODEL,
      workload,
      mode: { kind: 'closed', concurrency },
      requests,
      startIndex: index,
    });
  // Warm-up, unsampled: JIT and connections.
  for (const c of contenders) await block(c, 0, concurrency * 2);
  for (const c of contenders)
    await c.proc.request('profile-start', { intervalUs: Number(opts['interval-us']) });
  let index = concurrency * 2;
  for (let round = 0; round < Number(opts.rounds); round++) {
    const order = round % 2 ? [...contenders].reverse() : contenders;
    for (const c of order) {
      const before = c.proc.cpuSeconds() ?? 0;
      const result = await block(c, index, concurrency * Number(opts.waves));
      c.cpuMs += ((c.proc.cpuSeconds() ?? 0) - before) * 1000;
      c.requests += result.sent;
    }
    index += concurrency * Number(opts.waves);
  }
  await mkdir(opts.out, { recursive: true });
  for (const c of contenders) {
    const profile = await c.proc.request('profile-stop');
    const file = join(
      opts.out,
      `${c.target.name}-${opts.endpoint}-${concurrency}x${outputLen}-${Date.now()}.cpuprofile`,
    );
    await writeFile(file, JSON.stringify(profile));
    const s = summarizeCpuProfile(file, Number(opts.top));
    const busy = s.totalMs - s.idleMs;
    process.stdout.write(
      `\n## ${c.target.name}: ${fmt(c.cpuMs / c.requests)} ms CPU per request (${c.requests} requests); sampled busy ${fmt(busy)} ms (${file})\n`,
    );
    for (const a of s.areas)
      process.stdout.write(`  ${(a.share * 100).toFixed(1).padStart(5)} %  ${a.name}\n`);
    process.stdout.write('  --\n');
    for (const f of s.functions)
      process.stdout.write(`  ${(f.share * 100).toFixed(1).padStart(5)} %  ${f.name}\n`);
  }
  for (const cl of clients.values()) cl.close();
} finally {
  await group.stopAll();
}
