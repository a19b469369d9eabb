/** Benchmark workloads: seeded, reproducible, and of the shape their parameters say. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createWorkload, WORKLOAD_KINDS } from '../bench/workloads.js';

const wordsOf = (s: string) => s.trim().split(/\s+/);

describe('bench workloads', () => {
  for (const kind of WORKLOAD_KINDS) {
    it(`${kind}: the same seed gives the same requests, another seed others`, () => {
      const a = createWorkload(kind, { seed: 9 });
      const b = createWorkload(kind, { seed: 9 });
      const c = createWorkload(kind, { seed: 10 });
      const reqs = (w: typeof a) => Array.from({ length: 40 }, (_, i) => w.request(i));
      assert.deepEqual(reqs(a), reqs(b));
      // Any order of access gives the same request for an index.
      assert.deepEqual(b.request(17), reqs(a)[17]);
      assert.notDeepEqual(reqs(a), reqs(c));
    });
  }

  it('shared-prefix: groups share exactly their system prompt, and lengths match the parameters', () => {
    const params = { groups: 5, promptsPerGroup: 3, systemPromptLen: 40, questionLen: 12, outputLen: 7 };
    const w = createWorkload('shared-prefix', { seed: 3, params });
    const reqs = Array.from({ length: 300 }, (_, i) => w.request(i));
    const systemOf = new Map<number, string>();
    const questionsOf = new Map<number, Set<string>>();
    for (const r of reqs) {
      assert.ok(r.prompt !== undefined && r.messages === undefined);
      assert.equal(r.maxTokens, 7);
      assert.equal(r.promptWords, 52);
      const words = wordsOf(r.prompt);
      assert.equal(words.length, 52);
      const group = r.group as number;
      assert.ok(group >= 0 && group < 5);
      const system = words.slice(0, 40).join(' ');
      const known = systemOf.get(group);
      if (known === undefined) systemOf.set(group, system);
      else assert.equal(system, known, 'one system prompt per group');
      const questions = questionsOf.get(group) ?? new Set();
      questions.add(words.slice(40).join(' '));
      questionsOf.set(group, questions);
    }
    assert.equal(systemOf.size, 5, 'every group appears');
    assert.equal(new Set(systemOf.values()).size, 5, 'groups have different system prompts');
    for (const [, qs] of questionsOf)
      assert.equal(qs.size, 3, 'promptsPerGroup distinct questions per group');
    assert.match(w.describe(), /5 groups × 3 prompts, system 40, question 12, output 7/);
  });

  it('multi-turn: a conversation grows turn by turn and keeps its session key', () => {
    const w = createWorkload('multi-turn', {
      seed: 4,
      params: { conversations: 3, turns: 4, systemPromptLen: 10, questionLen: 6, outputLen: 5 },
    });
    // Conversation 1's turns are requests 1, 4, 7, 10; request 13 starts conversation 4.
    const turns = [1, 4, 7, 10].map((i) => w.request(i));
    turns.forEach((r, t) => {
      const msgs = r.messages ?? [];
      assert.equal(msgs.length, 1 + 2 * t + 1, 'system + user/assistant pairs + the new user turn');
      assert.equal(msgs[0]?.role, 'system');
      assert.equal(msgs.at(-1)?.role, 'user');
      assert.equal(r.sessionKey, turns[0]?.sessionKey);
      assert.equal(r.promptWords, 10 + 6 * (t + 1) + 5 * t);
      if (t > 0) assert.deepEqual(msgs.slice(0, -2), turns[t - 1]?.messages, 'earlier turns are a prefix');
    });
    assert.notEqual(w.request(13).sessionKey, turns[0]?.sessionKey);
    assert.equal(w.request(13).messages?.length, 2);
  });

  it('long-prompt: lengths fall in the range; fixed: the given length', () => {
    const w = createWorkload('long-prompt', {
      seed: 2,
      params: { promptLen: 100, promptLenMax: 150, outputLen: 4 },
    });
    const lengths = Array.from({ length: 50 }, (_, i) => wordsOf(w.request(i).prompt ?? '').length);
    assert.ok(lengths.every((n) => n >= 100 && n <= 150));
    assert.ok(new Set(lengths).size > 5);
    const f = createWorkload('fixed', { seed: 2, params: { promptLen: 33, outputLen: 9 } });
    assert.equal(wordsOf(f.request(5).prompt ?? '').length, 33);
    assert.equal(f.request(5).maxTokens, 9);
    assert.notEqual(f.request(5).prompt, f.request(6).prompt);
  });

  it('sharegpt: ShareGPT-shaped lengths, long tail included, each request the length it says', () => {
    const w = createWorkload('sharegpt', { seed: 5 });
    const reqs = Array.from({ length: 2000 }, (_, i) => w.request(i));
    for (const r of reqs.slice(0, 50)) assert.equal(wordsOf(r.prompt ?? '').length, r.promptWords);
    const outs = reqs.map((r) => r.maxTokens).sort((a, b) => a - b);
    const mean = outs.reduce((a, b) => a + b, 0) / outs.length;
    assert.ok(Math.abs(mean / 179 - 1) < 0.06, `mean output ${mean}`);
    assert.ok(outs.at(-1)! > 3 * outs[outs.length >> 1]!, 'the longest answers run far past the median');
    assert.ok(reqs.every((r) => r.promptWords >= 4 && r.promptWords <= 1024 && r.maxTokens >= 4));
  });

  it('rejects impossible parameters', () => {
    assert.throws(() => createWorkload('shared-prefix', { params: { groups: 0 } }), /groups must be >= 1/);
    assert.throws(() => createWorkload('fixed', { params: { promptLen: 1.5 } }), /whole number/);
  });
});
