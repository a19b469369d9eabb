import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chatContentChunk, completionChunk, createChunkSerializer } from './openai-response.js';

describe('chunk serializer', () => {
  const identity = { id: 'cmpl-abc', created: 1_700_000_000, model: 'llama-3-8b-chat' };

  it('produces exactly what serialising the whole chunk produces', () => {
    const completion = createChunkSerializer((t) => completionChunk(identity, t, null, undefined));
    const chat = createChunkSerializer((t) => chatContentChunk(identity, t, null, undefined));
    for (const text of [' word', '', '"quoted"\n', 'ünïcødé \u2028', '\\']) {
      assert.equal(completion(text), JSON.stringify(completionChunk(identity, text, null, undefined)));
      assert.equal(chat(text), JSON.stringify(chatContentChunk(identity, text, null, undefined)));
    }
  });

  it('stays exact when the identity itself contains the marker', () => {
    const odd = { ...identity, id: 'cmpl-\u0000llmmesh-text\u0000' };
    const serialize = createChunkSerializer((t) => completionChunk(odd, t, null, undefined));
    assert.equal(serialize(' x'), JSON.stringify(completionChunk(odd, ' x', null, undefined)));
  });
});
