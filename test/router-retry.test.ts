/**
 * Retries, deadlines and the retry budget, against real gRPC Engine servers
 * on loopback whose failures the test chooses per request.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { GenerateChunk, MeshError } from '../client/index.js';
import { Status } from '../common/errors.js';
import { type EngineStub, startEngineStub } from './helpers/engine-stub.js';
import { type RouterHarness, startRouterHarness } from './helpers/router-harness.js';

const MODEL = 'm';
const routes = (extra = '') => `models:
  ${MODEL}:
    versions: { v1: { weight: 1 } }
    profile: rr
profiles:
  rr: { filters: [ready], scorers: [], picker: round-robin }
breaker: { volume_threshold: 1000000, consecutive_failures: 0 }
${extra}`;

async function collect(iter: AsyncIterable<GenerateChunk>): Promise<GenerateChunk[]> {
  const out: GenerateChunk[] = [];
  for await (const c of iter) out.push(c);
  return out;
}

describe('retries before the first token', () => {
  let stubs: EngineStub[];
  let h: RouterHarness;
  before(async () => {
    stubs = await Promise.all([0, 1, 2].map(() => startEngineStub({ model: MODEL, version: 'v1' })));
    h = await startRouterHarness({
      endpoints: stubs.map((s) => s.address),
      // The first-token timeout tells a stalled stub from a healthy one: 2 s,
      // as a loaded machine can delay a healthy first token past 200 ms.
      yaml: routes(
        'upstream: { max_attempts: 3, first_token_timeout_ms: 2000, retry_budget: { ratio: 1, min_retries: 100 } }\n',
      ),
    });
    await h.waitReady(3);
  });
  beforeEach(() => {
    for (const s of stubs) s.behave = (req) => ({ kind: 'ok', tokens: req.sampling?.maxTokens || 4 });
  });
  after(async () => {
    await h.close();
    for (const s of stubs) await s.close();
  });

  for (const [name, behaviour] of [
    ['UNAVAILABLE', { kind: 'fail', code: Status.UNAVAILABLE }],
    ['INTERNAL (engine 500)', { kind: 'fail', code: Status.INTERNAL }],
    ['a stall past the first-token timeout', { kind: 'stall' }],
  ] as const) {
    it(`a failure before the first token is retried invisibly on another endpoint: ${name}`, async () => {
      const bad = stubs[0]!;
      bad.behave = () => behaviour;
      const start = h.traces.length;
      for (let i = 0; i < 6; i++) {
        const chunks = await collect(
          h.client.generateStream({ model: MODEL, prompt: `p${i}`, sampling: { maxTokens: 5 } }),
        );
        assert.equal(chunks.length, 5);
        assert.equal(chunks.at(-1)?.usage?.completionTokens, 5);
      }
      const traces = h.traces.slice(start);
      const retried = traces.filter((t) => t.attempts.length === 2);
      assert.ok(retried.length >= 1, 'the bad endpoint was hit and retried');
      for (const t of retried) {
        assert.equal(t.attempts[0]?.endpoint, bad.address);
        assert.equal(t.attempts[0]?.outcome, 'retried');
        assert.notEqual(t.attempts[1]?.endpoint, bad.address);
        assert.equal(t.attempts[1]?.outcome, 'ok');
      }
      assert.equal(bad.openStreams(), 0, 'the failed attempt was cancelled upstream');
    });
  }

  it('a failure after the first token moves the stream on, up to the migration limit, then ends UNAVAILABLE saying why', async () => {
    for (const s of stubs)
      s.behave = () => ({ kind: 'fail', code: Status.INTERNAL, message: 'engine crashed', afterTokens: 3 });
    const seen: GenerateChunk[] = [];
    const call = h.client.generateStream({ model: MODEL, prompt: 'crash', sampling: { maxTokens: 10 } });
    await assert.rejects(
      (async () => {
        for await (const c of call) seen.push(c);
      })(),
      (e: MeshError) => {
        assert.equal(e.code, Status.UNAVAILABLE);
        assert.match(e.message, /after 9 tokens were delivered/);
        assert.match(e.message, /engine crashed/);
        assert.match(e.message, /migration limit \(2\) reached/);
        assert.equal(e.message.match(/engine crashed/g)?.length, 1, 'the cause once');
        return true;
      },
    );
    assert.equal(seen.length, 9);
    const t = h.traces.at(-1);
    assert.deepEqual(
      t?.attempts.map((a) => [a.outcome, a.continuation]),
      [
        ['migrated', undefined],
        ['migrated', 'text'],
        ['failed', 'text'],
      ],
    );
    assert.equal(new Set(t?.attempts.map((a) => a.endpoint)).size, 3, 'each on another endpoint');
    // Each continuation carried what the client had already seen.
    const continued = stubs
      .flatMap((s) => s.requests)
      .filter((r) => r.request.prompt === 'crash' && r.request.continuation);
    assert.deepEqual(continued.map((r) => r.request.continuation?.completionTokens).sort(), [3, 6]);
  });

  it('a pod that fails after its final chunk has delivered everything: the stream completes, nothing moves', async () => {
    for (const s of stubs)
      s.behave = () => ({
        kind: 'fail',
        code: Status.UNAVAILABLE,
        message: 'draining',
        afterTokens: 4,
        finished: true,
      });
    const chunks = await collect(
      h.client.generateStream({ model: MODEL, prompt: 'done already', sampling: { maxTokens: 4 } }),
    );
    assert.equal(chunks.length, 4);
    assert.equal(chunks.at(-1)?.finishReason, 'FINISH_REASON_LENGTH');
    assert.deepEqual(
      h.traces.at(-1)?.attempts.map((a) => a.outcome),
      ['ok'],
    );
  });

  it('a pod that fails between its last token and its finish: the router ends the stream at max_tokens', async () => {
    for (const s of stubs)
      s.behave = () => ({ kind: 'fail', code: Status.INTERNAL, message: 'engine crashed', afterTokens: 4 });
    const chunks = await collect(
      h.client.generateStream({ model: MODEL, prompt: 'all but the end', sampling: { maxTokens: 4 } }),
    );
    assert.equal(chunks.filter((c) => c.text).length, 4);
    const last = chunks.at(-1);
    assert.equal(last?.finishReason, 'FINISH_REASON_LENGTH');
    assert.equal(last?.usage?.completionTokens, 4);
    assert.equal(h.traces.at(-1)?.attempts.length, 1, 'nothing left to generate elsewhere');
  });

  it('never retries a client fault', async () => {
    for (const s of stubs)
      s.behave = () => ({ kind: 'fail', code: Status.INVALID_ARGUMENT, message: 'prompt: too long' });
    await assert.rejects(
      h.client.generate({ model: MODEL, prompt: 'bad' }),
      (e: MeshError) => e.code === Status.INVALID_ARGUMENT,
    );
    assert.equal(h.traces.at(-1)?.attempts.length, 1);
  });

  it('gives up after max_attempts with the last error', async () => {
    for (const s of stubs)
      s.behave = () => ({ kind: 'fail', code: Status.UNAVAILABLE, message: 'overloaded' });
    await assert.rejects(
      h.client.generate({ model: MODEL, prompt: 'doomed' }),
      (e: MeshError) => e.code === Status.UNAVAILABLE && /overloaded/.test(e.message),
    );
    const t = h.traces.at(-1);
    assert.equal(t?.attempts.length, 3);
    assert.equal(new Set(t?.attempts.map((a) => a.endpoint)).size, 3, 'each attempt on a different endpoint');
  });
});

describe('deadlines', () => {
  it('passes the remaining time on, uses the model default when the client sets none, and never retries past it', async () => {
    const stubs = await Promise.all([0, 1].map(() => startEngineStub({ model: MODEL, version: 'v1' })));
    const h = await startRouterHarness({
      endpoints: stubs.map((s) => s.address),
      yaml: routes('upstream: { first_token_timeout_ms: 60000 }\n').replace(
        '    profile: rr\n',
        '    profile: rr\n    deadline_ms: 400\n',
      ),
    });
    try {
      await h.waitReady(2);
      // The client's deadline travels to the engine.
      const before = Date.now();
      await h.client.generate({ model: MODEL, prompt: 'hi' }, { timeoutMs: 5_000 });
      const seen = stubs.flatMap((s) => s.requests).at(-1);
      assert.ok(
        seen?.deadline && seen.deadline > before + 4_000 && seen.deadline <= before + 5_100,
        String(seen?.deadline),
      );
      // No client deadline: the model's (400 ms) applies and is passed on.
      const at = Date.now();
      await h.client.generate({ model: MODEL, prompt: 'hi again' });
      const last = stubs.flatMap((s) => s.requests).at(-1);
      assert.ok(last?.deadline && last.deadline <= at + 500, `deadline ${last?.deadline} vs ${at}`);
      // A stall: the first endpoint gets half the time left (it may be hung),
      // the last one the rest; then DEADLINE_EXCEEDED, never a retry past it.
      for (const s of stubs) s.behave = () => ({ kind: 'stall' });
      await assert.rejects(
        h.client.generate({ model: MODEL, prompt: 'stall' }),
        (e: MeshError) => e.code === Status.DEADLINE_EXCEEDED,
      );
      const t = h.traces.at(-1);
      assert.equal(t?.deadlineFromClient, false);
      assert.deepEqual(
        t?.attempts.map((a) => [a.outcome, a.kind]),
        [
          ['retried', 'first-token-timeout'],
          ['failed', 'deadline'],
        ],
      );
      assert.equal(t?.status, 'DEADLINE_EXCEEDED');
    } finally {
      await h.close();
      for (const s of stubs) await s.close();
    }
  });
});

describe('retry budget', () => {
  it('caps a retry storm: with every endpoint failing, retries stay within the budget', async () => {
    const stubs = await Promise.all([0, 1, 2].map(() => startEngineStub({ model: MODEL, version: 'v1' })));
    for (const s of stubs) s.behave = () => ({ kind: 'fail', code: Status.UNAVAILABLE, message: 'down' });
    const h = await startRouterHarness({
      endpoints: stubs.map((s) => s.address),
      yaml: routes(
        'upstream: { max_attempts: 3, retry_budget: { ratio: 0.2, min_retries: 2, window_ms: 600000 } }\n',
      ),
    });
    try {
      await h.waitReady(3);
      const requests = 50;
      for (let i = 0; i < requests; i++) {
        await assert.rejects(
          h.client.generate({ model: MODEL, prompt: `storm ${i}` }),
          (e: MeshError) => e.code === Status.UNAVAILABLE,
        );
      }
      const attempts = stubs.reduce((n, s) => n + s.requests.length, 0);
      // Without a budget: 150 attempts. With it: 50 + at most 20 % of 50.
      assert.ok(attempts >= requests && attempts <= requests + 10, `attempts ${attempts}`);
      assert.match(await h.metric('llm_router_retry_budget_exhausted_total'), /model="m"\} [1-9]/);
      assert.match(h.traces.at(-1)?.status ?? '', /UNAVAILABLE/);
      assert.deepEqual(h.router.status().retryBudget, {
        requests,
        retries: attempts - requests,
        allowed: 10,
      });
    } finally {
      await h.close();
      for (const s of stubs) await s.close();
    }
  });
});
