import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderChatTemplate } from './chat-template.js';
import { createTextGenerator, type GenerationKey } from './text-generator.js';
import { BOS_TOKEN, createTokenizer, SPECIAL_TOKENS } from './tokenizer.js';

describe('tokenizer', () => {
  const tokenizer = createTokenizer();

  it('splits words with their leading space, digits by three, punctuation runs', () => {
    assert.deepEqual(tokenizer.encodeWithPieces('Hello, world! 12345').pieces, [
      'Hello',
      ',',
      ' world',
      '!',
      ' 123',
      '45',
    ]);
  });

  it('is deterministic and adds BOS only when asked', () => {
    const ids = tokenizer.encode('San Francisco is a', { addSpecialTokens: true });
    assert.equal(ids[0], SPECIAL_TOKENS[BOS_TOKEN]);
    assert.deepEqual(ids.slice(1), tokenizer.encode('San Francisco is a'));
    assert.deepEqual(ids, createTokenizer().encode('San Francisco is a', { addSpecialTokens: true }));
  });

  it('counts a Llama-3 chat prompt like the real template does', () => {
    const text = renderChatTemplate([{ role: 'user', content: 'hi there' }]);
    // <|begin_of_text|> <|start_header_id|> user <|end_header_id|> \n\n hi ␣there <|eot_id|>
    // <|start_header_id|> assistant <|end_header_id|> \n\n
    assert.equal(tokenizer.encode(text).length, 12);
  });

  it('cuts very long words into chunks', () => {
    assert.deepEqual(tokenizer.encodeWithPieces(' internationalization').pieces, [
      ' internatio',
      'nalization',
    ]);
  });
});

describe('text generator', () => {
  const tokenizer = createTokenizer();
  const generator = createTextGenerator(tokenizer);
  const key: GenerationKey = { model: 'm', promptTokenIds: tokenizer.encode('a prompt'), seed: undefined };

  it('gives the same tokens for the same key and different ones for another prompt or seed', () => {
    const take = (k: GenerationKey) => {
      const next = generator.start(k);
      return Array.from({ length: 32 }, (_, i) => next(i));
    };
    assert.deepEqual(take(key), take({ ...key }));
    assert.notDeepEqual(take(key), take({ ...key, promptTokenIds: tokenizer.encode('another prompt') }));
    assert.notDeepEqual(take(key), take({ ...key, seed: 7 }));
  });

  it('produces text that tokenizes back to the same ids', () => {
    const next = generator.start(key);
    const ids = Array.from({ length: 200 }, (_, i) => next(i));
    const text = ids.map((id) => generator.decode(id)).join('');
    assert.ok(text.startsWith(' '));
    assert.deepEqual(tokenizer.encode(text), ids);
  });
});
