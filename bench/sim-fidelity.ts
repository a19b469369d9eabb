/**
 * Prints the simulator's fidelity figures, all in simulated time (the same on
 * every machine): the published vLLM points the presets were fitted to
 * (in sample) and those they were not (out of sample), each with the simulated
 * value, the error, the range of that error over other random draws of the
 * same workload, and the error statistics of each set; what-if replays of the
 * worst out-of-sample points, one mechanism changed at a time; the TTFT of a
 * prompt cold and then warm in the prefix cache, and throughput against
 * concurrency for ShareGPT-like traffic.
 *
 *     node --import tsx bench/sim-fidelity.ts [--draws 4]
 *
 * `--draws N` replays every point N more times with other seeded lengths and
 * arrival times (0: none; each draw adds about the time of the first).
 */

import { parseArgs } from 'node:util';

import { createRandom } from '../common/random.js';
import {
  CALIBRATION_POINTS,
  CALIBRATION_TOLERANCE,
  type CalibrationPoint,
  type ErrorSummary,
  HELD_OUT_POINTS,
  PERF_UPDATE_MAX_NUM_SEQS,
  replayCalibration,
  SGLANG_MAX_MODEL_LEN,
  SGLANG_SHAREGPT_MEANS,
  type ShareGptRun,
  shareGpt,
  summarizeErrors,
  VLLM_060,
  VLLM_V1_MAY_2025,
} from '../sim/calibration.js';
import { getPreset, SIM_PRESETS } from '../sim/presets.js';
import { createShareGptSampler, SHAREGPT_IGNORE_EOS_SIGMA, SHAREGPT_SIGMA } from '../sim/sharegpt.js';
import { runWorkload, summarizeWorkload, uniquePrompt, type WorkloadSummary } from '../sim/workload.js';

const { values } = parseArgs({ options: { draws: { type: 'string', default: '4' } } });
const DRAWS = Number(values.draws);
if (!Number.isInteger(DRAWS) || DRAWS < 0)
  throw new RangeError(`--draws must be a whole number >= 0, got ${values.draws}`);

const out = (line = '') => process.stdout.write(`${line}\n`);
const table = (header: string[], rows: string[][]) => {
  out(`| ${header.join(' | ')} |`);
  out(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) out(`| ${row.join(' | ')} |`);
  out();
};
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
const fmt = (value: number) =>
  value >= 1000 ? Math.round(value).toLocaleString('en-US') : value.toPrecision(3);

const describeSummary = (s: ErrorSummary) =>
  `median |error| ${(s.medianAbs * 100).toFixed(1)} %, worst ${(s.worstAbs * 100).toFixed(1)} %, mean signed ${pct(s.meanSigned)}`;

const replays = new Map<string, WorkloadSummary>();

/** Prints the points' table (draw 0, with the range of each error over the other draws) and the set's statistics. */
const errorTable = (title: string, points: readonly CalibrationPoint[]) => {
  const results = replayCalibration(points, replays);
  const draws = Array.from({ length: DRAWS }, (_, i) => replayCalibration(points, replays, i + 1));
  out(title);
  out();
  const drawColumn = DRAWS > 0 ? [`error, draws 0–${DRAWS}`] : [];
  table(
    ['preset', 'vLLM', 'metric', 'published', 'simulated', 'error', ...drawColumn, 'source'],
    results.map(({ point, simulated, relativeError }, i) => {
      const errors = [relativeError, ...draws.map((d) => d[i]!.relativeError)];
      const range = DRAWS > 0 ? [`${pct(Math.min(...errors))} … ${pct(Math.max(...errors))}`] : [];
      return [
        point.preset,
        point.release,
        point.knownMiss ? `${point.metric} (known miss)` : point.metric,
        `${fmt(point.published)} ${point.unit}`,
        `${fmt(simulated)} ${point.unit}`,
        pct(relativeError),
        ...range,
        point.source,
      ];
    }),
  );
  const s = summarizeErrors(results);
  out(
    `${s.points} points: ${describeSummary(s)} (simulated − published: below 0 a latency is optimistic, a throughput pessimistic)`,
  );
  for (const [i, d] of draws.entries()) out(`- draw ${i + 1}: ${describeSummary(summarizeErrors(d))}`);
  out();
  return results;
};

