import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createKvCacheManager, extendBlockHashes } from './kv-cache.js';

const tokens = (n: number, offset = 0) => Array.from({ length: n }, (_, i) => offset + i);

function hashesOf(values: number[]): number[] {
  const hashes: number[] = [];
  extendBlockHashes(hashes, values, 16);
  return hashes;
}

describe('kv cache', () => {
  it('hashes full blocks only, chained so equal blocks after different prefixes differ', () => {
    assert.equal(hashesOf(tokens(47)).length, 2);
    const a = hashesOf([...tokens(16, 0), ...tokens(16, 100)]);
    const b = hashesOf([...tokens(16, 50), ...tokens(16, 100)]);
    assert.notEqual(a[1], b[1]);
    assert.deepEqual(hashesOf(tokens(32)), hashesOf(tokens(32)));
  });

  it('allocates blocks as a request grows and reports usage', () => {
    const kv = createKvCacheManager({ numBlocks: 10 });
    const table: number[] = [];
    assert.ok(kv.allocate(table, 17));
    assert.equal(table.length, 2);
    assert.ok(kv.allocate(table, 32));
    assert.equal(table.length, 2);
    assert.equal(kv.usage(), 0.2);
    assert.equal(kv.allocate(table, 16 * 11), false);
    assert.equal(table.length, 2, 'a failed allocation changes nothing');
    kv.free(table);
    assert.equal(kv.usage(), 0);
    assert.equal(table.length, 0);
  });

  it('finds committed blocks after their owner freed them, until they are reused', () => {
    const kv = createKvCacheManager({ numBlocks: 4 });
    const prompt = tokens(48);
    const hashes = hashesOf(prompt);
    const first: number[] = [];
    kv.allocate(first, 48);
    for (const [i, h] of hashes.entries()) kv.commit(first[i]!, h);
    kv.free(first);

    assert.equal(kv.findCachedPrefix(hashes, 3).length, 3);
    assert.equal(kv.findCachedPrefix(hashes, 2).length, 2);
    assert.equal(kv.findCachedPrefix(hashesOf(tokens(48, 7)), 3).length, 0);

    // Taking the cached prefix plus one new block uses all four blocks.
    const second: number[] = [];
    const hit = kv.findCachedPrefix(hashes, 3);
    assert.ok(kv.allocate(second, 64, hit));
    assert.deepEqual(second.slice(0, 3), hit);
    assert.equal(kv.numFreeBlocks(), 0);
    kv.free(second);

    // A request with other content evicts the cached blocks, oldest first.
    const other: number[] = [];
    kv.allocate(other, 64);
    assert.equal(kv.findCachedPrefix(hashes, 3).length, 0);
  });

  it('refuses a prefix hit when the new blocks it also needs are not free', () => {
    const kv = createKvCacheManager({ numBlocks: 3 });
    const hashes = hashesOf(tokens(32));
    const owner: number[] = [];
    kv.allocate(owner, 32);
    for (const [i, h] of hashes.entries()) kv.commit(owner[i]!, h);
    kv.free(owner);
    const hit = kv.findCachedPrefix(hashes, 2);
    assert.equal(kv.allocate([], 16 * 4, hit), false);
    assert.equal(kv.numFreeBlocks(), 3);
  });

  it('does not cache when prefix caching is off', () => {
    const kv = createKvCacheManager({ numBlocks: 4, enablePrefixCaching: false });
    const hashes = hashesOf(tokens(32));
    const table: number[] = [];
    kv.allocate(table, 32);
    for (const [i, h] of hashes.entries()) kv.commit(table[i]!, h);
    kv.free(table);
    assert.deepEqual(kv.findCachedPrefix(hashes, 2), []);
  });
});
