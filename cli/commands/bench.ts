/**
 * `llmmesh bench`: load tests any `llmmesh.v1.Inference` (router) or
 * `llmmesh.v1.Engine` (sidecar) target with a seeded workload, open-loop or
 * closed-loop, and writes JSON, Markdown and offline HTML reports; or runs
 * one of the benchmark scenarios (`--scenario`), which start their own mesh.
 */
import { relative } from 'node:path';
import { createProgressBar } from '../../bench/progress.js';
import { toMarkdown } from '../../bench/report.js';
import { runSweep, writeReport } from '../../bench/run-bench.js';
import { runScenario, SCENARIO_NAMES } from '../../bench/scenarios/index.js';
import { parseTarget } from '../../bench/targets.js';
import {
  createWorkload,
  WORKLOAD_KINDS,
  type WorkloadKind,
  type WorkloadParams,
} from '../../bench/workloads.js';
import { type CommandSpec, helpText, num, parseOptions, str, UsageError } from '../options.js';

const WORKLOAD_FLAGS: Array<[string, keyof WorkloadParams, string]> = [
  ['prompt-len', 'promptLen', 'Prompt length in words ≈ tokens (fixed; long-prompt: minimum)'],
  ['prompt-len-max', 'promptLenMax', 'Maximum prompt length (long-prompt)'],
  ['output-len', 'outputLen', 'Tokens to generate per request'],
  ['groups', 'groups', 'Groups, each with its own system prompt (shared-prefix)'],
  ['prompts-per-group', 'promptsPerGroup', 'Distinct questions per group (shared-prefix)'],
  ['system-prompt-len', 'systemPromptLen', 'System prompt length (shared-prefix, multi-turn)'],
  ['question-len', 'questionLen', 'Question length (shared-prefix) or user turn length (multi-turn)'],
  ['conversations', 'conversations', 'Conversations in flight (multi-turn)'],
  ['turns', 'turns', 'Turns per conversation (multi-turn)'],
];

