import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSimpleCostModel } from './cost-model.js';
import {
  createEngine,
  type EngineObserver,
  type EngineOptions,
  type EngineOutput,
  MAX_STEPS_PER_TURN,
} from './engine.js';
import { createKvCacheManager } from './kv-cache.js';
import { createManualClock, type ManualClock } from './manual-clock.js';

function setup(overrides: Partial<EngineOptions> & { numBlocks?: number } = {}) {
  const clock = createManualClock();
  const events: string[] = [];
  const observer: EngineObserver = {
    onPrefixCacheQuery: (q, h) => events.push(`query:${q}:${h}`),
    onPreemption: () => events.push('preempt'),
  };
  const engine = createEngine({
    clock,
    kvCache: createKvCacheManager({ numBlocks: overrides.numBlocks ?? 1000, blockSize: 16 }),
    costModel: createSimpleCostModel({
      timeToFirstTokenMs: 20,
      interTokenLatencyMs: 10,
      prefillTimePerTokenMs: 0,
    }),
    maxNumSeqs: 8,
    maxNumBatchedTokens: 8192,
    timeScale: 1,
    observer,
    ...overrides,
  });
  return { clock, engine, events };
}

interface Recorded {
  outputs: EngineOutput[];
  times: number[];
}

function submit(
  engine: ReturnType<typeof createEngine>,
  clock: ManualClock,
  id: string,
  promptLength: number,
  maxTokens: number,
  checkStop?: (tokenId: number) => boolean,
) {
  const recorded: Recorded = { outputs: [], times: [] };
  const handle = engine.submit(
    {
      id,
      promptTokenIds: Array.from({ length: promptLength }, (_, i) => 1000 + i),
      maxTokens,
      nextToken: (index) => 5000 + index,
      ...(checkStop ? { checkStop } : {}),
    },
    {
      onToken(output) {
        recorded.outputs.push(output);
        recorded.times.push(clock.now());
      },
    },
  );
  return { handle, recorded };
}