const fitted = errorTable('## In sample: the points the presets were fitted to', CALIBRATION_POINTS);
errorTable('## Out of sample: published points fitted to nothing', HELD_OUT_POINTS);
const worstFitted = Math.max(
  ...fitted.filter((r) => !r.point.knownMiss).map((r) => Math.abs(r.relativeError)),
);
out(
  `in sample, known misses aside: worst error ${(worstFitted * 100).toFixed(1)} % (tolerance ${CALIBRATION_TOLERANCE * 100} %)`,
);
out();

// What-if replays: the worst out-of-sample points again, each with one mechanism or unpublished
// input changed, to show what bounds their error. None of these settings is used by a point.
const heldOutPoint = (preset: string, metric: string): CalibrationPoint => {
  const held = HELD_OUT_POINTS.find((p) => p.preset === preset && p.metric === metric);
  if (held) return held;
  const fit = CALIBRATION_POINTS.find((p) => p.preset === preset && p.metric.startsWith(metric));
  if (!fit) throw new Error(`no point ${preset} ${metric}`);
  return { ...fit, metric: `${fit.metric} (in sample)` };
};
const P8 = 'llama-3.1-8b-h100';
const P70 = 'llama-3.1-70b-4xh100';
const perfUpdate = (preset: string, o: Partial<ShareGptRun> = {}): ShareGptRun => ({
  preset,
  count: 500,
  release: VLLM_060,
  maxNumSeqs: PERF_UPDATE_MAX_NUM_SEQS,
  ...o,
});
const intake2ms = { ...getPreset(P8).frontEnd, requestMs: 2 };
/** A what-if: `run` is a ShareGPT replay or, for a workload of its own, a function that replays it. */
const whatIfs: { point: CalibrationPoint; change: string; run: ShareGptRun | (() => WorkloadSummary) }[] = [];
for (const preset of [P8, P70]) {
  const tpot = heldOutPoint(preset, 'mean TPOT, ShareGPT, 500 requests at once');
  whatIfs.push(
    { point: tpot, change: 'no API server', run: perfUpdate(preset, { frontEnd: false }) },
    {
      point: tpot,
      change: 'API server intake 2 ms per request',
      run: perfUpdate(preset, { frontEnd: intake2ms }),
    },
    {
      point: tpot,
      change: `answers spread as sglang's ignore_eos runs (σ ${SHAREGPT_IGNORE_EOS_SIGMA.output.toFixed(1)})`,
      run: perfUpdate(preset, { sigma: SHAREGPT_IGNORE_EOS_SIGMA }),
    },
    {
      point: tpot,
      change: `intake 2 ms, answers spread as sglang's ignore_eos runs (σ ${SHAREGPT_IGNORE_EOS_SIGMA.output.toFixed(1)})`,
      run: perfUpdate(preset, { frontEnd: intake2ms, sigma: SHAREGPT_IGNORE_EOS_SIGMA }),
    },
  );
}
for (const preset of [P8, P70]) {
  whatIfs.push({
    point: heldOutPoint(preset, 'request throughput, ShareGPT, 500 requests at once'),
    change: `intake 2 ms, answers spread as sglang's ignore_eos runs (σ ${SHAREGPT_IGNORE_EOS_SIGMA.output.toFixed(1)})`,
    run: perfUpdate(preset, { frontEnd: intake2ms, sigma: SHAREGPT_IGNORE_EOS_SIGMA }),
  });
}
for (const rate of [16, 32]) {
  const point = heldOutPoint(P8, `mean TPOT, ShareGPT, ${rate} QPS`);
  whatIfs.push(
    {
      point,
      change: 'decode 0.03 ms per sequence (the preset: 0.04)',
      run: perfUpdate(P8, { ratePerS: rate, decodeMsPerSequence: 0.03 }),
    },
    {
      point,
      change: `prefill at V1's cost (factor 1, fitted: ${VLLM_060.prefillCostFactor})`,
      run: perfUpdate(P8, { ratePerS: rate, release: { ...VLLM_060, prefillCostFactor: 1 } }),
    },
  );
}
whatIfs.push({
  point: heldOutPoint(P70, 'mean TPOT, ShareGPT, 32 QPS'),
  change: "256 sequences at most (V0's default; the run set 512)",
  run: perfUpdate(P70, { ratePerS: 32, maxNumSeqs: 256 }),
});
for (const [rate, count] of [
  [4, 1_200],
  [8, 2_400],
] as const) {
  whatIfs.push({
    point: heldOutPoint(P70, `median TTFT, ShareGPT, ${rate} req/s`),
    change: "no asynchronous output processor (a step's tokens leave as it ends, as in V1)",
    run: {
      preset: P70,
      count,
      ratePerS: rate,
      release: { ...VLLM_060, asyncOutputProcessing: false },
      means: SGLANG_SHAREGPT_MEANS,
      maxNumBatchedTokens: SGLANG_MAX_MODEL_LEN,
      ignoreEos: true,
    },
  });
}
const pull18566: ShareGptRun = {
  preset: P8,
  count: 1_000,
  means: { promptTokens: 229.711, outputTokens: 203.068 },
  datasetAnswers: true,
  release: VLLM_V1_MAY_2025,
};
const pullPoint = (statistic: string) =>
  heldOutPoint(P8, `${statistic}, ShareGPT chat, 1,000 requests at once`);
