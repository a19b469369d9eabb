/**
 * The cost of the sidecar hop, against a floor. The same streaming workload
 * goes, interleaved in rounds, to the simulator directly (OpenAI HTTP/SSE,
 * pooled keep-alive client), through the floor (`bench/sse-passthrough.ts`:
 * gRPC in, SSE out, nothing else) and through a sidecar (response cache off,
 * so every call reaches the engine), at 32- and 256-token streams and a
 * fixed concurrency. The simulator, the floor and the sidecar run as
 * separate processes, the load generator in this one; each proxy's CPU time
 * comes from /proc, per request and per streamed chunk, and its ratio to
 * the floor's is taken round by round.
 *
 * `npm run bench:sidecar-hop` builds this checkout and runs every process
 * from its compiled `dist/` (`LLMMESH_BENCH_COMPILED=1`), as a deployment
 * runs it: the simulator and the sidecars from `dist/cli/main.js` (its
 * `main`, called as `bin/llmmesh.js` calls it, in the process itself), the
 * floor from `dist/bench/sse-passthrough.js`. Run directly with tsx and
 * without that variable, they run from the TypeScript sources through tsx,
 * whose transform adds work of its own (a name-keeping helper call for every
 * function created) and more of it to the sidecar than to the floor.
 *
 * With `--baseline-bin`, a second sidecar started from another checkout's
 * `bin/llmmesh.js` runs in the same rounds (before / after a change);
 * compiled, it runs that checkout's `dist/cli/main.js`, which `npm run build`
 * in that checkout must have made first.
 * `BENCH_SIDECAR_NODE_OPTIONS` (e.g. `--cpu-prof --cpu-prof-dir=DIR`) applies
 * to the sidecar process, `BENCH_FLOOR_NODE_OPTIONS` to the floor's. `--cache` adds time to first token of a response
 * cache hit against a miss, through a sidecar with its cache on.
 *
 * Usage: npm run bench:sidecar-hop -- [--concurrency 64] [--tokens 32,256]
 *        [--rounds 3] [--tokens-per-phase 40960] [--itl-ms 10] [--ttft-ms 20]
 *        [--baseline-bin PATH] [--cache]
 *    or, from the sources: node --import tsx bench/sidecar-hop.ts [same options]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import { createEngineClient } from '../sidecar/engine-client.js';
import { portOf, reportedAddress } from './processes.js';
import { createSidecarClient, generate } from './sidecar-client.js';

const MODEL = 'llama-3-8b-chat';
const here = dirname(fileURLToPath(import.meta.url));
const fromSource = import.meta.url.endsWith('.ts');
/** This checkout (`here` is `bench/`, or `dist/bench/` when this file runs compiled). */
const ROOT = join(here, '..', fromSource ? '' : '..');
const BIN = join(ROOT, 'bin', 'llmmesh.js');
/**
 * Every process from the compiled `dist/` rather than the sources through
 * tsx: set by the npm script, which builds first; the compiled floor needs
 * no loader, so a compiled run of this file runs everything compiled too.
 */
const COMPILED = process.env.LLMMESH_BENCH_COMPILED === '1' || !fromSource;
/** Requests per path and round of the one-stream-at-a-time phase. */
const LONE_REQUESTS = 40;

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

function median(xs: number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
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

/**
 * Node arguments that run the `llmmesh` of the checkout whose
 * `bin/llmmesh.js` is `bin`, before the command's own arguments: that script
 * itself from the sources, or compiled its `dist/cli/main.js`'s `main`,
 * called (and its exit code kept) as that script calls it, in the process
 * itself, so the CPU time /proc reports for it is the command's own.
 */
function llmmeshArgs(bin: string): string[] {
  if (!COMPILED) return [bin];
  const tree = dirname(dirname(bin));
  const main = join(tree, 'dist', 'cli', 'main.js');
  if (!existsSync(main))
    throw new Error(
      `${tree}: no ${join('dist', 'cli', 'main.js')}; run \`npm run build\` in that checkout first`,
    );
  const entry =
    `const { main } = await import(${JSON.stringify(pathToFileURL(main).href)});` +
    'const code = await main(process.argv.slice(1));' +
    'process.exitCode = code;' +
    "process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));";
  return ['--input-type=module', '-e', entry, '--'];
}

/** The floor: `sse-passthrough.ts` through tsx, or compiled `dist/bench/sse-passthrough.js`. */
function floorArgs(): { args: string[]; nodeOptions: string[] } {
  if (!COMPILED) return { args: [join(here, 'sse-passthrough.ts')], nodeOptions: ['--import', 'tsx'] };
  const floor = join(ROOT, 'dist', 'bench', 'sse-passthrough.js');
  if (!existsSync(floor))
    throw new Error(
      `${ROOT}: no ${join('dist', 'bench', 'sse-passthrough.js')}; run \`npm run build\` first`,
    );
  return { args: [floor], nodeOptions: [] };
}

/** A process started on port 0, with the port it reported. */
type Launched = ChildProcess & { port: number };

/** Starts `args` under node (with `nodeOptions`), resolving once its output has the line `readyText` starts, with the port it names. */
function launch(
  name: string,
  args: string[],
  readyText: string,
  nodeOptions: string[] = [],
): Promise<Launched> {
  const proc = spawn(process.execPath, [...nodeOptions, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LLMMESH_LOG_LEVEL: 'warn' },
  });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const address = reportedAddress(out, readyText);
      if (address === undefined) return;
      try {
        resolve(Object.assign(proc, { port: portOf(address) }));
      } catch (err) {
        proc.kill();
        reject(err);
      }
    });
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    proc.once('exit', (code) => reject(new Error(`${name} exited with ${code}:\n${out}`)));
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

