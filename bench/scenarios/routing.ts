/**
 * routing: does the router's endpoint picking beat what Kubernetes gives for
 * free (round robin behind a Service)? A mesh of simulated pods (a calibrated
 * preset) takes the shared-prefix workload at rising request rates, once per
 * scheduling profile named in `routing.yaml`. Reported per rate: TTFT p90,
 * output tokens/s, the engines' prefix-cache hit rate (from their
 * `vllm:prefix_cache_hits_total` / `queries_total`), and errors or sheds.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { runLoad } from '../load-generator.js';
import { createProcessGroup } from '../processes.js';
import {
  type BenchReport,
  createReport,
  errorsLabel,
  fmt,
  type ReportTable,
  type RunReport,
  runReport,
} from '../report.js';
import { createWorkload } from '../workloads.js';
import type { ScenarioContext } from './context.js';
import { type BenchPod, prefixCacheCounters, startPods } from './pods.js';

/** The scenario's settings (`routing.yaml`). */
export interface RoutingConfig {
  model: string;
  pods: number;
  sim: { preset: string; time_scale: number; max_model_len: number; num_gpu_blocks_override?: number };
  workload: {
    groups: number;
    prompts_per_group: number;
    system_prompt_len: number;
    question_len: number;
    output_len: number;
    seed: number;
  };
  rates: number[];
  seconds_per_rate: number;
  warmup_seconds: number;
  /** Warm-up of each profile's first rate (its caches start cold). */
  warmup_seconds_first?: number;
  ttft_p90_slo_ms: number;
  /** Per-request deadline (wall ms). */
  timeout_ms?: number;
  /** Profile name → router profile config; null = the router's built-in profile of that name. */
  profiles: Record<string, Record<string, unknown> | null>;
  quick: {
    pods: number;
    rates: number[];
    seconds_per_rate: number;
    warmup_seconds: number;
    groups: number;
    system_prompt_len: number;
  };
}

/** Path of the default settings file. */
export const ROUTING_CONFIG_PATH = join(dirname(fileURLToPath(import.meta.url)), 'routing.yaml');

/** Reads the settings, applying the `quick` overrides when asked. */
export function loadRoutingConfig(path = ROUTING_CONFIG_PATH, quick = false): RoutingConfig {
  const c = parse(readFileSync(path, 'utf8')) as RoutingConfig;
  if (!quick) return c;
  return {
    ...c,
    pods: c.quick.pods,
    rates: c.quick.rates,
    seconds_per_rate: c.quick.seconds_per_rate,
    warmup_seconds: c.quick.warmup_seconds,
    warmup_seconds_first: c.quick.warmup_seconds,
    workload: { ...c.workload, groups: c.quick.groups, system_prompt_len: c.quick.system_prompt_len },
  };
}

