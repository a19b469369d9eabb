import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRandom } from '../common/random.js';
import {
  createShareGptSampler,
  SHAREGPT_FILTER,
  SHAREGPT_IGNORE_EOS_SIGMA,
  SHAREGPT_MEANS,
} from './sharegpt.js';

describe('ShareGPT-shaped lengths', () => {
  const draws = Array.from({ length: 20_000 }, createShareGptSampler(createRandom(1)));
  const prompts = draws.map((d) => d.promptTokens).sort((a, b) => a - b);
  const outputs = draws.map((d) => d.outputTokens).sort((a, b) => a - b);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

  it('has the published means', () => {
    assert.ok(Math.abs(mean(prompts) / SHAREGPT_MEANS.promptTokens - 1) < 0.03, `${mean(prompts)}`);
    assert.ok(Math.abs(mean(outputs) / SHAREGPT_MEANS.outputTokens - 1) < 0.03, `${mean(outputs)}`);
  });

  it('stays within vLLM benchmark’s filter', () => {
    for (const d of draws) {
      assert.ok(d.promptTokens >= SHAREGPT_FILTER.minLen && d.promptTokens <= SHAREGPT_FILTER.maxPromptLen);
      assert.ok(d.outputTokens >= SHAREGPT_FILTER.minLen);
      assert.ok(d.promptTokens + d.outputTokens <= SHAREGPT_FILTER.maxTotalLen);
    }
  });

  it('has a right tail: the longest answers run to several times the median', () => {
    const median = outputs[outputs.length >> 1]!;
    assert.ok(outputs.at(-1)! > 4 * median, `max ${outputs.at(-1)} median ${median}`);
    assert.ok(prompts.at(-1)! > 6 * prompts[prompts.length >> 1]!);
  });

  it('draws the same lengths from the same seed, and scales to other means', () => {
    const again = Array.from({ length: 5 }, createShareGptSampler(createRandom(1)));
    assert.deepEqual(again, draws.slice(0, 5));
    const chat = Array.from(
      { length: 5000 },
      createShareGptSampler(createRandom(2), { promptTokens: 230, outputTokens: 203 }),
    );
    assert.ok(Math.abs(mean(chat.map((d) => d.outputTokens)) / 203 - 1) < 0.05);
  });

  it('spreads answers wider under ignore_eos, at the same mean and within the same filter', () => {
    const whole = Array.from(
      { length: 20_000 },
      createShareGptSampler(createRandom(1), SHAREGPT_MEANS, SHAREGPT_IGNORE_EOS_SIGMA),
    );
    const answers = whole.map((d) => d.outputTokens).sort((a, b) => a - b);
    assert.ok(Math.abs(mean(answers) / SHAREGPT_MEANS.outputTokens - 1) < 0.03, `${mean(answers)}`);
    const ratio = (xs: number[]) => xs[xs.length >> 1]! / mean(xs);
    // Median ≈0.6 of the mean (vs ≈0.9 when the model stops on its own).
    assert.ok(ratio(answers) < 0.7 && ratio(outputs) > 0.85, `${ratio(answers)} ${ratio(outputs)}`);
    for (const d of whole) assert.ok(d.promptTokens + d.outputTokens <= SHAREGPT_FILTER.maxTotalLen);
  });
});
