/**
 * A second opinion on the overhead figures: a plain @grpc/grpc-js client,
 * sharing no code with the load generator (bench/load-generator.ts, stats,
 * targets), measures the same three paths — direct to a synthetic engine,
 * through the raw-bytes pass-through, through the router — in interleaved
 * rounds: closed loop, time to first chunk by `process.hrtime.bigint()`,
 * percentiles by sorting, proxy CPU from /proc.
 *
 * Usage: node --import tsx bench/independent-client.ts [--concurrency 64] [--tokens 32] [--rounds 5] [--waves 3]
 */
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createProcessGroup, type HelperProcess } from './processes.js';
import { benchRouterConfig } from './router-config.js';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '5' },
    waves: { type: 'string', default: '3' },
  },
});
const C = Number(values.concurrency);
const TOKENS = Number(values.tokens);
const ROUNDS = Number(values.rounds);
const WAVES = Number(values.waves);
const MODEL = 'llama-3-8b-chat';

const def = protoLoader.loadSync(['llmmesh/v1/inference.proto', 'llmmesh/v1/engine.proto'], {
  includeDirs: [new URL('../proto', import.meta.url).pathname],
  keepCase: true,
  defaults: true,
});
type Ctor = new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client;
const pkg = grpc.loadPackageDefinition(def) as unknown as {
  llmmesh: { v1: { Engine: Ctor; Inference: Ctor } };
};

type Streamer = grpc.Client & {
  GenerateStream(req: unknown): grpc.ClientReadableStream<{ text: string }>;
};

/** One request: ms to the first chunk, or NaN on error. */
function one(client: Streamer, i: number): Promise<number> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let first = Number.NaN;
    const call = client.GenerateStream({
      model: MODEL,
      prompt: `independent client request ${i} ${'word '.repeat(120)}`,
      sampling: { max_tokens: TOKENS },
    });
    call.on('data', () => {
      if (Number.isNaN(first)) first = Number(process.hrtime.bigint() - t0) / 1e6;
    });
    call.on('error', () => resolve(Number.NaN));
    call.on('end', () => resolve(first));
  });
}

/** Closed loop: C workers, `n` requests; returns the TTFTs after the first C (warm-up). */
async function block(client: Streamer, n: number): Promise<{ ttft: number[]; errors: number }> {
  const out: number[] = [];
  let next = 0;
  let errors = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const t = await one(client, i);
      if (Number.isNaN(t)) errors++;
      else if (i >= C) out.push(t);
    }
  };
  await Promise.all(Array.from({ length: C }, worker));
  return { ttft: out, errors };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
};
const med = (xs: number[]) => pct(xs, 50);

const group = createProcessGroup(false);
try {
  const engine = await group.helper('fake-engine', { model: MODEL, version: 'v1', itlMs: 20 });
  const endpoint = (engine.info.addresses as string[])[0] as string;
  const router = await group.helper('router', { config: benchRouterConfig(MODEL, [endpoint]) });
  await router.request('wait-ready', { n: 1 });
  const proxy = await group.helper('passthrough', { listen: '127.0.0.1:0', upstream: endpoint });
  const cred = grpc.credentials.createInsecure();
  const paths: Array<{ name: string; client: Streamer; proc?: HelperProcess }> = [
    { name: 'direct', client: new pkg.llmmesh.v1.Engine(endpoint, cred) as unknown as Streamer },
    {
      name: 'passthrough',
      client: new pkg.llmmesh.v1.Engine(String(proxy.info.address), cred) as unknown as Streamer,
      proc: proxy,
    },
    {
      name: 'router',
      client: new pkg.llmmesh.v1.Inference(String(router.info.address), cred) as unknown as Streamer,
      proc: router,
    },
  ];
  const ttft = new Map<string, number[]>(paths.map((p) => [p.name, []]));
  const cpu = new Map<string, number[]>(paths.map((p) => [p.name, []]));
  const ratios: number[] = [];
  let errors = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const perRound = new Map<string, number>();
    for (let k = 0; k < paths.length; k++) {
      const p = paths[(k + round) % paths.length] as (typeof paths)[number];
      const before = p.proc?.cpuSeconds();
      const r = await block(p.client, C * (WAVES + 1));
      errors += r.errors;
      ttft.get(p.name)?.push(...r.ttft);
      const after = p.proc?.cpuSeconds();
      if (before !== undefined && after !== undefined) {
        const ms = ((after - before) * 1000) / (C * (WAVES + 1));
        cpu.get(p.name)?.push(ms);
        perRound.set(p.name, ms);
      }
    }
    const r = perRound.get('router');
    const pt = perRound.get('passthrough');
    if (r !== undefined && pt) ratios.push(r / pt);
  }
  const d = ttft.get('direct') as number[];
  const f = (x: number) => x.toFixed(2);
  console.log(
    `independent client: ${C} streams × ${TOKENS} tokens, ${ROUNDS} rounds × ${WAVES} waves (+1 warm-up), errors ${errors}, load ${(await import('node:os')).loadavg()[0]?.toFixed(1)}`,
  );
  console.log('| path | TTFT p50 | TTFT p99 | added p50 | added p99 | CPU ms/request (median) |');
  console.log('| --- | --: | --: | --: | --: | --: |');
  for (const p of paths) {
    const t = ttft.get(p.name) as number[];
    const c = cpu.get(p.name) as number[];
    console.log(
      `| ${p.name} | ${f(pct(t, 50))} | ${f(pct(t, 99))} | ${p.name === 'direct' ? '' : f(pct(t, 50) - pct(d, 50))} | ${p.name === 'direct' ? '' : f(pct(t, 99) - pct(d, 99))} | ${c.length ? f(med(c)) : ''} |`,
    );
  }
  console.log(
    `router ÷ pass-through CPU per request, per round: ${ratios.map(f).join(', ')} (median ${f(med(ratios))})`,
  );
  for (const p of paths) p.client.close();
} finally {
  await group.stopAll();
}
