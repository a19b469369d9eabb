/**
 * The cost of the sidecar hop: the same streaming workload sent to the
 * simulator directly (OpenAI HTTP/SSE, pooled keep-alive client) and through
 * a sidecar (gRPC `Engine.GenerateStream`), at a fixed concurrency. The
 * simulator and the sidecar run as separate `llmmesh` processes, the load
 * generator in this one, so they do not share an event loop.
 *
 * Also: time to first token of a response-cache hit against a miss.
 *
 * Usage: node --import tsx bench/sidecar-hop.ts [--concurrency 64] [--requests 1280]
 *        [--max-tokens 64] [--itl-ms 10] [--ttft-ms 20]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import { createEngineClient } from '../sidecar/engine-client.js';
import { createSidecarClient, generate } from './sidecar-client.js';

const MODEL = 'llama-3-8b-chat';
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'llmmesh.js');

interface Sample {
  ttftMs: number;
  totalMs: number;
  chunks: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] as number;
}

function summary(samples: Sample[]) {
  const ttft = samples.map((s) => s.ttftMs).sort((a, b) => a - b);
  const total = samples.map((s) => s.totalMs).sort((a, b) => a - b);
  return {
    n: samples.length,
    ttftP50: percentile(ttft, 50),
    ttftP99: percentile(ttft, 99),
    totalP50: percentile(total, 50),
    totalP99: percentile(total, 99),
  };
}

/** CPU time (user + system, ms) a process used so far; Linux /proc only, NaN elsewhere. */
function cpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks (100 per second on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function launch(args: string[], readyText: string): Promise<ChildProcess> {
  // BENCH_SIDECAR_NODE_OPTIONS (e.g. --cpu-prof) applies to the sidecar process only.
  const nodeOptions =
    args[0] === 'sidecar' ? (process.env.BENCH_SIDECAR_NODE_OPTIONS ?? '').split(' ').filter(Boolean) : [];
  const proc = spawn(process.execPath, [...nodeOptions, BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LLMMESH_LOG_LEVEL: 'warn' },
  });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes(readyText)) resolve(proc);
    });
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    proc.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}:\n${out}`)));
  });
}

async function run(
  concurrency: number,
  requests: number,
  one: (i: number) => Promise<Sample>,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) samples.push(await one(next++));
    }),
  );
  return samples;
}

async function main() {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '64' },
      requests: { type: 'string', default: '1280' },
      'max-tokens': { type: 'string', default: '64' },
      'itl-ms': { type: 'string', default: '10' },
      'ttft-ms': { type: 'string', default: '20' },
    },
  });
  const concurrency = Number(values.concurrency);
  const requests = Number(values.requests);
  const maxTokens = Number(values['max-tokens']);
  const [simPort, sidecarPort] = [await freePort(), await freePort()];
  const sim = await launch(
    [
      'sim',
      '--port',
      String(simPort),
      '--served-model-name',
      MODEL,
      '--max-num-seqs',
      '1024',
      '--inter-token-latency-ms',
      String(values['itl-ms']),
      '--time-to-first-token-ms',
      String(values['ttft-ms']),
    ],
    'llmmesh sim serving on',
  );
  const sidecar = await launch(
    [
      'sidecar',
      '--engine-url',
      `http://127.0.0.1:${simPort}`,
      '--listen',
      `127.0.0.1:${sidecarPort}`,
      '--admin',
      'off',
      '--model',
      MODEL,
      '--max-in-flight',
      '1024',
    ],
    'llmmesh sidecar listening',
  );
  const engine = createEngineClient({ url: `http://127.0.0.1:${simPort}` });
  const grpcClient: EngineClient = createSidecarClient(`127.0.0.1:${sidecarPort}`);
  try {
    // Wait until the sidecar serves (its first probe).
    for (;;) {
      try {
        await generate(grpcClient, { model: MODEL, prompt: 'warm up', sampling: { maxTokens: 1 } });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    const direct = async (i: number, tag: string): Promise<Sample> => {
      const t0 = performance.now();
      let ttft = -1;
      let chunks = 0;
      for await (const ev of engine.stream({
        path: '/v1/completions',
        body: {
          model: MODEL,
          prompt: `${tag} request ${i}: tell me about the sea`,
          max_tokens: maxTokens,
          temperature: 0.7,
          stream: true,
          stream_options: { include_usage: true },
        },
      })) {
        if (ttft < 0) ttft = performance.now() - t0;
        chunks++;
        void ev;
      }
      return { ttftMs: ttft, totalMs: performance.now() - t0, chunks };
    };
    const viaSidecar = async (i: number, tag: string, temperature = 0.7): Promise<Sample> => {
      const t0 = performance.now();
      let ttft = -1;
      const r = await generate(
        grpcClient,
        {
          model: MODEL,
          prompt: `${tag} request ${i}: tell me about the sea`,
          sampling: { maxTokens, temperature },
        },
        {
          onChunk: () => {
            if (ttft < 0) ttft = performance.now() - t0;
          },
        },
      );
      return { ttftMs: ttft, totalMs: performance.now() - t0, chunks: r.chunks.length };
    };

    // Warm both paths (connection pools, JIT).
    await run(concurrency, concurrency * 2, (i) => direct(i, 'warm-direct'));
    await run(concurrency, concurrency * 2, (i) => viaSidecar(i, 'warm-sidecar'));

    // The engine's own view of each request (vllm:e2e_request_latency_seconds), to tell
    // time added on the way from time the engine itself took longer (CPU contention).
    const engineE2e = async () => {
      const text = await engine.metrics();
      const read = (name: string) =>
        Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      return {
        sum: read('vllm:e2e_request_latency_seconds_sum'),
        count: read('vllm:e2e_request_latency_seconds_count'),
      };
    };
    type Row = ReturnType<typeof summary> & { clientMean: number; engineMean: number };
    const phase = async (name: string, one: (i: number) => Promise<Sample>): Promise<[string, Row]> => {
      const e0 = await engineE2e();
      const samples = await run(concurrency, requests, one);
      const e1 = await engineE2e();
      const engineMean = (1000 * (e1.sum - e0.sum)) / Math.max(1, e1.count - e0.count);
      const clientMean = samples.reduce((a, x) => a + x.totalMs, 0) / samples.length;
      return [name, { ...summary(samples), clientMean, engineMean }];
    };
    const rows: Array<[string, Row]> = [];
    let sidecarCpuMs = 0;
    let sidecarChunks = 0;
    for (let round = 1; round <= 2; round++) {
      rows.push(await phase(`direct #${round}`, (i) => direct(i, `d${round}`)));
      const cpuBefore = cpuMs(sidecar.pid);
      rows.push(
        await phase(`sidecar #${round}`, async (i) => {
          const x = await viaSidecar(i, `s${round}`);
          sidecarChunks += x.chunks;
          return x;
        }),
      );
      sidecarCpuMs += cpuMs(sidecar.pid) - cpuBefore;
    }
    const f = (n: number) => n.toFixed(2).padStart(8);
    console.log(
      `sidecar hop: ${concurrency} concurrent streams, ${requests} requests of ${maxTokens} tokens per run, ` +
        `sim ITL ${values['itl-ms']} ms, TTFT ${values['ttft-ms']} ms (fixed step model)`,
    );
    console.log(
      'path        |    n | TTFT p50 | TTFT p99 | total p50 | total p99 | engine e2e mean | client − engine mean   (ms)',
    );
    for (const [name, s] of rows) {
      console.log(
        `${name.padEnd(11)} | ${String(s.n).padStart(4)} | ${f(s.ttftP50)} | ${f(s.ttftP99)} | ${f(s.totalP50).padStart(9)} | ` +
          `${f(s.totalP99).padStart(9)} | ${f(s.engineMean).padStart(15)} | ${f(s.clientMean - s.engineMean).padStart(20)}`,
      );
    }
    const d = rows.filter(([n]) => n.startsWith('direct')).map(([, s]) => s);
    const sc = rows.filter(([n]) => n.startsWith('sidecar')).map(([, s]) => s);
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const delta = (pick: (r: Row) => number) => (avg(sc.map(pick)) - avg(d.map(pick))).toFixed(2);
    console.log(
      `added by the hop (mean of runs): TTFT p50 ${delta((s) => s.ttftP50)} ms, TTFT p99 ${delta((s) => s.ttftP99)} ms, ` +
        `total p50 ${delta((s) => s.totalP50)} ms, total p99 ${delta((s) => s.totalP99)} ms; ` +
        `transport only (client − engine, mean) ${delta((s) => s.clientMean - s.engineMean)} ms`,
    );

    console.log(
      `sidecar CPU: ${(sidecarCpuMs / 1000).toFixed(2)} s for ${sidecarChunks} chunks = ` +
        `${((1000 * sidecarCpuMs) / sidecarChunks).toFixed(1)} µs per streamed chunk`,
    );

    // One stream at a time: the hop without queueing behind 63 others.
    {
      const n = 200;
      const lone = async (one: (i: number) => Promise<Sample>) => summary(await run(1, n, one));
      const d1 = await lone((i) => direct(i, 'lone-direct'));
      const s1 = await lone((i) => viaSidecar(i, 'lone-sidecar'));
      console.log(
        `one stream at a time (${n} requests): direct TTFT p50 ${d1.ttftP50.toFixed(2)} / p99 ${d1.ttftP99.toFixed(2)} ms, ` +
          `sidecar TTFT p50 ${s1.ttftP50.toFixed(2)} / p99 ${s1.ttftP99.toFixed(2)} ms; ` +
          `total p50 ${d1.totalP50.toFixed(1)} vs ${s1.totalP50.toFixed(1)} ms`,
      );
    }

    // Response cache: misses (first time) and hits (second time), deterministic requests.
    for (const c of [1, concurrency]) {
      const n = Math.max(c * 4, 64);
      const miss = summary(await run(c, n, (i) => viaSidecar(i, `cache-c${c}`, 0)));
      const hit = summary(await run(c, n, (i) => viaSidecar(i, `cache-c${c}`, 0)));
      console.log(
        `response cache at concurrency ${c}: miss TTFT p50 ${miss.ttftP50.toFixed(2)} / p99 ${miss.ttftP99.toFixed(2)} ms, ` +
          `hit TTFT p50 ${hit.ttftP50.toFixed(2)} / p99 ${hit.ttftP99.toFixed(2)} ms; ` +
          `whole response: miss p50 ${miss.totalP50.toFixed(1)} ms, hit p50 ${hit.totalP50.toFixed(2)} ms`,
      );
    }
  } finally {
    grpcClient.close();
    engine.close();
    sidecar.kill('SIGTERM');
    sim.kill('SIGTERM');
  }
}

await main();
