/**
 * The router of two commits side by side: CPU per request and added TTFT of
 * the router at an earlier commit (the baseline) and of this checkout, in
 * front of the same pod (one `llmmesh sim` with a fixed 20 ms decode step and
 * its sidecar, both from this checkout).
 *
 *     node --import tsx bench/compare-refs.ts [--baseline REF] [--after REF] [--concurrency 64]
 *       [--output-len 32] [--rounds 3] [--waves 4] [--endpoint sim|stub] [--json FILE]
 *
 * The baseline is checked out into a temporary git worktree (detached) with
 * its own `npm ci --offline` and build; each router runs in its own process
 * from its own tree's compiled `dist/` (`dist/bench/child.js`), as a
 * deployment runs it (this checkout, whose build the pass-through runs
 * from, is built first too): the sources run through tsx carry work of the
 * transform's own. `--after REF` measures another commit
 * than this checkout in the same way (a second temporary worktree). With `--endpoint stub` a synthetic
 * Engine server (first chunk at once, then one every 20 ms) replaces the pod,
 * so the engine's batching does not blur TTFT. Three contenders, direct to the
 * sidecar, the baseline router and this router, each get the same closed-loop
 * requests (workload `fixed`, one seed, the same request indices in a round),
 * in interleaved blocks whose order rotates each round; the first wave of a
 * block is warm-up. Per block: the router process's CPU time (from /proc) over
 * the requests it was sent, and TTFT p50/p99 minus the direct block's of the
 * same round. Reported: median and min–max over the rounds, and the ratio of
 * the two routers' CPU per request. The temporary worktree and every process
 * are removed at the end, on an error, on SIGINT/SIGTERM, or after
 * `--max-minutes` (default 30). Everything listens on loopback.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import { loadProtos } from '../common/proto.js';
import { runLoad } from './load-generator.js';
import { createProcessGroup, type HelperProcess, type ProcessGroup, processCpuSeconds } from './processes.js';
import { fmt } from './report.js';
import { benchRouterConfig } from './router-config.js';
import { readStream } from './scenarios/overhead.js';
import { startCostEndpoint } from './scenarios/pods.js';
import { type BenchTarget, createTargetClient } from './targets.js';
import { createWorkload } from './workloads.js';

const MODEL = 'llama-3-8b-chat';
const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');

/** What one contender measured in one block. */
interface Block {
  ttftP50: number;
  ttftP99: number;
  cpuMsPerRequest: number | undefined;
  errors: number;
}

/** Median and range of a series. */
function spread(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { median, min: s[0] as number, max: s[s.length - 1] as number };
}

const show = (xs: number[]) => {
  const { median, min, max } = spread(xs);
  return `${fmt(median)} (${fmt(min)} – ${fmt(max)})`;
};

function git(args: string[], cwd = repo): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
}

