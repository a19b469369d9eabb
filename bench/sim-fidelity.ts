/**
 * Prints the simulator's fidelity figures, all in simulated time (the same on
 * every machine): the published vLLM points the presets were fitted to
 * (in sample) and those they were not (out of sample), each with the simulated
 * value, the error and the error statistics of each set; the TTFT of a
 * prompt cold and then warm in the prefix cache, and throughput against
 * concurrency for ShareGPT-like traffic.
 *
 *     node --import tsx bench/sim-fidelity.ts
 */

import { createRandom } from '../common/random.js';
import {
  CALIBRATION_POINTS,
  CALIBRATION_TOLERANCE,
  type CalibrationResult,
  HELD_OUT_POINTS,
  replayCalibration,
  summarizeErrors,
} from '../sim/calibration.js';
import { getPreset, SIM_PRESETS } from '../sim/presets.js';
import { createShareGptSampler } from '../sim/sharegpt.js';
import { runWorkload, summarizeWorkload, uniquePrompt } from '../sim/workload.js';

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

const errorTable = (title: string, results: CalibrationResult[]) => {
  out(title);
  out();
  table(
    ['preset', 'vLLM', 'metric', 'published', 'simulated', 'error', 'source'],
    results.map(({ point, simulated, relativeError }) => [
      point.preset,
      point.release,
      point.knownMiss ? `${point.metric} (known miss)` : point.metric,
      `${fmt(point.published)} ${point.unit}`,
      `${fmt(simulated)} ${point.unit}`,
      pct(relativeError),
      point.source,
    ]),
  );
  const s = summarizeErrors(results);
  out(
    `${s.points} points: median |error| ${(s.medianAbs * 100).toFixed(1)} %, worst ${(s.worstAbs * 100).toFixed(1)} %, mean signed ${pct(s.meanSigned)} (simulated − published: below 0 a latency is optimistic, a throughput pessimistic)`,
  );
  out();
  return s;
};

const replays = new Map();
const fitted = replayCalibration(CALIBRATION_POINTS, replays);
errorTable('## In sample: the points the presets were fitted to', fitted);
errorTable(
  '## Out of sample: published points fitted to nothing',
  replayCalibration(HELD_OUT_POINTS, replays),
);
const worstFitted = Math.max(
  ...fitted.filter((r) => !r.point.knownMiss).map((r) => Math.abs(r.relativeError)),
);
out(
  `in sample, known misses aside: worst error ${(worstFitted * 100).toFixed(1)} % (tolerance ${CALIBRATION_TOLERANCE * 100} %)`,
);
out();

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
