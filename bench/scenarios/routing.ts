/**
 * routing: does the router's endpoint picking beat what Kubernetes gives for
 * free (round robin behind a Service) and the obvious load balancer (least
 * requests)? Each scenario of `routing.yaml` runs on the virtual mesh
 * (bench/routing-mesh.ts: the router's real scheduling profiles over
 * simulated vLLM engines of a calibrated preset, on a discrete-event clock).
 *
 * Method, per scenario:
 * - one arrival sequence per repeat (seed + repeat), the same for every
 *   profile: a unit-rate Poisson sequence scaled by the offered rate, with
 *   request i's content fixed by the seed and i;
 * - profiles interleaved (their order rotates every repeat) and repeated;
 * - for each profile and repeat, a rate sweep finds the knee: rates rise by
 *   `rate_step` until TTFT p90 exceeds the SLO (or more than 1 % fail), then
 *   two bisection steps between the last good and the first bad rate;
 *   goodput is the completed requests/s of the best rate that met the SLO;
 * - at the rate where round robin first missed the SLO, every profile runs
 *   once more per repeat, for TTFT p90 side by side.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { createRandom, deriveSeed } from '../../common/random.js';
import { DEFAULT_PROFILE, type ProfileConfig } from '../../router/config/schema.js';
import { getPreset, type SimPreset } from '../../sim/presets.js';
import { type BenchReport, createReport, fmt, type ReportTable } from '../report.js';
import { type MeshOutcome, runMesh } from '../routing-mesh.js';
import { type RoutingScenario, scenarioRequests } from '../routing-workloads.js';
import type { ScenarioContext } from './context.js';

/** The benchmark's settings (`routing.yaml`). */
export interface RoutingConfig {
  preset: string;
  seed: number;
  repeats: number;
  /** TTFT p90 objective (simulated ms); goodput counts rates that meet it. */
  ttft_p90_slo_ms: number;
  /** A request unfinished this long after arriving fails (DEADLINE_EXCEEDED). */
  timeout_ms: number;
  /** Bisection steps after the sweep passed the knee. */
  bisect_steps: number;
  /** Profile name → profile config; null = the router's built-in default; `oracle` = the clairvoyant reference (bench/routing-oracle.ts). */
  profiles: Record<string, Partial<ProfileConfig> | null | 'oracle'>;
  scenarios: RoutingScenario[];
  quick: { repeats: number; scenarios: string[]; measure_s: number; warmup_s: number; bisect_steps: number };
}

/** Path of the default settings file. */
export const ROUTING_CONFIG_PATH = join(dirname(fileURLToPath(import.meta.url)), 'routing.yaml');

/** Reads the settings, applying the `quick` overrides when asked. */
export function loadRoutingConfig(path = ROUTING_CONFIG_PATH, quick = false): RoutingConfig {
  const c = parse(readFileSync(path, 'utf8')) as RoutingConfig;
  if (!quick) return c;
  return {
    ...c,
    repeats: c.quick.repeats,
    bisect_steps: c.quick.bisect_steps,
    scenarios: c.scenarios
      .filter((s) => c.quick.scenarios.includes(s.name))
      .map((s) => ({ ...s, measure_s: c.quick.measure_s, warmup_s: c.quick.warmup_s })),
  };
}

/** A profile config with the schema's defaults filled in. */
export function profileConfig(p: Partial<ProfileConfig> | null | 'oracle'): ProfileConfig | 'oracle' {
  if (p === 'oracle') return p;
  if (!p) return DEFAULT_PROFILE;
  return {
    filters: p.filters ?? DEFAULT_PROFILE.filters,
    scorers: (p.scorers ?? DEFAULT_PROFILE.scorers).map((s) => ({ type: s.type, weight: s.weight ?? 1 })),
    picker: p.picker ?? 'max-score',
  };
}

/** What one (scenario, profile, seed, rate) run measured over its measurement window. */
export interface CellResult {
  rate: number;
  offered: number;
  ok: number;
  failed: number;
  /** Completed requests per simulated second. */
  goodput: number;
  ttftP50: number;
  /** Failed requests count as infinitely slow. */
  ttftP90: number;
  ttftP99: number;
  /** Prompt tokens found in the engines' prefix caches. */
  hitRate: number;
  /** Requests of the busiest pod over the mean per pod. */
  busiestShare: number;
  pass: boolean;
}