function run(cmd: string, args: string[], cwd: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], signal });
    let err = '';
    p.stderr.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    p.on('error', reject);
    p.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${err}`)),
    );
  });
}

const PASSTHROUGH = 'pass-through';
/** The coalescing engine's rate (tokens per ms per stream) and the slow reader's pattern, as in the overhead scenario. */
const TOKENS_PER_MS = 4;
const SLOW = { burst: 16, pauseMs: 10 };

/** A synthetic engine generating at a fixed rate whether read or not (coalescing). */
async function startRateEngine(group: ProcessGroup): Promise<string> {
  const engine = await group.helper('fake-engine', {
    model: MODEL,
    version: 'v1',
    tokensPerMs: TOKENS_PER_MS,
  });
  return (engine.info.addresses as string[])[0] as string;
}

/**
 * Coalescing side by side: per round and proxy (order rotating), `streams`
 * streams of `tokens` tokens at once, read slowly (all, or every other one);
 * tokens per proxy CPU-second and messages received.
 */
async function compareReaders(o: {
  readers: 'slow' | 'half';
  streams: number;
  tokens: number;
  rounds: number;
  load: string[];
  proxies: Map<string, HelperProcess>;
  signal: AbortSignal;
  log: (line: string) => void;
  json: string | undefined;
  shas: { baseline: string; current: string };
}): Promise<void> {
  const protos = loadProtos();
  const clients = new Map(
    [...o.proxies].map(([name, proc]) => {
      const address = String(proc.info.address);
      const insecure = grpc.credentials.createInsecure();
      return [
        name,
        name === PASSTHROUGH
          ? new protos.engine.Engine(address, insecure)
          : new protos.inference.Inference(address, insecure),
      ] as const;
    }),
  );
  type Streaming = { GenerateStream(r: unknown): grpc.ClientReadableStream<GenerateChunk__Output> };
  const block = async (name: string, tokens: number) => {
    const proc = o.proxies.get(name) as HelperProcess;
    const client = clients.get(name) as unknown as Streaming;
    const before = proc.cpuSeconds() ?? 0;
    const results = await Promise.all(
      Array.from({ length: o.streams }, (_, i) => {
        const call = client.GenerateStream({
          model: MODEL,
          prompt: `coalescing ${i}`,
          sampling: { maxTokens: tokens },
        });
        const slow = o.readers === 'slow' || i % 2 === 0;
        return readStream(call, slow ? SLOW : undefined);
      }),
    );
    const cpu = (proc.cpuSeconds() ?? 0) - before;
    return {
      cpu,
      tokens: results.reduce((a, r) => a + r.tokens, 0),
      messages: results.reduce((a, r) => a + r.messages, 0),
      incomplete: results.filter((r) => !r.ok || r.tokens !== tokens).length,
    };
  };
  try {
    const names = [...o.proxies.keys()];
    // Warm-up, not measured: JIT and connections.
    for (const name of names) await block(name, 1024);
    const perCpu = new Map<string, number[]>(names.map((n) => [n, []]));
    const messages = new Map<string, number[]>(names.map((n) => [n, []]));
    let incomplete = 0;
    for (let round = 0; round < o.rounds; round++) {
      const order = names.map((_, i) => names[(i + round) % names.length] as string);
      for (const name of order) {
        if (o.signal.aborted) throw new Error('stopped (signal or --max-minutes)');
        const b = await block(name, o.tokens);
        incomplete += b.incomplete;
        perCpu.get(name)?.push(b.tokens / b.cpu);
        messages.get(name)?.push(b.messages);
        o.log(
          `round ${round + 1} ${name}: ${b.messages} messages for ${b.tokens} tokens, ${fmt(b.tokens / b.cpu)} tokens per CPU-second` +
            (b.incomplete ? `, ${b.incomplete} streams incomplete` : ''),
        );
      }
    }
    const floor = perCpu.get(PASSTHROUGH) as number[];
    const header = `${o.readers === 'slow' ? 'slow readers' : 'half slow, half fast readers'}: ${o.streams} streams of ${o.tokens} tokens at ${TOKENS_PER_MS} tokens/ms each, ${o.rounds} rounds, load average at start ${o.load.join(' / ')}`;
    const lines = [
      header,
      '',
      '| proxy | messages received | tokens per CPU-second | ÷ pass-through, per round |',
      '| ----- | ----------------: | --------------------: | ------------------------: |',
      ...names.map((name) => {
        const t = perCpu.get(name) as number[];
        const ratio = name === PASSTHROUGH ? '' : show(t.map((x, i) => x / (floor[i] as number)));
        return `| ${name} | ${show(messages.get(name) as number[])} | ${show(t)} | ${ratio} |`;
      }),
      '',
      `Median (min – max) over the rounds; ${incomplete} streams incomplete.`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (o.json) {
      const out = {
        ...o.shas,
        header,
        perCpu: Object.fromEntries(perCpu),
        messages: Object.fromEntries(messages),
      };
      await writeFile(o.json, JSON.stringify(out, null, 2));
    }
  } finally {
    for (const c of clients.values()) c.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      baseline: { type: 'string', default: '74df31e' },
      after: { type: 'string' },
      concurrency: { type: 'string', default: '64' },
      'output-len': { type: 'string', default: '32' },
      'prompt-len': { type: 'string', default: '128' },
      rounds: { type: 'string', default: '3' },
      waves: { type: 'string', default: '4' },
      'max-minutes': { type: 'string', default: '30' },
      endpoint: { type: 'string', default: 'sim' },
      readers: { type: 'string' },
      json: { type: 'string' },
    },
  });
  const concurrency = Number(values.concurrency);
  const rounds = Number(values.rounds);
  const waves = Number(values.waves);
  const outputLen = Number(values['output-len']);
  const baselineRef = String(values.baseline);
  const baselineSha = git(['rev-parse', '--short', `${baselineRef}^{commit}`]);
  // Uncommitted changes to what the router runs on show in its label.
  const runtime = ['router', 'common', 'proto', 'bench/child.ts', 'package-lock.json'];
  const currentSha = values.after
    ? git(['rev-parse', '--short', `${values.after}^{commit}`])
    : git(['rev-parse', '--short', 'HEAD']) +
      (git(['status', '--porcelain', '--', ...runtime]) ? '+changes' : '');

  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const deadline = setTimeout(() => abort.abort(), Number(values['max-minutes']) * 60_000);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const load = loadavg().map((l) => l.toFixed(2));

  const trees: string[] = [];
  const checkout = async (sha: string): Promise<string> => {
    const tree = mkdtempSync(join(tmpdir(), 'llmmesh-ref-'));
    trees.push(tree);
    log(`compare-refs: checking out ${sha} into a temporary worktree`);
    git(['worktree', 'add', '--detach', tree, sha]);
    await run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], tree, abort.signal);
    await run('npm', ['run', 'build'], tree, abort.signal);
    return tree;
  };
  const group = createProcessGroup(false);
  const clients: Array<{ close(): void }> = [];
  try {
    const baselineTree = await checkout(baselineSha);
    const afterTree = values.after ? await checkout(currentSha) : undefined;
    // The pass-through (and, without --after, the after router) runs from this checkout's build.
    log('compare-refs: building this checkout');
    await run('npm', ['run', 'build'], repo, abort.signal);
    const compiled = { compiled: true };

    const readers = values.readers;
    if (readers !== undefined && readers !== 'slow' && readers !== 'half')
      throw new Error(`--readers is slow or half, not "${readers}"`);
    log(
      `compare-refs: starting the ${readers ? 'rate' : values.endpoint} endpoint, the pass-through and both routers`,
    );
    const endpoint = readers
      ? await startRateEngine(group)
      : await startCostEndpoint(group, String(values.endpoint), { model: MODEL, itlMs: 20 });
    const config = benchRouterConfig(MODEL, [endpoint]);
    const routers = new Map<string, HelperProcess>([
      [
        `before (${baselineSha})`,
        await group.helper('router', { config }, { root: baselineTree, ...compiled }),
      ],
      [`after (${currentSha})`, await group.helper('router', { config }, { root: afterTree, ...compiled })],
    ]);
    for (const r of routers.values()) await r.request('wait-ready', { n: 1 });
    const passthrough = await group.helper(
      'passthrough',
      { listen: '127.0.0.1:0', upstream: endpoint },
      compiled,
    );
    if (readers) {
      await compareReaders({
        readers,
        streams: concurrency,
        tokens: outputLen,
        rounds,
        load,
        proxies: new Map([[PASSTHROUGH, passthrough], ...routers]),
        signal: abort.signal,
        log,
        json: values.json,
        shas: { baseline: baselineSha, current: currentSha },
      });
      return;
    }
    const measured = new Map<string, HelperProcess>([[PASSTHROUGH, passthrough], ...routers]);
    const targets: BenchTarget[] = [
      { name: 'direct', kind: 'engine', address: endpoint },
      { name: PASSTHROUGH, kind: 'engine', address: String(passthrough.info.address) },
      ...[...routers].map(([name, r]) => ({
        name,
        kind: 'inference' as const,
        address: String(r.info.address),
      })),
    ];
    const byName = new Map(targets.map((t) => [t.name, createTargetClient(t)]));
    clients.push(...byName.values());
    for (const c of byName.values()) await c.waitForReady(10_000);

    const workload = createWorkload('fixed', {
      seed: 7,
      params: { promptLen: Number(values['prompt-len']), outputLen },
    });
    const perBlock = concurrency * (waves + 1);
    const blocks = new Map<string, Block[]>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < rounds; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length] as BenchTarget);
      for (const target of order) {
        if (abort.signal.aborted) throw new Error('stopped (signal or --max-minutes)');
        const pid = measured.get(target.name)?.pid;
        const cpuBefore = pid === undefined ? undefined : processCpuSeconds(pid);
        const result = await runLoad({
          target,
          client: byName.get(target.name),
          model: MODEL,
          workload,
          mode: { kind: 'closed', concurrency },
          requests: concurrency * waves,
          warmupRequests: concurrency,
          // The same requests for every contender of a round.
          startIndex: round * perBlock,
          signal: abort.signal,
        });
        const cpuAfter = pid === undefined ? undefined : processCpuSeconds(pid);
        const cpu =
          cpuBefore === undefined || cpuAfter === undefined
            ? undefined
            : ((cpuAfter - cpuBefore) * 1000) / result.sent;
        const s = result.stats;
        blocks.get(target.name)?.push({
          ttftP50: s.ttft.p50,
          ttftP99: s.ttft.p99,
          cpuMsPerRequest: cpu,
          errors: s.requests - s.ok,
        });
        log(
          `round ${round + 1} ${target.name}: TTFT p50 ${fmt(s.ttft.p50)} ms, p99 ${fmt(s.ttft.p99)} ms` +
            (cpu === undefined ? '' : `, CPU ${fmt(cpu)} ms/request`) +
            (s.requests - s.ok ? `, ${s.requests - s.ok} errors` : ''),
        );
      }
    }

    const direct = blocks.get('direct') as Block[];
    const names = [PASSTHROUGH, ...routers.keys()];
    const rows = names.map((name) => {
      const bs = blocks.get(name) as Block[];
      return {
        router: name,
        cpuMsPerRequest: bs.map((b) => b.cpuMsPerRequest ?? Number.NaN),
        addedTtftP50: bs.map((b, i) => b.ttftP50 - (direct[i] as Block).ttftP50),
        addedTtftP99: bs.map((b, i) => b.ttftP99 - (direct[i] as Block).ttftP99),
        errors: bs.reduce((a, b) => a + b.errors, 0),
      };
    });
    const [floor, before, after] = rows as [(typeof rows)[0], (typeof rows)[0], (typeof rows)[0]];
    const cpuRatio = after.cpuMsPerRequest.map((a, i) => a / (before.cpuMsPerRequest[i] as number));
    const overFloor = (r: (typeof rows)[0]) =>
      r.cpuMsPerRequest.map((a, i) => a / (floor.cpuMsPerRequest[i] as number));
    const addedOverFloor = (r: (typeof rows)[0], q: 'addedTtftP50' | 'addedTtftP99') =>
      r[q].map((a, i) => a - (floor[q][i] as number));
    const header = `${values.endpoint} endpoint, ${concurrency} concurrent streams of ${outputLen} tokens (prompt ${values['prompt-len']}), ${rounds} rounds × ${waves} waves (+1 warm-up wave), load average at start ${load.join(' / ')}`;
    const lines = [
      header,
      '',
      '| proxy | CPU ms/request | ÷ pass-through, per round | added TTFT p50 ms | added TTFT p99 ms | over the pass-through: p50 / p99 ms | errors |',
      '| ----- | -------------: | ------------------------: | ----------------: | ----------------: | ------------------------------------: | -----: |',
      ...rows.map(
        (r) =>
          `| ${r.router} | ${show(r.cpuMsPerRequest)} | ${r === floor ? '' : show(overFloor(r))} | ${show(r.addedTtftP50)} | ${show(r.addedTtftP99)} | ${r === floor ? '' : `${show(addedOverFloor(r, 'addedTtftP50'))} / ${show(addedOverFloor(r, 'addedTtftP99'))}`} | ${r.errors} |`,
      ),
      '',
      `CPU per request, after / before, per round: ${show(cpuRatio)}; direct TTFT p50 ${show(direct.map((b) => b.ttftP50))} ms, p99 ${show(direct.map((b) => b.ttftP99))} ms.`,
      'Median (min – max) over the rounds; "added" is the proxy block minus the direct block of the same round, "over the pass-through" the router\'s added TTFT minus the pass-through\'s of the same round.',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (values.json) {
      await writeFile(
        values.json,
        JSON.stringify(
          {
            baseline: baselineSha,
            current: currentSha,
            header,
            rows,
            cpuRatio,
            overPassthrough: { before: overFloor(before), after: overFloor(after) },
            direct,
          },
          null,
          2,
        ),
      );
    }
  } finally {
    clearTimeout(deadline);
    for (const c of clients) c.close();
    await group.stopAll();
    for (const tree of trees) {
      try {
        git(['worktree', 'remove', '--force', tree]);
      } catch {
        rmSync(tree, { recursive: true, force: true });
        git(['worktree', 'prune']);
      }
    }
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`compare-refs: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
