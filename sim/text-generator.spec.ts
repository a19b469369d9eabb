import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { renderChatTemplate } from './chat-template.js';
import { createTextGenerator, type GenerationKey } from './text-generator.js';
import { createTokenizer } from './tokenizer.js';

describe('text generator: autoregressive', () => {
  const tokenizer = createTokenizer();
  const generator = createTextGenerator(tokenizer);
  const take = (key: GenerationKey, n: number) => {
    const next = generator.start(key);
    return Array.from({ length: n }, (_, i) => next(i));
  };
  const punctuation = new Set([tokenizer.pieceId(','), tokenizer.pieceId('.')]);

  it('continues a prompt extended by the first k output tokens with exactly the rest of the output', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.option(fc.integer({ min: 0, max: 2 ** 31 }), { nil: undefined }),
        fc.integer({ min: 0, max: 60 }),
        (text, seed, k) => {
          const key: GenerationKey = {
            model: 'm',
            promptTokenIds: tokenizer.encode(text, { addSpecialTokens: true }),
            seed,
          };
          const full = take(key, 60);
          const rest = take({ ...key, promptTokenIds: [...key.promptTokenIds, ...full.slice(0, k)] }, 60 - k);
          assert.deepEqual(rest, full.slice(k));
        },
      ),
    );
  });

  it('depends on every earlier token, the model and the seed', () => {
    const key: GenerationKey = { model: 'm', promptTokenIds: tokenizer.encode('Once upon a time'), seed: 1 };
    const base = take(key, 32);
    const changedFirst = [...key.promptTokenIds];
    changedFirst[0] = changedFirst[0]! + 1;
    assert.notDeepEqual(take({ ...key, promptTokenIds: changedFirst }, 32), base);
    assert.notDeepEqual(take({ ...key, model: 'n' }, 32), base);
    assert.notDeepEqual(take({ ...key, seed: 2 }, 32), base);
    // A different token in the middle of the output changes what follows it.
    const forked = [...key.promptTokenIds, ...base.slice(0, 10)];
    forked[forked.length - 1] = base[10]!;
    assert.notDeepEqual(take({ ...key, promptTokenIds: forked }, 22), base.slice(10));
  });

  it('never puts punctuation first after a chat prompt, nor two in a row', () => {
    for (let i = 0; i < 50; i++) {
      const prompt = renderChatTemplate([{ role: 'user', content: `question ${i}` }]);
      const ids = take({ model: 'm', promptTokenIds: tokenizer.encode(prompt), seed: i }, 300);
      assert.ok(!punctuation.has(ids[0]!), 'no punctuation first');
      for (let j = 1; j < ids.length; j++) {
        assert.ok(
          !(punctuation.has(ids[j]!) && punctuation.has(ids[j - 1]!)),
          `no double punctuation at ${j}`,
        );
      }
      assert.ok(
        ids.some((id) => punctuation.has(id)),
        'some punctuation in 300 tokens',
      );
    }
    // The rule looks at the context: a prompt ending in punctuation is never followed by more.
    for (let seed = 0; seed < 200; seed++) {
      const [first] = take({ model: 'm', promptTokenIds: tokenizer.encode('It ended.'), seed }, 1);
      assert.ok(!punctuation.has(first!));
    }
  });

  it('asks for positions in order', () => {
    const next = generator.start({ model: 'm', promptTokenIds: [1, 2, 3], seed: undefined });
    next(0);
    assert.throws(() => next(2), RangeError);
  });
});