describe('engine', () => {
  it('emits the first token after one prefill step and the rest one decode step apart', () => {
    const { clock, engine } = setup();
    const { recorded } = submit(engine, clock, 'a', 10, 4);
    clock.runAll();
    assert.deepEqual(recorded.times, [20, 30, 40, 50]);
    assert.deepEqual(
      recorded.outputs.map((o) => o.tokenId),
      [5000, 5001, 5002, 5003],
    );
    assert.deepEqual(
      recorded.outputs.map((o) => o.finishReason),
      [null, null, null, 'length'],
    );
    assert.deepEqual(engine.snapshot(), { running: 0, waiting: 0, kvCacheUsage: 0, numPreemptions: 0 });
  });

  it('batches concurrent requests into shared steps', () => {
    const { clock, engine } = setup();
    const a = submit(engine, clock, 'a', 10, 3);
    const b = submit(engine, clock, 'b', 10, 3);
    clock.runAll();
    assert.deepEqual(a.recorded.times, [20, 30, 40]);
    assert.deepEqual(b.recorded.times, [20, 30, 40]);
  });

  it('keeps requests beyond maxNumSeqs waiting', () => {
    const { clock, engine } = setup({ maxNumSeqs: 2 });
    const subs = ['a', 'b', 'c'].map((id) => submit(engine, clock, id, 10, 2));
    clock.advance(0);
    assert.equal(engine.snapshot().running, 2);
    assert.equal(engine.snapshot().waiting, 1);
    clock.runAll();
    for (const s of subs) assert.equal(s.recorded.outputs.length, 2);
    // The third request starts when the first two are done (after 30 ms), then prefills.
    assert.deepEqual(subs[2]!.recorded.times, [50, 60]);
  });

  it('prefills long prompts in chunks of the token budget', () => {
    const { clock, engine } = setup({ maxNumBatchedTokens: 16 });
    const { recorded } = submit(engine, clock, 'a', 40, 1);
    clock.runAll();
    // 16 + 16 + 8 tokens: three prefill steps before the first token.
    assert.deepEqual(recorded.times, [60]);
  });

  it('serves a repeated prompt prefix from the cache, all but the last block', () => {
    const { clock, engine, events } = setup();
    submit(engine, clock, 'a', 64, 2);
    clock.runAll();
    const { recorded } = submit(engine, clock, 'b', 64, 2);
    clock.runAll();
    assert.deepEqual(events, ['query:64:0', 'query:64:48']);
    assert.equal(recorded.outputs[0]?.numCachedTokens, 48);
  });

  it('preempts the newest request when blocks run out and still completes both', () => {
    // 4 blocks of 16 tokens; each request grows to 16 + 40 tokens = 4 blocks.
    const { clock, engine, events } = setup({ numBlocks: 4 });
    const a = submit(engine, clock, 'a', 16, 40);
    const b = submit(engine, clock, 'b', 16, 40);
    clock.runAll();
    assert.equal(a.recorded.outputs.length, 40);
    assert.equal(b.recorded.outputs.length, 40);
    assert.deepEqual(
      b.recorded.outputs.map((o) => o.tokenId),
      Array.from({ length: 40 }, (_, i) => 5000 + i),
    );
    assert.ok(engine.snapshot().numPreemptions >= 1);
    assert.ok(events.includes('preempt'));
    assert.equal(engine.snapshot().kvCacheUsage, 0);
  });

  it('ends a request early when checkStop says so', () => {
    const { clock, engine } = setup();
    const { recorded } = submit(engine, clock, 'a', 10, 100, (tokenId) => tokenId === 5002);
    clock.runAll();
    assert.equal(recorded.outputs.length, 3);
    assert.equal(recorded.outputs[2]?.finishReason, 'stop');
  });

  it('stops generating for an aborted request and frees its blocks', () => {
    const { clock, engine } = setup();
    const { handle, recorded } = submit(engine, clock, 'a', 40, 100);
    clock.advance(45);
    assert.equal(recorded.outputs.length, 3);
    assert.ok(engine.snapshot().kvCacheUsage > 0);
    handle.abort();
    clock.runAll();
    assert.equal(recorded.outputs.length, 3);
    assert.deepEqual(engine.snapshot(), { running: 0, waiting: 0, kvCacheUsage: 0, numPreemptions: 0 });
    assert.equal(clock.pending(), 0);
  });

  it('aborts everything on shutdown and refuses new work', () => {
    const { clock, engine } = setup();
    submit(engine, clock, 'a', 10, 100);
    clock.advance(25);
    engine.shutdown();
    assert.equal(clock.pending(), 0);
    assert.equal(engine.snapshot().running, 0);
    assert.throws(() => submit(engine, clock, 'b', 10, 1));
  });

  it('rejects a request that can never fit in the KV cache', () => {
    const { clock, engine } = setup({ numBlocks: 2 });
    assert.throws(() => submit(engine, clock, 'a', 20, 20), /KV blocks/);
  });

  it('stretches steps by the step time factor, read at each step', () => {
    let factor = 1;
    const { clock, engine } = setup({ stepTimeFactor: () => factor });
    const { recorded } = submit(engine, clock, 'a', 10, 4);
    clock.advance(30);
    factor = 3;
    clock.runAll();
    // The step that started at 30 keeps its 10 ms; the one starting at 40 is the first at 3x.
    assert.deepEqual(recorded.times, [20, 30, 40, 70]);
  });

  it('runs steps that are already due back to back in one turn, a bounded number of them', () => {
    const base = createManualClock();
    const perTurn: number[] = [];
    let emitted = 0;
    // Each timer callback is one turn of the event loop: count the tokens each one emits.
    const clock: ManualClock = {
      ...base,
      schedule: (delayMs, fn) =>
        base.schedule(delayMs, () => {
          const before = emitted;
          fn();
          perTurn.push(emitted - before);
        }),
    };
    const { engine } = setup({ clock, timeScale: 0 });
    const total = 3 * MAX_STEPS_PER_TURN;
    engine.submit(
      { id: 'a', promptTokenIds: [1, 2, 3], maxTokens: total, nextToken: (i) => 5000 + i },
      { onToken: () => emitted++ },
    );
    base.runAll();
    assert.equal(emitted, total);
    assert.ok(Math.max(...perTurn) === MAX_STEPS_PER_TURN, `tokens per turn: ${perTurn}`);
    assert.ok(perTurn.length >= 3, `tokens per turn: ${perTurn}`);
  });
});