const quantile = (sorted: readonly number[], q: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);

/** Runs one cell. */
export function runCell(
  s: RoutingScenario,
  preset: SimPreset,
  profile: ProfileConfig | 'oracle',
  seed: number,
  rate: number,
  cfg: Pick<RoutingConfig, 'ttft_p90_slo_ms' | 'timeout_ms'>,
): CellResult {
  const requests = scenarioRequests(s, seed, rate);
  const result = runMesh({
    pods: s.pods,
    preset,
    numGpuBlocks: s.num_gpu_blocks,
    profile,
    random: createRandom(deriveSeed(seed, 3)),
    requests,
    timeoutMs: cfg.timeout_ms,
  });
  const from = s.warmup_s * 1000;
  const to = (s.warmup_s + s.measure_s) * 1000;
  const window: MeshOutcome[] = [];
  requests.forEach((r, i) => {
    if (r.arrivalMs >= from && r.arrivalMs < to) window.push(result.outcomes[i] as MeshOutcome);
  });
  const ok = window.filter((o) => o.status === 'ok');
  const ttfts = window
    .map((o) => (o.status === 'ok' ? o.ttftMs : Number.POSITIVE_INFINITY))
    .sort((a, b) => a - b);
  const perPod = new Array<number>(s.pods).fill(0);
  for (const o of window) if (o.pod >= 0) perPod[o.pod] = (perPod[o.pod] as number) + 1;
  const prompt = window.reduce((a, o) => a + o.promptTokens, 0);
  const cached = window.reduce((a, o) => a + o.cachedTokens, 0);
  const failed = window.length - ok.length;
  const p90 = quantile(ttfts, 0.9);
  return {
    rate,
    offered: window.length,
    ok: ok.length,
    failed,
    goodput: ok.length / s.measure_s,
    ttftP50: quantile(ttfts, 0.5),
    ttftP90: p90,
    ttftP99: quantile(ttfts, 0.99),
    hitRate: prompt > 0 ? cached / prompt : 0,
    busiestShare: window.length > 0 ? Math.max(...perPod) / (window.length / s.pods) : 0,
    pass: p90 <= cfg.ttft_p90_slo_ms && failed <= 0.01 * window.length,
  };
}

/** A profile's knee on one seed: the best passing cell and every cell run. */
export interface KneeResult {
  best: CellResult | undefined;
  /** The first rate that missed the SLO. */
  firstFail: number | undefined;
  cells: CellResult[];
}

/** Sweeps rates up from the scenario's start until the SLO is missed, then bisects. */
export function findKnee(
  s: RoutingScenario,
  preset: SimPreset,
  profile: ProfileConfig | 'oracle',
  seed: number,
  cfg: Pick<RoutingConfig, 'ttft_p90_slo_ms' | 'timeout_ms' | 'bisect_steps'>,
): KneeResult {
  const cells: CellResult[] = [];
  const run = (rate: number) => {
    const c = runCell(s, preset, profile, seed, Math.round(rate * 100) / 100, cfg);
    cells.push(c);
    return c;
  };
  let good: CellResult | undefined;
  let bad: CellResult | undefined;
  let rate = s.start_rate;
  for (let i = 0; i < 30; i++) {
    const c = run(rate);
    if (c.pass) {
      good = c;
      if (bad) break;
      rate *= s.rate_step;
    } else {
      bad = c;
      if (good) break;
      rate /= s.rate_step;
      if (rate < s.start_rate / 16) break;
    }
  }
  for (let i = 0; good && bad && i < cfg.bisect_steps; i++) {
    const c = run(Math.sqrt(good.rate * bad.rate));
    if (c.pass) good = c;
    else bad = c;
  }
  const best = cells
    .filter((c) => c.pass)
    .reduce<CellResult | undefined>((a, c) => (!a || c.goodput > a.goodput ? c : a), undefined);
  return { best, firstFail: bad?.rate, cells };
}

/** A repeat whose goodput is below this share of the other repeats' median counts as collapsed. */
const COLLAPSE_SHARE = 0.8;

