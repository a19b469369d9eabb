/**
 * Prints the simulator's fidelity figures, all in simulated time (the same on
 * every machine): the calibration table (every published vLLM point the
 * presets are held to, the simulated value and the error), the TTFT of a
 * prompt cold and then warm in the prefix cache, and throughput against
 * concurrency for ShareGPT-like traffic.
 *
 *     node --import tsx bench/sim-fidelity.ts
 */
import { CALIBRATION_TOLERANCE, replayCalibration } from '../sim/calibration.js';
import { getPreset, SIM_PRESETS } from '../sim/presets.js';
import { createSeededRandom, runWorkload, summarizeWorkload, uniquePrompt } from '../sim/workload.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const table = (header: string[], rows: string[][]) => {
  out(`| ${header.join(' | ')} |`);
  out(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) out(`| ${row.join(' | ')} |`);
  out();
};
const fmt = (value: number) =>
  value >= 1000 ? Math.round(value).toLocaleString('en-US') : value.toPrecision(3);

out('## Calibration: published vLLM measurements replayed against the presets');
out();
const results = replayCalibration();
table(
  ['preset', 'metric', 'published', 'simulated', 'error', 'source'],
  results.map(({ point, simulated, relativeError }) => [
    point.preset,
    point.metric,
    `${fmt(point.published)} ${point.unit}`,
    `${fmt(simulated)} ${point.unit}`,
    `${relativeError >= 0 ? '+' : ''}${(relativeError * 100).toFixed(1)} %`,
    point.source,
  ]),
);
const worst = Math.max(...results.map((r) => Math.abs(r.relativeError)));
out(
  `${results.length} points, worst error ${(worst * 100).toFixed(1)} % (tolerance ${CALIBRATION_TOLERANCE * 100} %)`,
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

out('## Throughput against concurrency (closed loop, ShareGPT-like: 4–400 in, 1–357 out, means 202 / 179)');
out();
const concurrencyRows: string[][] = [];
for (const name of Object.keys(SIM_PRESETS)) {
  for (const concurrency of [1, 8, 64, 256, 1024]) {
    const random = createSeededRandom(7);
    const requests = Array.from({ length: Math.max(200, concurrency * 8) }, () => ({
      promptTokens: 4 + Math.floor(random() * 397),
      outputTokens: 1 + Math.floor(random() * 357),
    }));
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
process.exitCode = worst <= CALIBRATION_TOLERANCE ? 0 : 1;
