import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalPrompt, createPrefixHasher, MAX_HASHED_BLOCKS, prefixBlockHashes } from './prefix-hash.js';
import { createRandom } from './random.js';

describe('prefix hashes', () => {
  it('share exactly the blocks of a shared prefix', () => {
    const system = 'You are a helpful assistant for the billing team. '.repeat(10); // 500 chars
    const a = prefixBlockHashes(`${system}Question one about invoices and refunds?`);
    const b = prefixBlockHashes(`${system}A different question entirely, about taxes.`);
    const shared = Math.floor(system.length / 64);
    assert.deepEqual(a.slice(0, shared), b.slice(0, shared));
    assert.notEqual(a[shared], b[shared]);
  });

  it('chains: the same block text at a different position hashes differently', () => {
    const block = 'x'.repeat(64);
    const h = prefixBlockHashes(block + block);
    assert.equal(h.length, 2);
    assert.notEqual(h[0], h[1]);
  });

  it('hashes only full blocks, below 2^53, and at most maxBlocks', () => {
    assert.deepEqual(prefixBlockHashes('short'), []);
    const h = prefixBlockHashes('y'.repeat(64 * 10 + 5), 64, 4);
    assert.equal(h.length, 4);
    assert.ok(h.every((v) => Number.isSafeInteger(v) && v >= 0));
  });

  it('serializes chat messages with roles, so role changes change the hash', () => {
    const content = 'z'.repeat(100);
    const asUser = canonicalPrompt({ prompt: '', messages: [{ role: 'user', content }] });
    const asSystem = canonicalPrompt({ prompt: '', messages: [{ role: 'system', content }] });
    assert.notEqual(prefixBlockHashes(asUser)[0], prefixBlockHashes(asSystem)[0]);
    assert.equal(canonicalPrompt({ prompt: 'raw', messages: [] }), 'raw');
  });

  it('a hasher that remembers recent prompts gives the same hashes', () => {
    const random = createRandom(11);
    const int = (n: number) => Math.floor(random() * n);
    const hash = createPrefixHasher(4);
    // Prompts that share prefixes of any length with earlier ones: system
    // prompts, earlier turns, one character changed.
    const bases = Array.from({ length: 6 }, (_, i) => `system ${i}: ${'policy text '.repeat(5 + int(60))}`);
    const earlier: string[] = [];
    let reused = 0;
    for (let i = 0; i < 2000; i++) {
      let text: string;
      const r = random();
      if (r < 0.4) text = `${bases[int(bases.length)]}question ${i}`;
      else if (r < 0.7 && earlier.length > 0) {
        const e = earlier[int(earlier.length)] as string;
        text = e.slice(0, int(e.length + 1)) + (random() < 0.5 ? ` turn ${i}` : '');
      } else if (r < 0.8 && earlier.length > 0) {
        const e = earlier[int(earlier.length)] as string;
        const at = int(e.length);
        text = `${e.slice(0, at)}#${e.slice(at + 1)}`;
      } else text = 'x'.repeat(int(300)) + i;
      earlier.push(text);
      if (earlier.length > 50) earlier.shift();
      const blockChars = random() < 0.8 ? 64 : 16 + int(100);
      const expected = prefixBlockHashes(text, blockChars);
      const got = hash(text, blockChars);
      assert.deepEqual(got, expected, `prompt ${i}`);
      if (expected.length > 1) reused++;
      // What a caller does with its array is its own business.
      got.fill(0);
    }
    assert.ok(reused > 500);
    const long = 'y'.repeat(64 * (MAX_HASHED_BLOCKS + 10));
    assert.deepEqual(hash(long), prefixBlockHashes(long));
    assert.deepEqual(hash(`${long}z`), prefixBlockHashes(`${long}z`));
  });
});