/** Runs the routing scenario. */
export async function runRouting(ctx: ScenarioContext): Promise<BenchReport> {
  const cfg = loadRoutingConfig(ctx.configPath ?? ROUTING_CONFIG_PATH, ctx.quick);
  const report = createReport('Routing: scheduling profiles on the shared-prefix workload', ctx.command);
  const w = cfg.workload;
  const profiles = Object.keys(cfg.profiles);
  report.notes.push(
    `${cfg.pods} pods, each llmmesh sim --preset ${cfg.sim.preset} --time-scale ${cfg.sim.time_scale}${cfg.sim.num_gpu_blocks_override ? ` --num-gpu-blocks-override ${cfg.sim.num_gpu_blocks_override}` : ''} (every simulated delay ×${cfg.sim.time_scale}: rates and tokens/s below are wall-clock, 1/${cfg.sim.time_scale} of what the preset's GPU would do; latencies ×${cfg.sim.time_scale}) with its sidecar, and one router, all separate processes on the same 2 cores. ` +
      `Workload shared-prefix: ${w.groups} groups × ${w.prompts_per_group} prompts, system prompt ${w.system_prompt_len} tokens, question ${w.question_len}, output ${w.output_len}, Poisson arrivals at ${cfg.rates.join(', ')} req/s, ${cfg.seconds_per_rate} s per rate after ${cfg.warmup_seconds} s of warm-up (${cfg.warmup_seconds_first ?? cfg.warmup_seconds} s for a profile's first rate); throughputs count what arrived inside the window. ` +
      `Profiles ${profiles.join(', ')} run one after another on the same pods, each with its own seed (its own system prompts), so no profile starts with another's cache contents.`,
  );
  const group = createProcessGroup(false);
  const cpu = { routers: 0, sims: 0, sidecars: 0, client: 0, wallS: 0 };
  const started = performance.now();
  const clientCpu0 = process.cpuUsage();
  const tableRows: Array<Array<string | number>> = [];
  const byProfile = new Map<string, RunReport[]>();
  try {
    ctx.log(`routing: starting ${cfg.pods} pods (${cfg.sim.preset})`);
    const pods = await startPods(group, {
      count: cfg.pods,
      model: cfg.model,
      version: 'v1',
      simArgs: [
        '--preset',
        cfg.sim.preset,
        '--time-scale',
        String(cfg.sim.time_scale),
        '--max-model-len',
        String(cfg.sim.max_model_len),
        ...(cfg.sim.num_gpu_blocks_override
          ? ['--num-gpu-blocks-override', String(cfg.sim.num_gpu_blocks_override)]
          : []),
      ],
    });
    for (const [p, profileName] of profiles.entries()) {
      const profileConfig = cfg.profiles[profileName];
      const router = await group.helper('router', {
        config: {
          listen: '127.0.0.1:0',
          admin: '127.0.0.1:0',
          discovery: { kind: 'static', endpoints: pods.map((pod) => pod.sidecarAddress) },
          models: { [cfg.model]: { versions: { v1: { weight: 1 } }, profile: profileName } },
          ...(profileConfig ? { profiles: { [profileName]: profileConfig } } : {}),
        },
      });
      await router.request('wait-ready', { n: pods.length });
      const workload = createWorkload('shared-prefix', {
        seed: w.seed + p,
        params: {
          groups: w.groups,
          promptsPerGroup: w.prompts_per_group,
          systemPromptLen: w.system_prompt_len,
          questionLen: w.question_len,
          outputLen: w.output_len,
        },
      });
      const target = { name: profileName, kind: 'inference' as const, address: String(router.info.address) };
      let index = 0;
      for (const rate of cfg.rates) {
        if (ctx.signal.aborted) throw new Error('aborted');
        const before = await cacheCounters(pods);
        const result = await runLoad({
          target,
          model: cfg.model,
          workload,
          mode: { kind: 'open', ratePerS: rate },
          durationMs: cfg.seconds_per_rate * 1000,
          warmupMs:
            (index === 0 ? (cfg.warmup_seconds_first ?? cfg.warmup_seconds) : cfg.warmup_seconds) * 1000,
          startIndex: index,
          seed: w.seed + p,
          timeoutMs: cfg.timeout_ms ?? 60_000,
          signal: ctx.signal,
          onProgress: ctx.onProgress
            ? (pr) => ctx.onProgress?.(`${profileName} rate ${rate}/s`, pr)
            : undefined,
        });
        index = result.nextIndex;
        const after = await cacheCounters(pods);
        const hitRate =
          after.queries > before.queries ? (after.hits - before.hits) / (after.queries - before.queries) : 0;
        const spread = Object.values(result.endpoints);
        const run = runReport('routing', profileName, result, {
          'engine prefix hit %': hitRate * 100,
          'busiest pod share %': spread.length > 0 ? (Math.max(...spread) / result.stats.ok) * 100 : 0,
        });
        report.runs.push(run);
        byProfile.set(profileName, [...(byProfile.get(profileName) ?? []), run]);
        tableRows.push([
          profileName,
          rate,
          fmt(result.stats.requestsPerS),
          fmt(result.stats.outputTokensPerS),
          fmt(result.stats.ttft.p50),
          fmt(result.stats.ttft.p90),
          `${fmt(hitRate * 100)} %`,
          errorsLabel(result.stats),
        ]);
        ctx.log(
          `routing ${profileName} rate ${rate}/s: ${fmt(result.stats.outputTokensPerS)} tok/s, TTFT p90 ${fmt(result.stats.ttft.p90)} ms, engine prefix hits ${fmt(hitRate * 100)} %, errors ${errorsLabel(result.stats)}`,
        );
      }
      cpu.routers += router.cpuSeconds() ?? 0;
      await router.stop();
    }
    for (const pod of pods) {
      cpu.sims += pod.sim.cpuSeconds() ?? 0;
      cpu.sidecars += pod.sidecar.cpuSeconds() ?? 0;
    }
    const c = process.cpuUsage(clientCpu0);
    cpu.client = (c.user + c.system) / 1e6;
    cpu.wallS = (performance.now() - started) / 1000;
    report.notes.push(
      `CPU used over the ${fmt(cpu.wallS)} s run: simulators ${fmt(cpu.sims)} s, sidecars ${fmt(cpu.sidecars)} s, routers ${fmt(cpu.routers)} s, load generator ${fmt(cpu.client)} s (2 cores = ${fmt(2 * cpu.wallS)} CPU-s, shared with other work on the machine).`,
    );
  } finally {
    await group.stopAll();
  }
  report.tables.push({
    title: 'Per profile and rate',
    columns: [
      'profile',
      'offered req/s',
      'ok req/s',
      'out tok/s',
      'TTFT p50 ms',
      'TTFT p90 ms',
      'engine prefix hits',
      'errors',
    ],
    rows: tableRows,
  });
  report.tables.push(comparison(byProfile, cfg));
  return report;
}