/** One path's figures in one round. */
interface Phase {
  path: string;
  tokens: number;
  round: number;
  n: number;
  chunks: number;
  ttftP50: number;
  ttftP99: number;
  totalP50: number;
  /** CPU of the proxy process (NaN for direct). */
  cpuMs: number;
  /** CPU of the simulator. */
  simCpuMs: number;
}

async function main() {
  const { values } = parseArgs({
    options: {
      concurrency: { type: 'string', default: '64' },
      tokens: { type: 'string', default: '32,256' },
      rounds: { type: 'string', default: '3' },
      'tokens-per-phase': { type: 'string', default: '40960' },
      'itl-ms': { type: 'string', default: '10' },
      'ttft-ms': { type: 'string', default: '20' },
      'baseline-bin': { type: 'string' },
      cache: { type: 'boolean', default: false },
    },
  });
  const concurrency = Number(values.concurrency);
  const tokenCounts = values.tokens.split(',').map(Number);
  const rounds = Number(values.rounds);
  const tokensPerPhase = Number(values['tokens-per-phase']);
  // A checkout without a build fails here, before anything starts.
  const floor = floorArgs();
  if (values['baseline-bin']) llmmeshArgs(values['baseline-bin']);
  const started = new Date().toISOString();
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const sim = await launch(
    'sim',
    [
      ...llmmeshArgs(BIN),
      'sim',
      '--port',
      '0',
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
  const engineUrl = `http://127.0.0.1:${sim.port}`;
  const procs: ChildProcess[] = [sim];
  const sidecarArgs = (bin: string, port: number, cache: boolean) => [
    ...llmmeshArgs(bin),
    'sidecar',
    '--engine-url',
    engineUrl,
    '--listen',
    `127.0.0.1:${port}`,
    '--admin',
    'off',
    '--model',
    MODEL,
    '--max-in-flight',
    '1024',
    '--response-cache',
    cache ? 'on' : 'off',
  ];
  const sidecarNodeOptions = (process.env.BENCH_SIDECAR_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
  const targets: Array<{ path: string; proc: ChildProcess; client: EngineClient }> = [];
  const addGrpc = async (path: string, start: (port: number) => Promise<Launched>) => {
    const proc = await start(0);
    procs.push(proc);
    targets.push({ path, proc, client: createSidecarClient(`127.0.0.1:${proc.port}`) });
  };
  const engine = createEngineClient({ url: engineUrl });
  try {
    await addGrpc('floor', (port) =>
      launch(
        'floor',
        [...floor.args, '--engine-url', engineUrl, '--listen', `127.0.0.1:${port}`, '--model', MODEL],
        'sse passthrough listening',
        [...floor.nodeOptions, ...(process.env.BENCH_FLOOR_NODE_OPTIONS ?? '').split(' ').filter(Boolean)],
      ),
    );
    await addGrpc('sidecar', (port) =>
      launch('sidecar', sidecarArgs(BIN, port, false), 'llmmesh sidecar listening', sidecarNodeOptions),
    );
    if (values['baseline-bin']) {
      const bin = values['baseline-bin'];
      await addGrpc('baseline', (port) =>
        launch('baseline sidecar', sidecarArgs(bin, port, false), 'llmmesh sidecar listening'),
      );
    }
    // Wait until every gRPC path serves (a sidecar's first probe).
    for (const t of targets) {
      for (;;) {
        try {
          await generate(t.client, { model: MODEL, prompt: 'warm up', sampling: { maxTokens: 1 } });
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }

    const direct = async (i: number, tag: string, maxTokens: number): Promise<Sample> => {
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
          return_token_ids: true,
        },
      })) {
        if (ttft < 0) ttft = performance.now() - t0;
        chunks++;
        void ev;
      }
      return { ttftMs: ttft, totalMs: performance.now() - t0, chunks };
    };
    const viaGrpc = async (
      client: EngineClient,
      i: number,
      tag: string,
      maxTokens: number,
      temperature = 0.7,
    ): Promise<Sample> => {
      const t0 = performance.now();
      let ttft = -1;
      const r = await generate(
        client,
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

    const paths: Array<{
      path: string;
      pid?: number;
      one: (i: number, tag: string, t: number) => Promise<Sample>;
    }> = [
      { path: 'direct', one: direct },
      ...targets.map((t) => ({
        path: t.path,
        pid: t.proc.pid,
        one: (i: number, tag: string, n: number) => viaGrpc(t.client, i, tag, n),
      })),
    ];

    // Warm every path (connection pools, JIT).
    for (const p of paths) await run(concurrency, concurrency * 4, (i) => p.one(i, `warm-${p.path}`, 32));

    const phases: Phase[] = [];
    // One stream at a time, short answers: time to first token without queueing behind other streams.
    const lone: Array<{ path: string; round: number; ttftP50: number; ttftP99: number }> = [];
    for (let round = 1; round <= rounds; round++) {
      for (let k = 0; k < paths.length; k++) {
        const p = paths[(k + round - 1) % paths.length] as (typeof paths)[number];
        const samples = await run(1, LONE_REQUESTS, (i) => p.one(i, `${p.path}-lone-r${round}`, 4));
        const ttft = samples.map((x) => x.ttftMs).sort((a, b) => a - b);
        lone.push({ path: p.path, round, ttftP50: percentile(ttft, 50), ttftP99: percentile(ttft, 99) });
      }
      for (const tokens of tokenCounts) {
        const requests = concurrency * Math.max(2, Math.round(tokensPerPhase / (concurrency * tokens)));
        // The order rotates from round to round, so no path always follows the same one.
        for (let k = 0; k < paths.length; k++) {
          const p = paths[(k + round - 1) % paths.length] as (typeof paths)[number];
          const cpu0 = cpuMs(p.pid);
          const sim0 = cpuMs(sim.pid);
          const samples = await run(concurrency, requests, (i) =>
            p.one(i, `${p.path}-r${round}-t${tokens}`, tokens),
          );
          const cpu = cpuMs(p.pid) - cpu0;
          const simCpu = cpuMs(sim.pid) - sim0;
          const ttft = samples.map((s) => s.ttftMs).sort((a, b) => a - b);
          const total = samples.map((s) => s.totalMs).sort((a, b) => a - b);
          phases.push({
            path: p.path,
            tokens,
            round,
            n: samples.length,
            chunks: samples.reduce((a, s) => a + s.chunks, 0),
            ttftP50: percentile(ttft, 50),
            ttftP99: percentile(ttft, 99),
            totalP50: percentile(total, 50),
            cpuMs: cpu,
            simCpuMs: simCpu,
          });
        }
      }
    }

    const f = (n: number, d = 1) => (Number.isNaN(n) ? '' : n.toFixed(d));
    console.log(
      `sidecar hop vs floor (${COMPILED ? 'compiled dist/' : 'sources through tsx'}): ` +
        `${concurrency} concurrent streams, ${rounds} interleaved rounds, ` +
        `sim ITL ${values['itl-ms']} ms, TTFT ${values['ttft-ms']} ms; started ${started}, load average ${load}`,
    );
    console.log('');
    console.log(
      '| tokens | round | path | requests | chunks | TTFT p50 ms | TTFT p99 ms | total p50 ms | CPU µs/request | CPU µs/chunk | sim CPU µs/chunk |',
    );
    console.log('| -: | -: | - | -: | -: | -: | -: | -: | -: | -: | -: |');
    for (const p of phases) {
      console.log(
        `| ${p.tokens} | ${p.round} | ${p.path} | ${p.n} | ${p.chunks} | ${f(p.ttftP50)} | ${f(p.ttftP99)} | ${f(p.totalP50)} | ` +
          `${f((1000 * p.cpuMs) / p.n, 0)} | ${f((1000 * p.cpuMs) / p.chunks)} | ${f((1000 * p.simCpuMs) / p.chunks)} |`,
      );
    }
    console.log('');
    const spread = (xs: number[], d = 2, unit = '') =>
      `${f(median(xs), d)}${unit} (${f(Math.min(...xs), d)}–${f(Math.max(...xs), d)})`;
    for (const tokens of tokenCounts) {
      const at = (path: string) =>
        phases.filter((p) => p.tokens === tokens && p.path === path).sort((a, b) => a.round - b.round);
      const d = at('direct');
      const fl = at('floor');
      for (const path of targets.map((t) => t.path).filter((x) => x !== 'floor')) {
        const s = at(path);
        const perChunk = (p: Phase) => (1000 * p.cpuMs) / p.chunks;
        const perReq = (p: Phase) => (1000 * p.cpuMs) / p.n;
        const ratio = s.map((x, i) => x.cpuMs / (fl[i] as Phase).cpuMs);
        console.log(
          `${tokens} tokens, ${path}: CPU µs/chunk ${spread(s.map(perChunk), 1)} vs floor ${spread(fl.map(perChunk), 1)}; ` +
            `µs/request ${spread(s.map(perReq), 0)} vs ${spread(fl.map(perReq), 0)}; ` +
            `CPU ratio to the floor, median (min–max) of ${rounds} rounds: ${spread(ratio, 2, '×')}`,
        );
        const added = (xs: Phase[], pick: (p: Phase) => number) =>
          xs.map((x, i) => pick(x) - pick(d[i] as Phase));
        console.log(
          `${tokens} tokens, TTFT added over direct, median (min–max): ${path} p50 ${spread(
            added(s, (p) => p.ttftP50),
            1,
            ' ms',
          )}, ` +
            `p99 ${spread(
              added(s, (p) => p.ttftP99),
              1,
              ' ms',
            )}; floor p50 ${spread(
              added(fl, (p) => p.ttftP50),
              1,
              ' ms',
            )}, ` +
            `p99 ${spread(
              added(fl, (p) => p.ttftP99),
              1,
              ' ms',
            )}`,
        );
      }
    }

    {
      const at = (path: string) => lone.filter((x) => x.path === path).sort((a, b) => a.round - b.round);
      const d = at('direct');
      const added = (path: string, pick: (x: (typeof lone)[number]) => number) =>
        at(path).map((x, i) => pick(x) - pick(d[i] as (typeof lone)[number]));
      console.log(
        `one stream at a time (${LONE_REQUESTS} requests of 4 tokens per path and round): direct TTFT p50 ` +
          `${spread(
            d.map((x) => x.ttftP50),
            1,
            ' ms',
          )}; added over direct, median (min–max): ` +
          targets
            .map(
              (t) =>
                `${t.path} p50 ${spread(
                  added(t.path, (x) => x.ttftP50),
                  2,
                  ' ms',
                )}, p99 ${spread(
                  added(t.path, (x) => x.ttftP99),
                  1,
                  ' ms',
                )}`,
            )
            .join('; '),
      );
    }

    if (values.cache) {
      // Response cache: misses (first time) and hits (second time), deterministic requests.
      const cached = await launch('cached sidecar', sidecarArgs(BIN, 0, true), 'llmmesh sidecar listening');
      procs.push(cached);
      const client = createSidecarClient(`127.0.0.1:${cached.port}`);
      targets.push({ path: 'cached', proc: cached, client });
      for (;;) {
        try {
          await generate(client, { model: MODEL, prompt: 'warm up', sampling: { maxTokens: 1 } });
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const summary = (samples: Sample[]) => {
        const ttft = samples.map((s) => s.ttftMs).sort((a, b) => a - b);
        const total = samples.map((s) => s.totalMs).sort((a, b) => a - b);
        return {
          ttftP50: percentile(ttft, 50),
          ttftP99: percentile(ttft, 99),
          totalP50: percentile(total, 50),
        };
      };
      for (const c of [1, concurrency]) {
        const n = Math.max(c * 4, 64);
        const miss = summary(await run(c, n, (i) => viaGrpc(client, i, `cache-c${c}`, 64, 0)));
        const hit = summary(await run(c, n, (i) => viaGrpc(client, i, `cache-c${c}`, 64, 0)));
        console.log(
          `response cache at concurrency ${c}: miss TTFT p50 ${f(miss.ttftP50, 2)} / p99 ${f(miss.ttftP99, 2)} ms, ` +
            `hit TTFT p50 ${f(hit.ttftP50, 2)} / p99 ${f(hit.ttftP99, 2)} ms; ` +
            `whole 64-token response: miss p50 ${f(miss.totalP50)} ms, hit p50 ${f(hit.totalP50, 2)} ms`,
        );
      }
    }
  } finally {
    for (const t of targets) t.client.close();
    engine.close();
    for (const p of procs.reverse()) p.kill('SIGTERM');
  }
}

await main();