export const benchCommand: CommandSpec = {
  name: 'bench',
  summary: 'Load-test a router or sidecar (open or closed loop), or run a benchmark scenario.',
  usage:
    'llmmesh bench [--target [NAME=][inference|engine@]HOST:PORT,...] [--workload KIND] (--rate R,... | --concurrency N,...) (--requests N | --duration S)\n' +
    `       llmmesh bench --scenario ${SCENARIO_NAMES.join('|')} [--quick]`,
  options: {
    target: {
      type: 'string',
      env: 'LLMMESH_BENCH_TARGET',
      default: '127.0.0.1:50051',
      valueName: 'SPECS',
      description:
        'Comma-separated targets: HOST:PORT is a router (llmmesh.v1.Inference); engine@HOST:PORT a sidecar (llmmesh.v1.Engine); NAME= labels it',
    },
    model: {
      type: 'string',
      env: 'LLMMESH_MODEL',
      default: 'llama-3-8b-chat',
      valueName: 'NAME',
      description: 'Logical model name',
    },
    workload: {
      type: 'string',
      env: 'LLMMESH_BENCH_WORKLOAD',
      default: 'fixed',
      valueName: 'KIND',
      description: `Workload: ${WORKLOAD_KINDS.join(', ')}`,
    },
    seed: {
      type: 'string',
      env: 'LLMMESH_BENCH_SEED',
      default: '1',
      valueName: 'N',
      description: 'Seed of prompts and arrival times (same seed, same requests)',
    },
    ...Object.fromEntries(
      WORKLOAD_FLAGS.map(([flag, , description]) => [
        flag,
        {
          type: 'string' as const,
          env: `LLMMESH_BENCH_${flag.toUpperCase().replace(/-/g, '_')}`,
          valueName: 'N',
          description,
        },
      ]),
    ),
    rate: {
      type: 'string',
      env: 'LLMMESH_BENCH_RATE',
      valueName: 'R,...',
      description: 'Open loop: Poisson arrivals at R requests/s (a list sweeps the rates)',
    },
    concurrency: {
      type: 'string',
      env: 'LLMMESH_BENCH_CONCURRENCY',
      valueName: 'N,...',
      description: 'Closed loop: N requests in flight (a list sweeps them); default 1 when no rate is given',
    },
    requests: {
      type: 'string',
      env: 'LLMMESH_BENCH_REQUESTS',
      valueName: 'N',
      description: 'Measured requests per run (after warm-up)',
    },
    duration: {
      type: 'string',
      env: 'LLMMESH_BENCH_DURATION',
      valueName: 'S',
      description: 'Measured seconds per run (after warm-up); default 10 when --requests is absent',
    },
    'warmup-requests': {
      type: 'string',
      env: 'LLMMESH_BENCH_WARMUP_REQUESTS',
      default: '0',
      valueName: 'N',
      description: 'Requests sent first and not counted',
    },
    warmup: {
      type: 'string',
      env: 'LLMMESH_BENCH_WARMUP',
      default: '0',
      valueName: 'S',
      description: 'Seconds at the start whose requests are not counted',
    },
    'timeout-ms': {
      type: 'string',
      env: 'LLMMESH_TIMEOUT_MS',
      default: '120000',
      valueName: 'MS',
      description: 'Deadline of each request',
    },
    temperature: {
      type: 'string',
      env: 'LLMMESH_BENCH_TEMPERATURE',
      valueName: 'T',
      description: "Sampling temperature (default: the engine's)",
    },
    'api-key': {
      type: 'string',
      env: 'LLMMESH_API_KEY',
      valueName: 'KEY',
      description: 'Sent as authorization: Bearer KEY',
    },
    out: {
      type: 'string',
      env: 'LLMMESH_BENCH_OUT',
      default: 'bench/results',
      valueName: 'DIR',
      description: 'Directory of the reports (NAME.json, NAME.md, NAME.html)',
    },
    name: {
      type: 'string',
      env: 'LLMMESH_BENCH_NAME',
      valueName: 'NAME',
      description: 'Report file name (default: bench, or the scenario name)',
    },
    scenario: {
      type: 'string',
      env: 'LLMMESH_BENCH_SCENARIO',
      valueName: 'NAME',
      description: `Run a scenario with its own local mesh: ${SCENARIO_NAMES.join(', ')}`,
    },
    config: {
      type: 'string',
      env: 'LLMMESH_BENCH_CONFIG',
      valueName: 'FILE',
      description: 'Scenario settings (routing: default bench/scenarios/routing.yaml)',
    },
    'cpu-prof': {
      type: 'string',
      env: 'LLMMESH_BENCH_CPU_PROF',
      valueName: 'DIR',
      description:
        'throughput: profile the router (node --cpu-prof) into DIR and summarise where its time goes',
    },
    quick: {
      type: 'boolean',
      env: 'LLMMESH_BENCH_QUICK',
      description:
        'Scenarios: a shorter run to check the setup, numbers not to quote (measured on 2 busy cores: throughput 18 s, routing 45 s, overhead 45 s, scale 50 s)',
    },
    pin: {
      type: 'boolean',
      env: 'LLMMESH_BENCH_PIN',
      description:
        'overhead: pin the measured proxy (router or pass-through) alone on core 0 and everything else on core 1 (taskset)',
    },
    json: { type: 'boolean', description: 'Print the JSON report instead of Markdown' },
    quiet: { type: 'boolean', short: 'q', description: 'No progress bar' },
  },
};

function list(values: string | undefined, flag: string, integer: boolean): number[] | undefined {
  if (values === undefined) return undefined;
  const out = values.split(',').map((s) => Number(s.trim()));
  if (out.length === 0 || out.some((n) => !(n > 0) || (integer && !Number.isInteger(n)))) {
    throw new UsageError(
      `bench: --${flag} must be a comma-separated list of ${integer ? 'whole numbers' : 'numbers'} > 0, got "${values}"`,
    );
  }
  return out;
}