/** Headline comparison: throughput within the TTFT p90 budget, and TTFT p90 where round robin saturates. */
function comparison(byProfile: Map<string, RunReport[]>, cfg: RoutingConfig): ReportTable {
  const rate = (r: RunReport) => (r.mode.kind === 'open' ? r.mode.ratePerS : 0);
  const rr = byProfile.get('round-robin') ?? [];
  // Round robin saturates at the first rate whose TTFT p90 exceeds the budget (its queues grow without bound from there).
  const saturation = rr.find((r) => r.stats.ttft.p90 > cfg.ttft_p90_slo_ms || r.stats.ok === 0);
  const rows = [...byProfile].map(([name, runs]) => {
    const within = runs.filter((r) => r.stats.ttft.p90 <= cfg.ttft_p90_slo_ms);
    const best = within.reduce<RunReport | undefined>(
      (a, r) => (!a || r.stats.outputTokensPerS > a.stats.outputTokensPerS ? r : a),
      undefined,
    );
    const atSat = saturation ? runs.find((r) => rate(r) === rate(saturation)) : undefined;
    const errors = runs.reduce((a, r) => a + Object.values(r.stats.errors).reduce((x, y) => x + y, 0), 0);
    return [
      name,
      best ? fmt(best.stats.outputTokensPerS) : '—',
      best ? rate(best) : '—',
      atSat ? fmt(atSat.stats.ttft.p90) : '—',
      errors,
    ];
  });
  const rrBest = Number(String(rows.find((r) => r[0] === 'round-robin')?.[1] ?? '0').replace(/,/g, ''));
  return {
    title: `Headline: output tokens/s within TTFT p90 ≤ ${cfg.ttft_p90_slo_ms} ms, and TTFT p90 where round robin saturates`,
    columns: [
      'profile',
      'best out tok/s within budget',
      'at rate',
      `TTFT p90 ms at ${saturation ? `${rate(saturation)} req/s` : 'round-robin saturation (not reached)'}`,
      'errors (all rates)',
      'vs round-robin',
    ],
    rows: rows.map((r) => {
      const v = Number(String(r[1]).replace(/,/g, ''));
      return [...r, rrBest > 0 && Number.isFinite(v) ? `${fmt(v / rrBest)}×` : '—'];
    }),
    note: 'Last column: throughput within the budget relative to round-robin. Targets: prefix + load (default) ≥ 2× round-robin, and a TTFT p90 ≥ 10× lower at the rate where round robin saturates, with no more errors.',
  };
}

async function cacheCounters(pods: BenchPod[]): Promise<{ hits: number; queries: number }> {
  const all = await Promise.all(pods.map((p) => prefixCacheCounters(p.simUrl)));
  return all.reduce((a, b) => ({ hits: a.hits + b.hits, queries: a.queries + b.queries }), {
    hits: 0,
    queries: 0,
  });
}