const median = (v: readonly number[]) => {
  if (v.length === 0) return Number.NaN;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const spread = (v: readonly number[]) =>
  v.length === 0 ? '—' : `${fmt(median(v))} (${fmt(Math.min(...v))}–${fmt(Math.max(...v))})`;

/** Runs the routing scenario. */
export async function runRouting(ctx: ScenarioContext): Promise<BenchReport> {
  const cfg = loadRoutingConfig(ctx.configPath ?? ROUTING_CONFIG_PATH, ctx.quick);
  const preset = getPreset(cfg.preset);
  const report = createReport('Routing: scheduling profiles on the virtual mesh', ctx.command);
  const names = Object.keys(cfg.profiles);
  const profiles = new Map(names.map((n) => [n, profileConfig(cfg.profiles[n] ?? null)]));
  const kvTokens = (s: RoutingScenario) => (s.num_gpu_blocks ?? Math.floor(preset.kvCacheTokens / 16)) * 16;
  report.notes.push(
    `Virtual mesh (bench/routing-mesh.ts): the router's scheduling profiles (router/scheduling, unchanged) over simulated engines of preset ${preset.name} (calibrated step costs and front end, max_num_seqs ${preset.maxNumSeqs}, max_num_batched_tokens ${preset.maxNumBatchedTokens}, prefix caching on), on one discrete-event clock: latencies are the preset's real-time figures, not wall clock. Sidecars scrape engine gauges every 500 ms and report every 250 ms and on each prefix-index change; engines do not publish max_num_seqs (as vLLM outside dev mode). The data plane (gRPC, HTTP, sidecar CPU) is not in the loop; the overhead and throughput scenarios measure it.`,
    `Method: per scenario and repeat, one seed (${cfg.seed} + repeat) gives every profile the same requests at the same times; profiles run interleaved (order rotates per repeat), ${cfg.repeats} repeats. Per profile and repeat, offered rates rise by the scenario's step until TTFT p90 exceeds ${cfg.ttft_p90_slo_ms} ms or more than 1 % of requests fail (timeout ${cfg.timeout_ms} ms), then ${cfg.bisect_steps} bisection steps; goodput = completed req/s at the best rate meeting the SLO. Failed requests count as infinitely slow in TTFT quantiles. Figures are median (min–max) over repeats.`,
  );
  if (names.includes('oracle'))
    report.notes.push(
      "The oracle (bench/routing-oracle.ts) is greedy with perfect state, not a proven optimum: it sees the same arrivals and every engine's true state when a request arrives (its KV cache's prefix blocks, front-end backlog, requests in prefill, queued and decoding, free KV blocks; no report lag) and sends each request where the simulator's step-cost model predicts the least time to first token plus the delay its uncached prefill adds to the requests already there; ties go to the engine holding more of the prompt, then to fewer requests. It decides one request at a time and cannot foresee arrivals.",
    );
  const goodputRows: Array<Array<string | number>> = [];
  const atRrRows: Array<Array<string | number>> = [];
  const atRrRepeatRows: Array<Array<string | number>> = [];
  const detailRows: Array<Array<string | number>> = [];
  const consistencyRows: Array<Array<string | number>> = [];
  const t0 = performance.now();
  for (const s of cfg.scenarios) {
    report.notes.push(
      `Scenario ${s.name} (${s.kind}): ${s.description} ${s.pods} pods, KV cache ${fmt(kvTokens(s))} tokens per pod${s.num_gpu_blocks ? ` (--num-gpu-blocks-override ${s.num_gpu_blocks}; the preset holds ${fmt(preset.kvCacheTokens)})` : ' (the preset’s full cache)'}; ${s.groups} ${s.kind === 'multi-turn' ? `conversations alive at once, ${s.turns ?? 4} turns each,` : 'tenants,'} system prompt ${s.system_prompt_len} tokens, ${s.kind === 'multi-turn' ? 'each turn adds' : 'question'} ${s.question_len}, output ${s.output_len}${s.hot_share ? `, tenant 0 gets ${fmt(s.hot_share * 100)} % of requests` : ''}; ${s.warmup_s} s warm-up, ${s.measure_s} s measured.`,
    );
    const knees = new Map<string, KneeResult[]>(names.map((n) => [n, []]));
    const atRr = new Map<string, CellResult[]>(names.map((n) => [n, []]));
    for (let r = 0; r < cfg.repeats; r++) {
      const seed = cfg.seed + r;
      const order = names.map((_, i) => names[(i + r) % names.length] as string);
      for (const name of order) {
        if (ctx.signal.aborted) throw new Error('aborted');
        const k = findKnee(s, preset, profiles.get(name) as ProfileConfig | 'oracle', seed, cfg);
        knees.get(name)?.push(k);
        ctx.log(
          `routing ${s.name} repeat ${r + 1} ${name}: goodput ${k.best ? fmt(k.best.goodput) : 0} req/s at ${k.best?.rate ?? '—'} req/s offered (TTFT p90 ${k.best ? fmt(k.best.ttftP90) : '—'} ms, prefix hits ${k.best ? fmt(k.best.hitRate * 100) : '—'} %), first miss at ${k.firstFail ?? '—'} req/s; ${k.cells.length} runs, ${fmt((performance.now() - t0) / 1000)} s so far`,
        );
        await new Promise((res) => setImmediate(res));
      }
      // Every profile at the rate where round robin first missed the SLO.
      const rrFail = knees.get('round-robin')?.[r]?.firstFail;
      if (rrFail !== undefined) {
        for (const name of order) {
          atRr
            .get(name)
            ?.push(runCell(s, preset, profiles.get(name) as ProfileConfig | 'oracle', seed, rrFail, cfg));
        }
      }
    }
    const goodputs = (n: string) => (knees.get(n) ?? []).map((k) => k.best?.goodput ?? 0);
    const baselines = ['round-robin', 'least-request'].filter((n) => knees.has(n));
    for (const n of names) {
      const g = goodputs(n);
      // Per repeat, against the better baseline of that repeat (same arrivals).
      const ratios = g.map((v, r) => {
        const base = Math.max(...baselines.map((b) => goodputs(b)[r] ?? 0));
        return base > 0 ? v / base : Number.NaN;
      });
      const rrRatios = g.map((v, r) => {
        const base = goodputs('round-robin')[r] ?? 0;
        return base > 0 ? v / base : Number.NaN;
      });
      const oracleRatios = g.map((v, r) => {
        const base = goodputs('oracle')[r] ?? 0;
        return base > 0 ? v / base : Number.NaN;
      });
      const bests = (knees.get(n) ?? []).map((k) => k.best).filter((c): c is CellResult => c !== undefined);
      goodputRows.push([
        s.name,
        n,
        spread(g),
        spread(ratios.filter(Number.isFinite)),
        spread(rrRatios.filter(Number.isFinite)),
        knees.has('oracle') ? spread(oracleRatios.filter(Number.isFinite)) : '—',
        spread(bests.map((c) => c.hitRate * 100)),
        spread(bests.map((c) => c.busiestShare)),
      ]);
      const cells = atRr.get(n) ?? [];
      if (cells.length > 0) {
        atRrRows.push([
          s.name,
          n,
          spread(cells.map((c) => c.rate)),
          spread(cells.map((c) => c.ttftP90)),
          spread(cells.map((c) => c.ttftP99)),
          spread(cells.map((c) => c.goodput)),
          spread(cells.map((c) => c.failed)),
          spread(cells.map((c) => c.hitRate * 100)),
        ]);
        // Per repeat, so the spread behind the medians shows (a p90 can sit
        // between two modes of the distribution and land in either).
        const rrCells = atRr.get('round-robin') ?? [];
        const p90 = (c: CellResult) => (Number.isFinite(c.ttftP90) ? fmt(c.ttftP90) : '∞');
        const rrOver = cells.map((c, r) => {
          const base = rrCells[r]?.ttftP90;
          return base !== undefined && c.ttftP90 > 0 ? base / c.ttftP90 : Number.NaN;
        });
        atRrRepeatRows.push([
          s.name,
          n,
          cells.map((c) => c.rate).join(' / '),
          cells.map(p90).join(' / '),
          rrOver.map((v) => (Number.isFinite(v) ? `${fmt(v)}×` : '—')).join(' / '),
          spread(rrOver.filter(Number.isFinite)),
        ]);
      }
      // A collapsed run: a repeat far below the others, or a knee search that
      // missed the SLO at a rate below one it met.
      const runs = knees.get(n) ?? [];
      const outliers = g
        .map((v, r) => {
          const others = g.filter((_, q) => q !== r);
          const m = median(others);
          return others.length > 0 && v < COLLAPSE_SHARE * m
            ? `repeat ${r + 1} (${fmt(v)} vs ${fmt(m)})`
            : '';
        })
        .filter((x) => x !== '');
      const nonMonotone = runs
        .map((k, r) => {
          const lowestMiss = Math.min(...k.cells.filter((c) => !c.pass).map((c) => c.rate));
          return k.cells.some((c) => c.pass && c.rate > lowestMiss) ? `repeat ${r + 1}` : '';
        })
        .filter((x) => x !== '');
      consistencyRows.push([
        s.name,
        n,
        g.map((v) => fmt(v)).join(' / '),
        g.length > 1 ? fmt(Math.min(...g) / median(g)) : '—',
        outliers.length > 0 ? outliers.join(', ') : 'none',
        nonMonotone.length > 0 ? nonMonotone.join(', ') : 'none',
      ]);
      for (const [r, k] of (knees.get(n) ?? []).entries()) {
        for (const c of k.cells) {
          detailRows.push([
            s.name,
            n,
            r + 1,
            c.rate,
            fmt(c.goodput),
            fmt(c.ttftP50),
            Number.isFinite(c.ttftP90) ? fmt(c.ttftP90) : '∞',
            c.failed,
            fmt(c.hitRate * 100),
            fmt(c.busiestShare),
            c.pass ? 'yes' : 'no',
          ]);
        }
      }
    }
  }
  report.notes.push(`Wall time ${fmt((performance.now() - t0) / 1000)} s.`);
  const goodputTable: ReportTable = {
    title: `Goodput: completed req/s at the best offered rate with TTFT p90 ≤ ${cfg.ttft_p90_slo_ms} ms`,
    columns: [
      'scenario',
      'profile',
      'goodput req/s',
      'vs better of round-robin / least-request',
      'vs round-robin',
      'vs oracle',
      'prefix hits % at the knee',
      'busiest pod / mean at the knee',
    ],
    rows: goodputRows,
    note: 'Ratios are taken per repeat (same arrivals), then summarized. The oracle is greedy with perfect state (bench/routing-oracle.ts): a reference, not a proven optimum.',
  };
  report.tables.push(goodputTable, {
    title: 'Every profile at the rate where round robin first missed the SLO',
    columns: [
      'scenario',
      'profile',
      'offered req/s',
      'TTFT p90 ms',
      'TTFT p99 ms',
      'completed req/s',
      'failed',
      'prefix hits %',
    ],
    rows: atRrRows,
  });
  report.tables.push({
    title: 'TTFT p90 at the rate where round robin first missed the SLO, per repeat',
    columns: [
      'scenario',
      'profile',
      'offered req/s per repeat',
      'TTFT p90 ms per repeat',
      "round robin's TTFT p90 / this profile's, per repeat",
      'the same, median (min–max)',
    ],
    rows: atRrRepeatRows,
    note: 'Repeat r of every profile runs the same arrivals at the same rate (round robin’s first miss on seed + r).',
  });
  report.tables.push({
    title: 'Repeats side by side: no collapsed run',
    columns: [
      'scenario',
      'profile',
      'goodput per repeat',
      'lowest / median',
      `repeats below ${fmt(COLLAPSE_SHARE * 100)} % of the others' median`,
      'knee searches that missed the SLO below a rate they met',
    ],
    rows: consistencyRows,
  });
  report.tables.push({
    title: 'Every run',
    columns: [
      'scenario',
      'profile',
      'repeat',
      'offered req/s',
      'completed req/s',
      'TTFT p50 ms',
      'TTFT p90 ms',
      'failed',
      'prefix hits %',
      'busiest / mean',
      'met SLO',
    ],
    rows: detailRows,
  });
  return report;
}