/** Runs the command; returns the exit code. */
export async function runBench(argv: string[]): Promise<number> {
  const spec = benchCommand;
  const { values } = parseOptions(spec, argv);
  if (values.help) {
    process.stdout.write(helpText(spec));
    return 0;
  }
  const out = str(values, 'out', spec, true) as string;
  const progress = values.quiet ? undefined : createProgressBar();
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const command = `llmmesh bench ${argv.join(' ')}`.trim();
  try {
    const scenario = str(values, 'scenario', spec);
    if (scenario !== undefined) {
      if (!SCENARIO_NAMES.includes(scenario)) {
        throw new UsageError(
          `bench: --scenario must be one of ${SCENARIO_NAMES.join(', ')}, got "${scenario}"`,
        );
      }
      const report = await runScenario(scenario, {
        quick: values.quick === true,
        pin: values.pin === true,
        command,
        cpuProfDir: str(values, 'cpu-prof', spec),
        configPath: str(values, 'config', spec),
        signal: controller.signal,
        log: (line) => {
          progress?.done();
          process.stderr.write(`${line}\n`);
        },
        onProgress: progress ? (label, p) => progress.update(label, p) : undefined,
      });
      progress?.done();
      const paths = await writeReport(report, out, str(values, 'name', spec) ?? scenario);
      process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : toMarkdown(report));
      process.stderr.write(`reports: ${relative(process.cwd(), paths.html)} (and .json, .md)\n`);
      return 0;
    }

    const kind = str(values, 'workload', spec, true) as string;
    if (!(WORKLOAD_KINDS as readonly string[]).includes(kind)) {
      throw new UsageError(`bench: --workload must be one of ${WORKLOAD_KINDS.join(', ')}, got "${kind}"`);
    }
    const params: Partial<WorkloadParams> = {};
    for (const [flag, key] of WORKLOAD_FLAGS) {
      const v = num(values, flag, spec, { min: 0, integer: true });
      if (v !== undefined) params[key] = v;
    }
    let workload: ReturnType<typeof createWorkload>;
    try {
      workload = createWorkload(kind as WorkloadKind, {
        seed: num(values, 'seed', spec, { integer: true, min: 0 }) ?? 1,
        params,
      });
    } catch (err) {
      throw new UsageError(`bench: ${(err as Error).message}`);
    }
    let targets: ReturnType<typeof parseTarget>[];
    try {
      targets = (str(values, 'target', spec, true) as string).split(',').map((s, i) => parseTarget(s, i));
    } catch (err) {
      throw new UsageError(`bench: --target: ${(err as Error).message}`);
    }
    const rates = list(str(values, 'rate', spec), 'rate', false);
    const concurrencies = list(str(values, 'concurrency', spec), 'concurrency', true);
    if (rates && concurrencies) throw new UsageError('bench: give --rate or --concurrency, not both');
    const modes = rates
      ? rates.map((ratePerS) => ({ kind: 'open' as const, ratePerS }))
      : (concurrencies ?? [1]).map((concurrency) => ({ kind: 'closed' as const, concurrency }));
    const requests = num(values, 'requests', spec, { min: 1, integer: true });
    const durationS = num(values, 'duration', spec, { min: 0.001 });
    if (requests !== undefined && durationS !== undefined) {
      throw new UsageError('bench: give --requests or --duration, not both');
    }
    const apiKey = str(values, 'api-key', spec);
    const temperature = num(values, 'temperature', spec, { min: 0 });
    const report = await runSweep({
      command,
      targets,
      model: str(values, 'model', spec, true) as string,
      workload,
      modes,
      requests,
      durationMs: requests === undefined ? (durationS ?? 10) * 1000 : undefined,
      warmupRequests: num(values, 'warmup-requests', spec, { min: 0, integer: true }),
      warmupMs: (num(values, 'warmup', spec, { min: 0 }) ?? 0) * 1000,
      timeoutMs: num(values, 'timeout-ms', spec, { min: 1 }),
      temperature,
      metadata: apiKey ? { authorization: `Bearer ${apiKey}` } : undefined,
      signal: controller.signal,
      onProgress: progress ? (label, p) => progress.update(label, p) : undefined,
    });
    progress?.done();
    const paths = await writeReport(report, out, str(values, 'name', spec) ?? 'bench');
    process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : toMarkdown(report));
    process.stderr.write(`reports: ${relative(process.cwd(), paths.html)} (and .json, .md)\n`);
    const failed = report.runs.every((r) => r.stats.ok === 0);
    return failed ? 1 : 0;
  } finally {
    progress?.done();
    process.off('SIGINT', onSigint);
  }
}