const pullStatistics = [
  'request throughput',
  'mean TTFT',
  'P99 TTFT',
  'mean TPOT',
  'median TPOT',
  'P99 TPOT',
  'mean ITL',
  'median ITL',
  'P99 ITL',
];
// Pull 18566's run with one input changed: the intake in one pass (the presets' API server) or in six,
// the answers spread as when the model stops on its own, vLLM's defaults on an A100.
const pullVariants: [string, ShareGptRun][] = [
  [
    'intake in one pass of the event loop (the presets; the release: 4)',
    { ...pull18566, release: { ...VLLM_V1_MAY_2025, requestStages: 1 } },
  ],
  [
    'intake in 6 passes of the event loop (the release: 4)',
    { ...pull18566, release: { ...VLLM_V1_MAY_2025, requestStages: 6 } },
  ],
  [
    `answers spread as when the model stops on its own (σ ${SHAREGPT_SIGMA.output}; the run: ${SHAREGPT_IGNORE_EOS_SIGMA.output.toFixed(1)}, the dataset's answers)`,
    { ...pull18566, datasetAnswers: false },
  ],
  [
    "vLLM's defaults on an A100 (256 sequences, 2,048 batched tokens), H100 step costs",
    { ...pull18566, maxNumSeqs: 256, maxNumBatchedTokens: 2048 },
  ],
];
for (const [change, run] of pullVariants) {
  for (const statistic of pullStatistics) whatIfs.push({ point: pullPoint(statistic), change, run });
}
// The same four-pass intake on the presets: two fitted saturation throughputs, replayed as bursts of
// 2,000, lose the quarter of the intake the engine waits through before the first request reaches it.
const presetFourPasses = { ...getPreset(P8).frontEnd, requestStages: VLLM_V1_MAY_2025.requestStages };
whatIfs.push(
  {
    point: heldOutPoint(P8, 'prefill-only saturation, 512-token prompts'),
    change: 'intake in 4 passes, as V1 in May 2025 (the presets: 1)',
    run: () =>
      summarizeWorkload(
        runWorkload({
          preset: getPreset(P8),
          requests: Array.from({ length: 2_000 }, () => ({ promptTokens: 512, outputTokens: 1 })),
          frontEnd: presetFourPasses,
        }),
      ),
  },
  {
    point: heldOutPoint(P8, 'ShareGPT-like saturation, max_num_seqs 256, rate inf'),
    change: 'intake in 4 passes, as V1 in May 2025 (the presets: 1)',
    run: { preset: P8, count: 2_000, maxNumSeqs: 256, frontEnd: presetFourPasses },
  },
);
// And on vLLM 0.6.0's bursts of 500 (its own API server's passes were not read).
for (const [preset, metric] of [
  [P8, 'mean TPOT, ShareGPT, 500 requests at once'],
  [P8, 'request throughput, ShareGPT, 500 requests at once'],
  [P70, 'mean TPOT, ShareGPT, 500 requests at once'],
] as const) {
  whatIfs.push({
    point: heldOutPoint(preset, metric),
    change: 'intake in 4 passes, as V1 in May 2025 (0.6.0 replays: 1)',
    run: perfUpdate(preset, { release: { ...VLLM_060, requestStages: 4 } }),
  });
}
// turboquant's burst (300 × 1024 in / 512 out at once, 70B): its P99 TTFT is the last prompts' wait for the
// burst's prefill, so the prefill cost per token decides it; the same constant decides the in-sample throughput.
const turboquantBurst = (o: { prefillMsPerToken?: number; numGpuBlocks?: number }) => (): WorkloadSummary => {
  const preset = getPreset(P70);
  return summarizeWorkload(
    runWorkload({
      preset: {
        ...preset,
        stepCost: {
          ...preset.stepCost,
          prefillMsPerToken: o.prefillMsPerToken ?? preset.stepCost.prefillMsPerToken,
        },
      },
      requests: Array.from({ length: 300 }, () => ({ arrivalMs: 0, promptTokens: 1024, outputTokens: 512 })),
      numGpuBlocks: o.numGpuBlocks,
    }),
  );
};
const prefill055 = turboquantBurst({ prefillMsPerToken: 0.055 });
for (const metric of [
  'P99 TTFT, 1024 in / 512 out, rate inf',
  'output throughput, 1024 in / 512 out, rate inf',
  'mean TPOT, 1024 in / 512 out, rate inf',
]) {
  whatIfs.push({
    point: heldOutPoint(P70, metric),
    change: `prefill 0.055 ms per token (scaled from the 8B by FLOPs; the preset: ${getPreset(P70).stepCost.prefillMsPerToken})`,
    run: prefill055,
  });
}
whatIfs.push({
  point: heldOutPoint(P70, 'P99 TTFT, 1024 in / 512 out, rate inf'),
  change: 'a KV cache that holds the whole burst (30,000 blocks, not 26,263)',
  run: turboquantBurst({ numGpuBlocks: 30_000 }),
});
for (const preset of [P8, P70]) {
  whatIfs.push({
    point: heldOutPoint(preset, 'mean end-to-end latency, ShareGPT, 1 QPS'),
    change: 'answers 1.45× as long (mean 260 tokens, not 179)',
    run: { preset, count: 300, ratePerS: 1, means: { promptTokens: 202, outputTokens: 260 } },
  });
}
// Each what-if workload runs once, whatever number of its points the table shows.
const whatIfRuns = new Map<ShareGptRun | (() => WorkloadSummary), WorkloadSummary>();
out('## What bounds the worst out-of-sample points: one change at a time (no point uses these)');
out();
table(
  ['preset', 'metric', 'published', 'as replayed', 'changed', 'simulated', 'error'],
  whatIfs.map(({ point, change, run }) => {
    const replayed = replayCalibration([point], replays)[0]!;
    let summary = whatIfRuns.get(run);
    if (!summary) {
      summary = typeof run === 'function' ? run() : shareGpt(run).run();
      whatIfRuns.set(run, summary);
    }
    const simulated = point.pick(summary);
    return [
      point.preset,
      point.metric,
      `${fmt(point.published)} ${point.unit}`,
      pct(replayed.relativeError),
      change,
      `${fmt(simulated)} ${point.unit}`,
      pct(simulated / point.published - 1),
    ];
  }),
);

