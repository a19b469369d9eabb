import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPrefixIndex } from './prefix-index.js';

const update = (u: { reset?: boolean; added?: number[]; removed?: number[]; blockChars?: number }) => ({
  reset: u.reset ?? false,
  added: u.added ?? [],
  removed: u.removed ?? [],
  blockChars: u.blockChars ?? 64,
});

describe('prefix index copy', () => {
  it('applies deltas in order; reset replaces the copy', () => {
    const index = createPrefixIndex();
    index.apply(update({ reset: true, added: [1, 2, 3] }));
    assert.equal(index.matchLength([1, 2, 3, 4]), 3);
    index.apply(update({ added: [4], removed: [2] }));
    assert.equal(index.size, 3);
    assert.equal(index.matchLength([1, 2, 3, 4]), 1, 'a hole ends the prefix');
    index.apply(update({ added: [2] }));
    assert.equal(index.matchLength([1, 2, 3, 4]), 4);
    index.apply(update({ reset: true, added: [9] }));
    assert.equal(index.matchLength([1, 2]), 0);
    assert.ok(index.has(9));
  });

  it('a block evicted and re-cached within one update stays', () => {
    const index = createPrefixIndex();
    index.apply(update({ reset: true, added: [1] }));
    index.apply(update({ removed: [1], added: [1] }));
    assert.ok(index.has(1));
  });

  it('a new block size discards hashes of the old one; clear forgets everything', () => {
    const index = createPrefixIndex();
    index.apply(update({ reset: true, added: [1, 2], blockChars: 64 }));
    index.apply(update({ added: [7], blockChars: 128 }));
    assert.equal(index.blockChars, 128);
    assert.deepEqual([index.has(1), index.has(7)], [false, true]);
    index.clear();
    assert.equal(index.size, 0);
    assert.equal(index.blockChars, 0);
  });
});
