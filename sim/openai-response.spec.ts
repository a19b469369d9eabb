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

  it('splices token ids too when the chunk carries them (return_token_ids)', () => {
    const completion = createChunkSerializer((t, ids) =>
      completionChunk(identity, t, null, undefined, { prompt: null, output: ids }),
    );
    const chat = createChunkSerializer((t, ids) => chatContentChunk(identity, t, null, undefined, ids));
    for (const ids of [[42], [1, 128009], []]) {
      const parsed = JSON.parse(completion(' word', ids));
      assert.deepEqual(parsed.choices[0].token_ids, ids);
      assert.equal(parsed.choices[0].prompt_token_ids, null);
      assert.equal(
        completion(' word', ids),
        JSON.stringify(completionChunk(identity, ' word', null, undefined, { prompt: null, output: ids })),
      );
      assert.equal(chat('"x"', ids), JSON.stringify(chatContentChunk(identity, '"x"', null, undefined, ids)));
    }
  });

  it('stays exact when the identity itself contains the marker', () => {
    const odd = { ...identity, id: 'cmpl-\u0000llmmesh-text\u0000' };
    const serialize = createChunkSerializer((t) => completionChunk(odd, t, null, undefined));
    assert.equal(serialize(' x'), JSON.stringify(completionChunk(odd, ' x', null, undefined)));
  });
});