// The rest of the V1 alpha latency-vs-QPS chart: published, in neither set. Its 1 QPS points are held
// out; the run's number of prompts, answer lengths and endpoint are not stated, and past the knee the
// mean latency grows with the number of prompts, so these replay an assumed 1,000.
const V1_ALPHA_CHART = [
  [P8, [20, 2.0], [40, 2.8], [50, 3.9], [60, 7.1], [70, 13.5]],
  [P70, [5, 4.8], [10, 5.1], [15, 6.2], [20, 8.1], [25, 12.4], [30, 22.1]],
] as const;
out(
  '## The rest of the V1 alpha chart (mean end-to-end latency, ShareGPT): in neither set, 1,000 prompts assumed',
);
out();
table(
  ['preset', 'QPS', 'published', 'simulated', 'error'],
  V1_ALPHA_CHART.flatMap(([preset, ...rates]) =>
    rates.map(([rate, seconds]) => {
      const s = shareGpt({ preset, count: 1_000, ratePerS: rate }).run();
      return [
        preset,
        String(rate),
        `≈${seconds.toFixed(1)} s`,
        `${(s.meanE2eMs / 1000).toFixed(2)} s`,
        pct(s.meanE2eMs / 1000 / seconds - 1),
      ];
    }),
  ),
);

