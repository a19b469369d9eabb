/**
 * The router's added latency: time to first chunk (p50/p99) at 1 and 64
 * concurrent streams, through the router versus calling the sidecar
 * directly, in the same run against the same simulated pod. Every component
 * runs as its own process (`llmmesh sim`, `llmmesh sidecar`, `llmmesh
 * router`); rounds alternate between the paths so drift hits all. A bare
 * grpc-js pass-through (no routing logic at all) runs as a third path: the
 * floor any extra Node gRPC hop costs on this machine.
 *
 *   node --import tsx bench/schedule-overhead.ts [--concurrency 1,64] [--requests 100,640] [--time-scale 1]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import type { EngineClient, EngineHandlers } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import type { InferenceClient } from '../common/generated/llmmesh/v1/Inference.js';
import { loadProtos } from '../common/proto.js';
import { reportedAddress } from './processes.js';

const { values } = parseArgs({
  options: {
    /** Streams per path, one count per concurrency level. */
    requests: { type: 'string', default: '100,640' },
    concurrency: { type: 'string', default: '1,64' },
    // Real time by default: a faster engine multiplies the chunk rate beyond any real GPU's.
    'time-scale': { type: 'string', default: '1' },
    'max-tokens': { type: 'string', default: '16' },
    rounds: { type: 'string', default: '4' },
    /** Extra YAML appended to the router's routing file (e.g. admission settings). */
    'router-config': { type: 'string', default: '' },
    /** Write a CPU profile of the router process into this directory. */
    'profile-router': { type: 'string' },
  },
});
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'llmmesh.js');
const MODEL = 'llama-3-8b-chat';

const children: ChildProcess[] = [];
/**
 * Starts `llmmesh ...args` (on port 0) and resolves with its output once it
 * has printed the whole line that starts with `ready`.
 */
function start(args: string[], ready: string, nodeFlags: string[] = []): Promise<string> {
  const proc = spawn(process.execPath, [...nodeFlags, BIN, ...args], {
    env: { ...process.env, LLMMESH_LOG_LEVEL: 'error' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(proc);
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (reportedAddress(out, ready) !== undefined) resolve(out);
    });
    proc.once('exit', (code) => reject(new Error(`llmmesh ${args[0]} exited with ${code}`)));
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

type Call = (req: GenerateRequest) => grpc.ClientReadableStream<GenerateChunk__Output>;

/** `n` streams, `concurrency` at a time; returns each stream's time to first chunk (ms). */
async function run(call: Call, n: number, concurrency: number, tag: string): Promise<number[]> {
  const ttft: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const t0 = performance.now();
        let first = 0;
        const stream = call({
          model: MODEL,
          prompt: `${tag} request ${i}: tell me a story`,
          sampling: { maxTokens: Number(values['max-tokens']) },
        });
        for await (const _chunk of stream as AsyncIterable<GenerateChunk__Output>)
          first ||= performance.now();
        ttft.push(first - t0);
      }
    }),
  );
  return ttft;
}

/** A bare pass-through of Engine.GenerateStream to `upstream`, in this process. */
async function startPassthrough(upstream: string): Promise<{ address: string; close(): void }> {
  const { Engine } = loadProtos().engine;
  const client = new Engine(upstream, grpc.credentials.createInsecure()) as unknown as EngineClient;
  const server = new grpc.Server();
  const handlers: EngineHandlers = {
    GenerateStream(call) {
      const up = client.GenerateStream(call.request, call.metadata);
      call.once('cancelled', () => up.cancel());
      up.on('data', (chunk: GenerateChunk__Output) => call.write(chunk));
      up.on('error', (err: grpc.ServiceError) => call.emit('error', err));
      up.on('end', () => call.end());
    },
    WatchLoad(call) {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'pass-through only' });
    },
  };
  server.addService(Engine.service, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    close: () => {
      client.close();
      server.forceShutdown();
    },
  };
}

