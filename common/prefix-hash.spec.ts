import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalPrompt, prefixBlockHashes } from './prefix-hash.js';

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
});