describe('engine: V0 without chunked prefill', () => {
  it('prefills an arriving prompt in a step of its own, the decoding request skipping it', () => {
    const run = (separatePrefillSteps: boolean) => {
      const { clock, engine } = setup({ separatePrefillSteps });
      const a = submit(engine, clock, 'a', 16, 4);
      clock.advance(25);
      const b = submit(engine, clock, 'b', 16, 2);
      clock.runAll();
      return [a.recorded.times, b.recorded.times];
    };
    // b arrives while a's first decode runs (20→30). V0: b's prefill runs alone 30→50, then both decode.
    assert.deepEqual(run(true), [
      [20, 30, 60, 70],
      [50, 60],
    ]);
    // V1: a decodes in the step that prefills b, 30→50.
    assert.deepEqual(run(false), [
      [20, 30, 50, 60],
      [50, 60],
    ]);
  });
});

describe('engine: the API server in front of it', () => {
  // Intake 5 ms per request, 1 ms per streamed token; steps: 20 ms with prefill, 10 ms decoding.
  const frontEnd = { requestMs: 5, outputTokenMs: 1 };

  it('queues a burst at intake and delays each step’s tokens by their streaming, as the client sees them', () => {
    const { clock, engine } = setup({ frontEnd });
    const a = submit(engine, clock, 'a', 16, 2);
    const b = submit(engine, clock, 'b', 16, 2);
    clock.runAll();
    // a enters at 5, b at 10 (behind a). a prefills 5→25, its token is streamed 25→26.
    // b joins at the next step (25→45 with a's decode), streamed with a's second token: 45→47;
    // then b decodes alone, 45→55, streamed by 56.
    assert.deepEqual(a.recorded.times, [26, 47]);
    assert.deepEqual(b.recorded.times, [47, 56]);
  });

  it('stamps TTFT and e2e where the front end streams, from the hand-over; ITL and queue time on the engine', () => {
    const ttft: number[] = [];
    const itl: number[] = [];
    const finished: { arrivalMs: number; scheduledMs?: number; finishedMs: number }[] = [];
    const { clock, engine } = setup({
      frontEnd,
      observer: {
        onFirstToken: (_p, ms) => ttft.push(ms),
        onNextToken: (ms) => itl.push(ms),
        onRequestFinished: (s) => finished.push(s),
      },
    });
    submit(engine, clock, 'a', 16, 3);
    clock.runAll();
    // Handed over at 5; prefill 5→25, streamed by 26; decodes end at 35 and 45, streamed by 36 and 46.
    assert.deepEqual(ttft, [21]);
    assert.deepEqual(itl, [10, 10]);
    assert.deepEqual(
      finished.map((f) => [f.arrivalMs, f.scheduledMs, f.finishedMs]),
      [[5, 5, 46]],
    );
  });

  it('drops a request aborted at intake before the engine sees it, and tokens still streaming once aborted', () => {
    const finished: string[] = [];
    const { clock, engine } = setup({
      frontEnd,
      observer: { onRequestFinished: (s) => finished.push(s.finishReason) },
    });
    const a = submit(engine, clock, 'a', 16, 2);
    a.handle.abort();
    clock.runAll();
    assert.deepEqual(a.recorded.outputs, []);
    assert.deepEqual(finished, []);
    assert.equal(engine.snapshot().waiting, 0);

    const b = submit(engine, clock, 'b', 16, 5);
    // b is taken in 5 ms after it is sent; its first token is produced 20 ms later and streamed 1 ms after that.
    clock.advance(25.5);
    b.handle.abort();
    clock.runAll();
    assert.deepEqual(b.recorded.outputs, []);
    assert.deepEqual(finished, ['abort']);
  });

  it('merges tokens into a request’s chunk while it waits for the CPU, as vLLM’s output collector does', () => {
    const ttft: number[] = [];
    const { clock, engine } = setup({
      frontEnd: { ...frontEnd, chunkMs: 30 },
      observer: { onFirstToken: (_p, ms) => ttft.push(ms) },
    });
    const a = submit(engine, clock, 'a', 16, 4);
    clock.runAll();
    // Tokens leave the GPU at 25, 35, 45, 55. Token 0: handled 25→26, its chunk sent 26→56. The
    // handler takes tokens 1–3 at 56→57, 57→58, 58→59; token 1's chunk (queued at 57) runs 59→89
    // and carries tokens 2 and 3, which joined it while it waited.
    assert.deepEqual(a.recorded.times, [56, 89, 89, 89]);
    // vLLM stamps TTFT in the output handler, before the chunk is written.
    assert.deepEqual(ttft, [21]);
  });

  it('takes a burst in by stages, so its requests reach the engine together near the end of the intake', () => {
    const staged = setup({ frontEnd: { requestMs: 6, requestStages: 2, outputTokenMs: 0 } });
    const a = submit(staged.engine, staged.clock, 'a', 16, 1);
    const b = submit(staged.engine, staged.clock, 'b', 16, 1);
    staged.clock.runAll();
    // Stages of 3 ms: a, b, a, b. a is handed over at 9 (prefill 9→29), b at 12 (next step, 29→49).
    assert.deepEqual([a.recorded.times, b.recorded.times], [[29], [49]]);

    const whole = setup({ frontEnd: { requestMs: 6, outputTokenMs: 0 } });
    const c = submit(whole.engine, whole.clock, 'c', 16, 1);
    whole.clock.runAll();
    // One stage: the first request is handed over as soon as its own 6 ms are done.
    assert.deepEqual(c.recorded.times, [26]);
  });

  it('hands a step’s tokens over one step late with V0’s asynchronous output processor, at once when no step follows', () => {
    const run = (asyncOutputProcessing: boolean) => {
      const { clock, engine } = setup({ frontEnd, asyncOutputProcessing });
      const a = submit(engine, clock, 'a', 16, 3);
      clock.runAll();
      return a.recorded.times;
    };
    // Handed over at 5; prefill 5→25, decodes 25→35 and 35→45.
    assert.deepEqual(run(false), [26, 36, 46]);
    // Each step's token is processed during the next step and streamed when it ends: the first at 35→36,
    // the second at 45→46; no step follows the last, so it is processed at once, streamed 46→47.
    assert.deepEqual(run(true), [36, 46, 47]);
  });

  it('costs nothing at time scale 0', () => {
    const { clock, engine } = setup({ frontEnd, timeScale: 0 });
    const a = submit(engine, clock, 'a', 16, 3);
    clock.runAll();
    assert.deepEqual(a.recorded.times, [0, 0, 0]);
  });

  it('runs multi-step: no admission inside a decode run, its tokens streamed together at its end', () => {
    const { clock, engine } = setup({ numSchedulerSteps: 4 });
    const a = submit(engine, clock, 'a', 16, 6);
    clock.advance(25);
    const b = submit(engine, clock, 'b', 16, 1);
    clock.runAll();
    // a: prefill 0→20 (token at 20), then a run of 4 decode steps 20→60; b waits for the run to end.
    assert.deepEqual(a.recorded.times.slice(0, 5), [20, 30, 40, 50, 60]);
    assert.equal(b.recorded.times[0], 80);
  });
});
