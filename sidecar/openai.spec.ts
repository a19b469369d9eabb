import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Status } from '../common/errors.js';
import type { GenerateRequest__Output } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import {
  continuationMode,
  continuedUsage,
  parseStreamChunk,
  remainingMaxTokens,
  tokenizeBody,
  toOpenAiRequest,
} from './openai.js';

const request = (over: Partial<GenerateRequest__Output> = {}): GenerateRequest__Output => ({
  model: 'm',
  prompt: 'Once upon a time',
  messages: [],
  sampling: { maxTokens: 100, temperature: 0, topP: 0.9, seed: 7, stop: ['\n\n'] },
  routing: null,
  requestId: 'r1',
  continuation: null,
  ...over,
});
const chat = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
];

describe('OpenAI requests', () => {
  it('asks for token ids and keeps the sampling parameters', () => {
    const { path, body } = toOpenAiRequest(request(), 'served');
    assert.equal(path, '/v1/completions');
    assert.deepEqual(body, {
      model: 'served',
      stream: true,
      stream_options: { include_usage: true },
      return_token_ids: true,
      max_tokens: 100,
      temperature: 0,
      top_p: 0.9,
      seed: 7,
      stop: ['\n\n'],
      request_id: 'r1',
      prompt: 'Once upon a time',
    });
  });

  it('continues exactly from token ids: prompt ids then delivered ids on /v1/completions, budget reduced', () => {
    const cont = { tokenIds: [11, 12, 13], text: ' there was', completionTokens: 3 };
    for (const req of [
      request({ continuation: cont }),
      request({ prompt: '', messages: chat, continuation: cont }),
    ]) {
      assert.equal(continuationMode(req), 'token_ids');
      const { path, body } = toOpenAiRequest(req, 'served', [1, 2, 3, 4]);
      assert.equal(path, '/v1/completions');
      assert.deepEqual(body.prompt, [1, 2, 3, 4, 11, 12, 13]);
      assert.equal(body.max_tokens, 97);
      assert.equal(body.seed, 7);
      assert.deepEqual(body.stop, ['\n\n']);
      assert.equal(body.messages, undefined);
    }
  });

  it('continues from text when there are no ids: prompt + text, or an assistant message the engine continues', () => {
    const cont = { tokenIds: [], text: ' there was', completionTokens: 3 };
    const completion = toOpenAiRequest(request({ continuation: cont }), 'served');
    assert.equal(continuationMode(request({ continuation: cont })), 'text');
    assert.equal(completion.body.prompt, 'Once upon a time there was');
    assert.equal(completion.body.max_tokens, 97);
    const c = toOpenAiRequest(request({ prompt: '', messages: chat, continuation: cont }), 'served');
    assert.equal(c.path, '/v1/chat/completions');
    assert.deepEqual(c.body.messages, [...chat, { role: 'assistant', content: ' there was' }]);
    assert.equal(c.body.continue_final_message, true);
    assert.equal(c.body.add_generation_prompt, false);
  });

  it('keeps an unlimited budget unlimited, and refuses a spent one', () => {
    assert.equal(remainingMaxTokens(0, 50), 0);
    assert.equal(remainingMaxTokens(10, 9), 1);
    assert.throws(
      () => remainingMaxTokens(10, 10),
      (e: { code: Status }) => e.code === Status.INVALID_ARGUMENT,
    );
    const body = toOpenAiRequest(
      request({
        sampling: { maxTokens: 0, stop: [] },
        continuation: { tokenIds: [], text: 'x', completionTokens: 5 },
      }),
      's',
    ).body;
    assert.equal(body.max_tokens, undefined);
  });

  it('tokenizes the prompt as the engine renders it for generation', () => {
    assert.deepEqual(tokenizeBody(request(), 's'), {
      model: 's',
      prompt: 'Once upon a time',
      add_special_tokens: true,
    });
    assert.deepEqual(tokenizeBody(request({ prompt: '', messages: chat }), 's'), {
      model: 's',
      messages: chat,
      add_generation_prompt: true,
    });
  });

  it('reports the usage of the whole generation', () => {
    const engine = { promptTokens: 23, completionTokens: 40, cachedTokens: 23 };
    const exact = continuedUsage(
      engine,
      { tokenIds: [1, 2, 3], text: 'abc', completionTokens: 3 },
      'token_ids',
    );
    assert.deepEqual(exact, { promptTokens: 20, completionTokens: 43, cachedTokens: 20 });
    const text = continuedUsage(engine, { tokenIds: [], text: 'abc', completionTokens: 3 }, 'text');
    assert.deepEqual(text, { promptTokens: 20, completionTokens: 43, cachedTokens: 20 });
    const known = continuedUsage(engine, { tokenIds: [], text: 'abc', completionTokens: 3 }, 'text', 19);
    assert.equal(known.promptTokens, 19);
  });

  it('reads token ids from stream chunks, and ignores malformed ones', () => {
    assert.deepEqual(parseStreamChunk({ choices: [{ text: ' a', token_ids: [264] }] })?.tokenIds, [264]);
    assert.deepEqual(
      parseStreamChunk({ choices: [{ delta: { content: ' a' }, token_ids: [264, 7] }] })?.tokenIds,
      [264, 7],
    );
    assert.equal(parseStreamChunk({ choices: [{ text: ' a', token_ids: null }] })?.tokenIds, undefined);
    assert.equal(parseStreamChunk({ choices: [{ text: ' a', token_ids: ['x'] }] })?.tokenIds, undefined);
  });
});
