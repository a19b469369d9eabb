import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_BLOCK_CHARS, prefixBlockHashes } from '../../common/prefix-hash.js';
import { createPrefixIndex, type PrefixIndexDelta, prefixIndexCapacity } from './prefix-index.js';

/** A watcher's copy, maintained the way a router applies updates. */
function createCopy() {
  let set = new Set<number>();
  return {
    apply(u: PrefixIndexDelta | undefined) {
      if (!u) return;
      if (u.reset) set = new Set();
      for (const h of u.removed) set.delete(h);
      for (const h of u.added) set.add(h);
    },
    sorted: () => [...set].sort((a, b) => a - b),
  };
}
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

describe('prefix index', () => {
  it('holds the chained hashes of served prompts and matches shared prefixes block by block', () => {
    const index = createPrefixIndex({ capacity: 1000 });
    const system = 'You are a helpful assistant. '.repeat(10); // 290 chars: 4 full blocks
    index.record(prefixBlockHashes(`${system}What is the capital of France?`));
    const other = prefixBlockHashes(`${system}Tell me a joke about penguins, please, now.`);
    assert.equal(index.matchedBlocks(other), 4, 'the shared system prompt matches, the rest does not');
    assert.equal(index.matchedBlocks(prefixBlockHashes('unrelated '.repeat(30))), 0);
    assert.equal(index.blockChars, DEFAULT_BLOCK_CHARS);
  });

  it('evicts least recently used blocks, the end of a chain before its start', () => {
    const index = createPrefixIndex({ capacity: 6 });
    const a = prefixBlockHashes('a'.repeat(64 * 4));
    const b = prefixBlockHashes('b'.repeat(64 * 4));
    index.record(a);
    index.record(b); // 8 blocks > 6: the two oldest go, which are a's last two
    assert.equal(index.size, 6);
    assert.equal(index.matchedBlocks(a), 2, "a's prefix survives, its tail was evicted");
    assert.equal(index.matchedBlocks(b), 4);
    index.record(a.slice(0, 2)); // touching a's prefix makes it most recent
    index.record(prefixBlockHashes('c'.repeat(64 * 2)));
    assert.equal(index.matchedBlocks(a), 2);
    assert.equal(index.matchedBlocks(b), 2, "b's tail went first");
  });

  it('shrinking the capacity evicts at once and notifies listeners', () => {
    const index = createPrefixIndex({ capacity: 10 });
    let changes = 0;
    index.onChange(() => changes++);
    index.record(prefixBlockHashes('x'.repeat(64 * 8)));
    assert.equal(changes, 1);
    index.setCapacity(3);
    assert.equal(index.size, 3);
    assert.equal(changes, 2);
  });

  it('derives its capacity from the KV cache: blocks × block size × 4 chars / 64', () => {
    assert.equal(prefixIndexCapacity(26_300, 16), 26_300);
    assert.equal(prefixIndexCapacity(2452, 16), 2452);
    assert.equal(prefixIndexCapacity(15_998, 4), 3999);
    assert.equal(prefixIndexCapacity(100, 16, 2), 50);
  });

  it('a tracker sends the whole index first, then only net changes', () => {
    const index = createPrefixIndex({ capacity: 4 });
    const a = prefixBlockHashes('a'.repeat(64 * 2));
    index.record(a);
    const t = index.track();
    assert.deepEqual(t.take(), { reset: true, added: [a[1], a[0]], removed: [], blockChars: 64 });
    assert.equal(t.take(), undefined, 'nothing changed');
    const b = prefixBlockHashes('b'.repeat(64 * 3)); // evicts a[1]
    index.record(b);
    const u = t.take();
    assert.equal(u?.reset, false);
    assert.deepEqual(sorted(u?.added ?? []), sorted(b));
    assert.deepEqual(u?.removed, [a[1]]);
  });

  it('a block evicted and re-added between two updates cancels out', () => {
    const index = createPrefixIndex({ capacity: 2 });
    const a = prefixBlockHashes('a'.repeat(64 * 2));
    index.record(a);
    const t = index.track();
    t.take();
    index.record(prefixBlockHashes('b'.repeat(64 * 2))); // a evicted
    index.record(a); // a back, b evicted
    assert.equal(t.take(), undefined, 'the watcher never saw b, and still has a');
  });

  it('a watcher that skips updates converges to the same index as one that takes every update', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            prompt: fc.integer({ min: 0, max: 12 }),
            blocks: fc.integer({ min: 1, max: 6 }),
            fastTakes: fc.boolean(),
            slowTakes: fc.boolean(),
          }),
          { maxLength: 60 },
        ),
        fc.integer({ min: 1, max: 20 }),
        (steps, capacity) => {
          const index = createPrefixIndex({ capacity });
          const fast = index.track();
          const slow = index.track();
          const fastCopy = createCopy();
          const slowCopy = createCopy();
          for (const s of steps) {
            index.record(prefixBlockHashes(String(s.prompt).repeat(64 * s.blocks)));
            if (s.fastTakes) fastCopy.apply(fast.take());
            if (s.slowTakes) slowCopy.apply(slow.take());
          }
          fastCopy.apply(fast.take());
          slowCopy.apply(slow.take());
          const truth = sorted(index.snapshot());
          assert.deepEqual(fastCopy.sorted(), truth);
          assert.deepEqual(slowCopy.sorted(), truth);
        },
      ),
    );
  });

  it('a backlog larger than the index is sent as a reset', () => {
    const index = createPrefixIndex({ capacity: 2 });
    index.record(prefixBlockHashes('a'.repeat(64 * 2)));
    const t = index.track();
    t.take();
    // The watcher holds a; after b and c it must drop a's 2 blocks and add c's 2: 4 > 2.
    index.record(prefixBlockHashes('b'.repeat(64 * 2)));
    index.record(prefixBlockHashes('c'.repeat(64 * 2)));
    const u = t.take();
    assert.equal(u?.reset, true);
    assert.deepEqual(sorted(u?.added ?? []), sorted(index.snapshot()));
  });

  it('a closed tracker stops accumulating', () => {
    const index = createPrefixIndex({ capacity: 100 });
    const t = index.track();
    t.take();
    t.close();
    index.record(prefixBlockHashes('z'.repeat(64 * 3)));
    assert.equal(t.pending, 0);
  });
});