out('## Prefix cache: the same prompt twice, one after the other (TTFT, batch 1)');
out();
const prefixRows: string[][] = [];
for (const preset of Object.values(SIM_PRESETS)) {
  for (const tokens of [2048, 8192, 32_768]) {
    const prompt = uniquePrompt(0, tokens);
    const result = runWorkload({
      preset,
      concurrency: 1,
      requests: [
        { promptTokens: tokens, outputTokens: 16, promptTokenIds: prompt },
        { promptTokens: tokens, outputTokens: 16, promptTokenIds: prompt },
      ],
    });
    const [cold, warm] = result.requests;
    prefixRows.push([
      preset.name,
      String(tokens),
      `${fmt(cold!.firstTokenMs - cold!.arrivalMs)} ms`,
      `${fmt(warm!.firstTokenMs - warm!.arrivalMs)} ms`,
      String(warm!.cachedTokens),
    ]);
  }
}
table(['preset', 'prompt tokens', 'TTFT cold', 'TTFT warm', 'cached tokens'], prefixRows);

out('## Throughput against concurrency (closed loop, ShareGPT-shaped lengths, means 202 in / 179 out)');
out();
const concurrencyRows: string[][] = [];
for (const name of Object.keys(SIM_PRESETS)) {
  for (const concurrency of [1, 8, 64, 256, 1024]) {
    const sample = createShareGptSampler(createRandom(7));
    const requests = Array.from({ length: Math.max(200, concurrency * 8) }, sample);
    const s = summarizeWorkload(runWorkload({ preset: getPreset(name), requests, concurrency }));
    concurrencyRows.push([
      name,
      String(concurrency),
      fmt(s.outputTokensPerS),
      fmt(s.requestsPerS),
      `${fmt(s.meanTtftMs)} ms`,
      `${fmt(s.meanTpotMs)} ms`,
    ]);
  }
}
table(['preset', 'concurrency', 'output tok/s', 'req/s', 'mean TTFT', 'mean TPOT'], concurrencyRows);
process.exitCode = worstFitted <= CALIBRATION_TOLERANCE ? 0 : 1;
