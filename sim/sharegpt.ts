/**
 * ShareGPT-shaped request lengths: what `vllm bench serve --dataset-name
 * sharegpt` sends, as lengths only. Published benchmark runs give the means
 * (see `calibration-data.md`); the shape is a log-normal per side, cut the way
 * vLLM's benchmark filters the dataset (prompt 4–1024 tokens, output at least
 * 4, prompt + output at most 2048). The log-normal and its spread are a
 * modelling choice, not a published figure: they give the right tail real
 * conversations have (answers of several times the median), which decides
 * how long a short run lasts. The previous uniform 1–357 lengths had none.
 * No percentile, median or histogram of the runs' dataset
 * (`ShareGPT_V3_unfiltered_cleaned_split`, first rounds, after the filter) is
 * published; the one published histogram of ShareGPT's first rounds (vLLM's
 * paper artifact, a March 2023 scrape in OPT tokens) is of another release
 * and was not adopted. `calibration-data.md` section 12 lists every source
 * found and what it states.
 */
import { createRandom } from '../common/random.js';

/** Length limits of vLLM's benchmark sampler (`is_valid_sequence` in `vllm/benchmarks/datasets.py`). */
export const SHAREGPT_FILTER = { minLen: 4, maxPromptLen: 1024, maxTotalLen: 2048 } as const;

/** Mean lengths with the Llama-3 tokenizer, completions endpoint (vLLM 0.6.0 perf-update run: 202 in / 179 out). */
export const SHAREGPT_MEANS = { promptTokens: 202, outputTokens: 179 } as const;

/**
 * Spread (σ of the log of the length) of prompts and outputs; no published
 * figure gives it. The output spread is fitted on the one throughput it
 * decides, vLLM 0.6.0's 500 ShareGPT prompts at once (≈37 req/s, see
 * `calibration.ts`): a wider tail leaves a few long answers decoding alone at
 * the end of the run. The prompt spread is an assumption: prompts mix one-line
 * questions with pasted documents, so they spread wider than answers.
 */
export const SHAREGPT_SIGMA = { prompt: 1.2, output: 0.45 } as const;

/**
 * Spread of the dataset's own answer lengths, as a client sending
 * `ignore_eos` replays them (sglang's `bench_serving` does unless told
 * otherwise): every request runs to its ShareGPT answer's length, so the
 * heavy tail of long answers is all there. vLLM's benchmark lets the model
 * stop at its end-of-sequence token unless told otherwise, which
 * {@link SHAREGPT_SIGMA} describes. (The perf-update run that σ 0.45 is
 * fitted on was itself sent with `--ignore-eos` by vLLM's nightly benchmark:
 * the two spreads are two fits of one dataset's answer lengths on two runs,
 * and they disagree; one log-normal cannot give both sglang's median answer
 * and the short tail that lets 500 answers at once finish at ≈37 req/s, see
 * `calibration-data.md` §11.) Fitted on one point, the median end-to-end latency of sglang's vLLM 0.6.0
 * run at 4 req/s (70B, see `calibration.ts`), on a 0.1 grid: 0.9 / 1.0 / 1.1
 * give +10 / +1 / −6 %. It puts the median answer at ≈0.6 of the mean.
 */
export const SHAREGPT_IGNORE_EOS_SIGMA = { prompt: SHAREGPT_SIGMA.prompt, output: 1.0 } as const;

/** One request's lengths. */
export interface ShareGptLengths {
  promptTokens: number;
  outputTokens: number;
}

/** Target means of {@link createShareGptSampler} (default {@link SHAREGPT_MEANS}). */
export interface ShareGptMeans {
  promptTokens: number;
  outputTokens: number;
}

/** A standard normal draw from two uniform ones (Box–Muller). */
function normal(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Spread of {@link createShareGptSampler} (default {@link SHAREGPT_SIGMA}). */
export interface ShareGptSigma {
  prompt: number;
  output: number;
}

function drawLengths(
  random: () => number,
  muPrompt: number,
  muOutput: number,
  sigma: ShareGptSigma,
): ShareGptLengths {
  const { minLen, maxPromptLen, maxTotalLen } = SHAREGPT_FILTER;
  // Rejection, as the benchmark drops conversations outside the limits.
  for (;;) {
    const promptTokens = Math.round(Math.exp(muPrompt + sigma.prompt * normal(random)));
    const outputTokens = Math.round(Math.exp(muOutput + sigma.output * normal(random)));
    if (promptTokens < minLen || outputTokens < minLen || promptTokens > maxPromptLen) continue;
    if (promptTokens + outputTokens > maxTotalLen) continue;
    return { promptTokens, outputTokens };
  }
}

const solved = new Map<string, [number, number]>();

/** The log-normal locations whose filtered means are `means` (solved once per pair, deterministically). */
function solveMu(means: ShareGptMeans, sigma: ShareGptSigma): [number, number] {
  const key = `${means.promptTokens}/${means.outputTokens}/${sigma.prompt}/${sigma.output}`;
  const cached = solved.get(key);
  if (cached) return cached;
  const sampleMeans = (muPrompt: number, muOutput: number) => {
    // Fixed draws, so the same means always give the same distribution.
    const random = createRandom(12_345);
    let p = 0;
    let o = 0;
    const n = 4000;
    for (let i = 0; i < n; i++) {
      const l = drawLengths(random, muPrompt, muOutput, sigma);
      p += l.promptTokens;
      o += l.outputTokens;
    }
    return [p / n, o / n] as const;
  };
  let muPrompt = Math.log(means.promptTokens) - sigma.prompt ** 2 / 2;
  let muOutput = Math.log(means.outputTokens) - sigma.output ** 2 / 2;
  // The filter cuts the tails, so shift each location until the filtered mean hits its target.
  for (let round = 0; round < 12; round++) {
    const [p, o] = sampleMeans(muPrompt, muOutput);
    muPrompt += Math.log(means.promptTokens / p);
    muOutput += Math.log(means.outputTokens / o);
  }
  const result: [number, number] = [muPrompt, muOutput];
  solved.set(key, result);
  return result;
}

/**
 * Returns a function drawing ShareGPT-shaped lengths from `random` whose means
 * are `means` (default: the Llama-3 completions means, 202 / 179).
 */
export function createShareGptSampler(
  random: () => number,
  means: ShareGptMeans = SHAREGPT_MEANS,
  sigma: ShareGptSigma = SHAREGPT_SIGMA,
): () => ShareGptLengths {
  const [muPrompt, muOutput] = solveMu(means, sigma);
  return () => drawLengths(random, muPrompt, muOutput, sigma);
}