/** Sum and count of the router's own TTFT histogram (seconds). */
async function routerTtft(
  adminUrl: string,
): Promise<{ sum: number; count: number; queued: number; queuedSeconds: number }> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const num = (name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);
  return {
    sum: num('llm_time_to_first_token_seconds_sum'),
    count: num('llm_time_to_first_token_seconds_count'),
    queued: num('llm_router_admission_wait_seconds_count'),
    queuedSeconds: num('llm_router_admission_wait_seconds_sum'),
  };
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'llmmesh-overhead-'));
  const routes = join(dir, 'routes.yaml');
  writeFileSync(
    routes,
    `models:\n  ${MODEL}:\n    versions: { v1: { weight: 1 } }\n${String(values['router-config']).replace(/\\n/g, '\n')}\n`,
  );
  const simOut = await start(
    ['sim', '--port', '0', '--time-scale', String(values['time-scale']), '--max-num-seqs', '256'],
    'llmmesh sim serving on',
  );
  const simUrl = reportedAddress(simOut, 'llmmesh sim serving on') as string;
  const sidecarOut = await start(
    [
      'sidecar',
      '--engine-url',
      simUrl,
      '--listen',
      '127.0.0.1:0',
      '--model',
      MODEL,
      '--version',
      'v1',
      '--admin',
      'off',
      '--response-cache',
      'off',
    ],
    'llmmesh sidecar listening',
  );
  const sidecarAddress = reportedAddress(sidecarOut, 'llmmesh sidecar listening') as string;
  const routerOut = await start(
    [
      'router',
      '--config',
      routes,
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--endpoints',
      sidecarAddress,
    ],
    'llmmesh router listening',
    values['profile-router'] ? ['--cpu-prof', '--cpu-prof-dir', String(values['profile-router'])] : [],
  );
  const routerAddress = reportedAddress(routerOut, 'llmmesh router listening') as string;
  const adminUrl = reportedAddress(routerOut, ', admin') as string;

  const { engine, inference } = loadProtos();
  const direct = new engine.Engine(
    sidecarAddress,
    grpc.credentials.createInsecure(),
  ) as unknown as EngineClient;
  const routed = new inference.Inference(routerAddress, grpc.credentials.createInsecure(), {
    'grpc.enable_retries': 0,
  }) as unknown as InferenceClient;
  const passthrough = await startPassthrough(sidecarAddress);
  const viaPassthrough = new engine.Engine(
    passthrough.address,
    grpc.credentials.createInsecure(),
  ) as unknown as EngineClient;
  const paths: Record<string, Call> = {
    direct: (req) => direct.GenerateStream(req) as grpc.ClientReadableStream<GenerateChunk__Output>,
    passthrough: (req) =>
      viaPassthrough.GenerateStream(req) as grpc.ClientReadableStream<GenerateChunk__Output>,
    router: (req) => routed.GenerateStream(req) as grpc.ClientReadableStream<GenerateChunk__Output>,
  };
  // Wait until the router sees the pod ready (its first requests would fail otherwise).
  for (let i = 0; ; i++) {
    try {
      await run(paths.router as Call, 1, 1, 'warm');
      break;
    } catch (err) {
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const counts = String(values.requests).split(',').map(Number);
  const rounds = Number(values.rounds);
  process.stdout.write(
    `router overhead: TTFT through the router vs straight to the sidecar (same pod: sim time-scale ${values['time-scale']}, ${values['max-tokens']} tokens per stream, ${counts.join('/')} streams per path, ${rounds} alternating rounds)\n`,
  );
  process.stdout.write('streams  path     p50 ms   p99 ms   mean ms\n');
  const levels = String(values.concurrency).split(',').map(Number);
  for (const [li, concurrency] of levels.entries()) {
    const total = counts[li] ?? counts.at(-1) ?? 100;
    const results: Record<string, number[]> = { direct: [], passthrough: [], router: [] };
    const before = await routerTtft(adminUrl);
    await run(paths.direct as Call, concurrency * 4, concurrency, 'warmup');
    await run(paths.router as Call, concurrency * 4, concurrency, 'warmup');
    for (let r = 0; r < rounds; r++) {
      for (const name of r % 2 === 0
        ? ['direct', 'passthrough', 'router']
        : ['router', 'passthrough', 'direct']) {
        results[name]?.push(
          ...(await run(paths[name] as Call, Math.ceil(total / rounds), concurrency, `${name}-${r}`)),
        );
      }
    }
    const routerSide = await routerTtft(adminUrl);
    const summary: Record<string, { p50: number; p99: number; mean: number }> = {};
    for (const [name, list] of Object.entries(results)) {
      const sorted = [...list].sort((a, b) => a - b);
      summary[name] = {
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        mean: sorted.reduce((s, x) => s + x, 0) / sorted.length,
      };
      const s = summary[name];
      process.stdout.write(
        `${String(concurrency).padStart(7)}  ${name.padEnd(7)} ${s.p50.toFixed(2).padStart(7)} ${s.p99.toFixed(2).padStart(8)} ${s.mean.toFixed(2).padStart(9)}\n`,
      );
    }
    process.stdout.write(
      `${String(concurrency).padStart(7)}  (router's own view: mean ${(((routerSide.sum - before.sum) / Math.max(1, routerSide.count - before.count)) * 1000).toFixed(2)} ms from arrival to first chunk sent; ${routerSide.queued - before.queued} streams waited in admission, ${((routerSide.queuedSeconds - before.queuedSeconds) * 1000).toFixed(0)} ms in all)\n`,
    );
    const d = summary.direct;
    const ro = summary.router;
    if (d && ro) {
      process.stdout.write(
        `${String(concurrency).padStart(7)}  added   ${(ro.p50 - d.p50).toFixed(2).padStart(7)} ${(ro.p99 - d.p99).toFixed(2).padStart(8)} ${(ro.mean - d.mean).toFixed(2).padStart(9)}\n`,
      );
    }
  }
  direct.close();
  routed.close();
  viaPassthrough.close();
  passthrough.close();
}

main()
  .catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) c.kill('SIGTERM');
  });
