/**
 * Streams survive failing pods: real simulators and sidecars (processes
 * where a test sends real signals) and the simulator's fault injection, a real router in front. Every
 * stream must end complete, with text byte-identical to an undisturbed run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import {
  type FailoverPod,
  type FrontRouter,
  startFailoverPods,
  startFrontRouter,
  stopFailoverPods,
} from './helpers/failover-pods.js';
import { MODEL } from './helpers/mesh.js';

/** The undisturbed text of each prompt, from a simulator of its own. */
async function referenceTexts(
  prompts: readonly string[],
  maxTokens: number,
  stop: string[] = [],
): Promise<string[]> {
  const sim: SimServer = createSimServer({ servedModelName: MODEL, timeScale: 0 });
  const { url } = await sim.listen(0, '127.0.0.1');
  try {
    return await Promise.all(
      prompts.map(async (prompt) => {
        const res = await fetch(`${url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: MODEL, prompt, max_tokens: maxTokens, temperature: 0, stop }),
        });
        const body = (await res.json()) as { choices: Array<{ text: string }> };
        return body.choices[0]?.text ?? '';
      }),
    );
  } finally {
    await sim.close();
  }
}

interface StreamResult {
  text: string;
  chunks: GenerateChunk__Output[];
  firstEndpoint: string;
  error?: Error;
}

/**
 * Runs one stream, calling `onChunk(endpoint, n)` after each chunk (n = tokens
 * so far) so a test can inject a fault when streams reach a point. Tokens, not
 * chunks: a reader that falls behind (a busy test process) gets the chunks
 * waiting for it merged into one.
 */
async function stream(
  front: FrontRouter,
  prompt: string,
  maxTokens: number,
  onChunk: (endpoint: string, n: number) => void = () => {},
  // 300 tokens take 3 s on an idle machine; a loaded one runs this process's
  // simulators ten times slower. The deadline only bounds a lost stream.
  timeoutMs = 180_000,
  stop: string[] = [],
): Promise<StreamResult> {
  const call = front.client.generateStream(
    { model: MODEL, prompt, sampling: { maxTokens, temperature: 0, stop } },
    { timeoutMs },
  );
  const result: StreamResult = { text: '', chunks: [], firstEndpoint: '' };
  let tokens = 0;
  try {
    for await (const c of call) {
      if (!result.firstEndpoint) result.firstEndpoint = (await call.servedBy).endpoint;
      result.chunks.push(c);
      result.text += c.text;
      tokens += Math.max(1, c.tokenIds.length);
      onChunk(result.firstEndpoint, tokens);
    }
  } catch (err) {
    result.error = err as Error;
  }
  return result;
}

describe('stream migration across failing pods', () => {
  let pods: FailoverPod[] = [];
  let front: FrontRouter;

  before(async () => {
    pods = await startFailoverPods(4, {
      // 300 tokens take about 3 s: long enough to fail pods mid-stream.
      sim: { interTokenLatencyMs: 10, timeScale: 1 },
      // Pods 1 and 2 get real signals.
      processSidecars: [1, 2],
      // A short drain, with the sidecar's default 1 s margin between handing
      // streams back and the end of the grace (a loaded process needs it to
      // get the hand-backs out before it exits).
      sidecarArgs: ['--drain-grace-ms', '2500'],
    });
    // Every fault here ends its streams at once (a reset connection, a
    // hand-back); the idle timeout is only a backstop, long enough that a
    // healthy stream of this busy process never trips it.
    // A stream may meet all three faults, one after another (on a loaded
    // machine the streams that moved and the ones that started on a pod reach
    // its fault together): it may move three times.
    front = await startFrontRouter(
      pods.map((p) => p.address),
      { upstream: { idle_timeout_ms: 10_000, migration_limit: 3 } },
    );
    await front.waitReady(4);
  });

  after(async () => {
    await front?.close();
    await stopFailoverPods(pods);
  });

  it('40 streams of 300 tokens on 4 pods survive an engine crash, a sidecar SIGKILL and a short drain, text exact', async () => {
    const n = 40;
    const maxTokens = 300;
    const prompts = Array.from({ length: n }, (_, i) => `Stream ${i}: tell me about rivers and mountains.`);
    const expected = await referenceTexts(prompts, maxTokens);
    const [crashing, killed, drained] = pods as [FailoverPod, FailoverPod, FailoverPod, FailoverPod];
    // The engine of pod 0 dies once one of its streams has sent 60 tokens.
    await crashing.faults({ crash_after_tokens: 60 });
    // Computing the reference texts keeps this process busy; its simulators may
    // have missed a probe meanwhile. The streams start on four ready pods.
    await front.waitReady(4);
    let killSent = false;
    let drainSent = false;
    const onChunk = (endpoint: string, tokens: number) => {
      if (!killSent && endpoint === killed.address && tokens >= 120) {
        killSent = true;
        killed.process?.proc.kill('SIGKILL');
      }
      // 200 tokens (2 s) are left when the drain starts, more than the 1.5 s
      // after which it hands streams back.
      if (!drainSent && endpoint === drained.address && tokens >= 100) {
        drainSent = true;
        drained.process?.proc.kill('SIGTERM');
      }
    };
    const results = await Promise.all(prompts.map((p) => stream(front, p, maxTokens, onChunk)));

    const pod = (address: string) => pods.findIndex((p) => p.address === address);
    const progress = results.map(
      (r) =>
        `pod ${pod(r.firstEndpoint)}: ${r.chunks.length}${r.error ? ` (failed: ${r.error.message})` : ''}`,
    );
    assert.ok(
      killSent && drainSent,
      `both sidecar faults were injected (kill ${killSent}, drain ${drainSent}); chunks by first pod: ${progress.join(', ')}`,
    );
    const failed = results.filter((r) => r.error);
    const paths = front.traces
      .filter((t) => t.status !== 'OK')
      .map((t) =>
        t.attempts.map(
          (a) => `pod ${pod(a.endpoint)} ${a.kind ?? ''} ${a.outcome} @${a.startMs}ms ${a.chunks} chunks`,
        ),
      );
    assert.deepEqual(
      failed.map((r) => r.error?.message),
      [],
      `every stream completed; attempts of the failed ones: ${JSON.stringify(paths, null, 1)}; pods now: ${front.router.endpoints
        .snapshot()
        .endpoints.map(
          (e) => `pod ${pod(e.address)} ready ${e.ready} draining ${e.draining} breaker ${e.breaker}`,
        )
        .join(', ')}`,
    );
    for (const [i, r] of results.entries()) {
      assert.equal(r.text, expected[i], `stream ${i}: text identical to an undisturbed run`);
      const last = r.chunks.at(-1);
      assert.equal(last?.finishReason, 'FINISH_REASON_LENGTH');
      assert.equal(last?.usage?.completionTokens, maxTokens, `stream ${i}: usage counts every token once`);
      assert.ok(
        (last?.usage?.promptTokens ?? 0) > 0 && (last?.usage?.promptTokens ?? 0) < 40,
        'usage: the original prompt',
      );
    }
    const moved = front.traces.flatMap((t) => t.attempts.filter((a) => a.outcome === 'migrated'));
    const reasons = new Set(moved.map((a) => a.kind));
    assert.ok(reasons.has('handback'), `the drain handed streams back (${[...reasons]})`);
    assert.ok(moved.length >= 3, `streams moved (${moved.length})`);
    const continued = front.traces.flatMap((t) => t.attempts.filter((a) => a.continuation));
    assert.ok(continued.length >= moved.length);
    assert.ok(
      continued.every((a) => a.continuation === 'token_ids'),
      'every continuation was exact (token ids)',
    );
    const metrics = await front.router.metrics.registry.getSingleMetricAsString(
      'llm_stream_migrations_total',
    );
    assert.match(metrics, /reason="handback"/);
    assert.equal(
      front.router.status().models[0]?.versions[0]?.migrations,
      moved.length,
      'the status page counts them',
    );
  });
});

describe('hung and stalled pods', () => {
  let pods: FailoverPod[] = [];
  let front: FrontRouter;

  before(async () => {
    pods = await startFailoverPods(2, { sim: { interTokenLatencyMs: 5, timeScale: 1 } });
    // The stalled pod is found by the idle timeout. Healthy streams of this
    // process pause for up to 2 s on a loaded machine (measured at load 20):
    // 3 s tells them apart, and a stall costs each test 3 s.
    front = await startFrontRouter(
      pods.map((p) => p.address),
      { upstream: { idle_timeout_ms: 3_000 } },
    );
    await front.waitReady(2);
  });

  after(async () => {
    await front?.close();
    await stopFailoverPods(pods);
  });

  it('a stream whose pod stalls mid-stream is found by the idle timeout and continues exactly elsewhere', async () => {
    const [stalling] = pods as [FailoverPod, FailoverPod];
    await stalling.faults({ stall_after_tokens: 30 });
    const prompts = Array.from({ length: 6 }, (_, i) => `Stall ${i}: the sea is wide.`);
    const expected = await referenceTexts(prompts, 80);
    const results = await Promise.all(prompts.map((p) => stream(front, p, 80)));
    await stalling.faults({ stall_after_tokens: null });
    for (const [i, r] of results.entries()) {
      assert.equal(r.error, undefined);
      assert.equal(r.text, expected[i]);
    }
    const stalled = front.traces.flatMap((t) => t.attempts.filter((a) => a.kind === 'idle-timeout'));
    assert.ok(stalled.length >= 1, 'some stream was on the stalling pod');
    assert.ok(stalled.every((a) => a.outcome === 'migrated' && a.endpoint === stalling.address));
  });

  it('with stop strings (text held back while ids stream), a stalled stream still continues exactly', async () => {
    const [stalling] = pods as [FailoverPod, FailoverPod];
    await stalling.faults({ stall_after_tokens: 30 });
    const stop = ['QQQQQQQQ'];
    const prompts = Array.from({ length: 6 }, (_, i) => `Held ${i}: the sea is wide.`);
    const expected = await referenceTexts(prompts, 80, stop);
    try {
      const results = await Promise.all(prompts.map((p) => stream(front, p, 80, undefined, undefined, stop)));
      for (const [i, r] of results.entries()) {
        assert.equal(r.error, undefined);
        assert.equal(r.text, expected[i], `stream ${i}: no held-back text lost`);
        assert.equal(r.chunks.at(-1)?.usage?.completionTokens, 80);
      }
      const stalled = front.traces
        .slice(-6)
        .flatMap((t) => t.attempts.filter((a) => a.kind === 'idle-timeout'));
      assert.ok(stalled.length >= 1, 'some stream was on the stalling pod');
    } finally {
      await stalling.faults({ stall_after_tokens: null });
    }
  });

  it('unary Generate migrates the same way: one whole, exact answer', async () => {
    const [stalling] = pods as [FailoverPod, FailoverPod];
    await stalling.faults({ stall_after_tokens: 20 });
    try {
      const prompts = Array.from({ length: 6 }, (_, i) => `Unary ${i}: the hills are green.`);
      const expected = await referenceTexts(prompts, 60);
      const answers = await Promise.all(
        prompts.map((prompt) =>
          front.client.generate({ model: MODEL, prompt, sampling: { maxTokens: 60, temperature: 0 } }),
        ),
      );
      for (const [i, a] of answers.entries()) {
        assert.equal(a.text, expected[i]);
        assert.equal(a.usage?.completionTokens, 60);
      }
      const moved = front.traces.slice(-6).flatMap((t) => t.attempts.filter((a) => a.outcome === 'migrated'));
      assert.ok(moved.length >= 1, 'some request was on the stalling pod and moved');
    } finally {
      await stalling.faults({ stall_after_tokens: null });
    }
  });
});

/** Runs `total` unary requests, `concurrency` at a time; calls `progress(done)` after each. */
async function hammer(
  front: FrontRouter,
  total: number,
  concurrency: number,
  options: { timeoutMs?: number; progress?: (done: number) => void; stop?: () => boolean } = {},
): Promise<string[]> {
  const errors: string[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < total && !options.stop?.()) {
      const i = next++;
      try {
        await front.client.generate(
          { model: MODEL, prompt: `request ${i} of a busy day`, sampling: { maxTokens: 8 } },
          { timeoutMs: options.timeoutMs ?? 30_000 },
        );
      } catch (err) {
        errors.push((err as Error).message);
      }
      done++;
      options.progress?.(done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return errors;
}

describe('one bad pod of three', () => {
  let pods: FailoverPod[] = [];

  before(async () => {
    pods = await startFailoverPods(3);
  });

  after(async () => {
    await stopFailoverPods(pods);
  });

  for (const when of ['from the start', 'switched on mid-run'] as const) {
    it(`a pod answering 503 to everything ${when}: 0 client errors in 600 requests at concurrency 16`, async () => {
      const [bad] = pods as [FailoverPod];
      const front = await startFrontRouter(pods.map((p) => p.address));
      try {
        await front.waitReady(3);
        // Half-open probes: each lets one request through to the bad pod.
        let probes = 0;
        const opened = new Promise<void>((resolve) =>
          front.router.events.on('breaker', (t: { endpoint: string; to: string }) => {
            if (t.endpoint !== bad.address) return;
            if (t.to === 'open') resolve();
            if (t.to === 'half-open') probes++;
          }),
        );
        const fault = { error_rate: 1, error_status: 503 };
        if (when === 'from the start') await bad.faults(fault);
        let switched: Promise<void> | undefined;
        const errors = await hammer(front, 600, 16, {
          progress: (done) => {
            if (when === 'switched on mid-run' && done === 150) switched = bad.faults(fault);
          },
        });
        await switched;
        assert.deepEqual(errors, [], 'no client saw an error');
        await opened;
        const onBad = front.traces.flatMap((t) => t.attempts.filter((a) => a.endpoint === bad.address));
        // A pick from a snapshot taken just before the breaker opened is
        // refused locally ('breaker_open'): nothing reached the pod. How many
        // there are grows with how long the run takes (a loaded machine runs
        // it for many reset timeouts); what reached the pod does not.
        const failedOnBad = onBad.filter((a) => a.outcome !== 'ok' && a.outcome !== 'breaker_open');
        assert.ok(failedOnBad.length > 0, 'the bad pod was tried');
        // Before its breaker opened, the pod got the failures that opened it
        // (5 in a row) and what was in flight meanwhile (16 at most); after,
        // one request per half-open probe.
        assert.ok(
          failedOnBad.length <= 5 + 16 + probes,
          `the bad pod stopped attracting traffic once it failed (${failedOnBad.length} failed attempts, ${probes} half-open probes)`,
        );
      } finally {
        await bad.faults({ error_rate: 0 });
        await front.close();
      }
    });
  }

  it('a hung pod (accepts, never answers) is ejected after a few timed-out attempts and its requests are retried elsewhere', async (t) => {
    const [hung] = pods as [FailoverPod];
    // No half-open probe while the test runs: every attempt the hung pod
    // gets is one it got before its breaker opened.
    const consecutive = 5;
    const concurrency = 8;
    const front = await startFrontRouter(
      pods.map((p) => p.address),
      { breaker: { consecutive_failures: consecutive, reset_timeout_ms: 600_000 } },
    );
    try {
      await front.waitReady(3);
      let opened = false;
      front.router.events.on('breaker', (t: { endpoint: string; to: string }) => {
        if (t.endpoint === hung.address && t.to === 'open') opened = true;
      });
      await hung.faults({ stall_after_tokens: 0 });
      // Clients with a 6 s deadline: a hung attempt may take half of it, the
      // retry elsewhere has the rest (a busy machine's scheduling delays
      // included). The traffic runs until the pod is ejected and 100 requests
      // after that (at most 20,000: the test stops by itself).
      let doneAtOpen = 0;
      let done = 0;
      const errors = await hammer(front, 20_000, concurrency, {
        timeoutMs: 6_000,
        progress: (n) => {
          done = n;
          if (opened && !doneAtOpen) doneAtOpen = n;
        },
        stop: () => doneAtOpen > 0 && done >= doneAtOpen + 100,
      });
      assert.deepEqual(errors, [], 'every request was retried elsewhere in time');
      assert.ok(opened, 'the hung pod was ejected');
      const onHung = front.traces.flatMap((t) => t.attempts.filter((a) => a.endpoint === hung.address));
      // A pick from a snapshot taken just before the breaker opened is refused
      // locally ('breaker_open'): nothing reached the pod and the request picks
      // again. Every attempt that was sent timed out and was retried.
      const hungAttempts = onHung.filter((a) => a.outcome !== 'breaker_open');
      t.diagnostic(
        `attempts sent to the hung pod: ${hungAttempts.length}; refused at its open breaker: ${onHung.length - hungAttempts.length}`,
      );
      assert.ok(
        hungAttempts.every((a) => a.kind === 'first-token-timeout' && a.outcome === 'retried'),
        `every attempt on the hung pod timed out and was retried: ${JSON.stringify(hungAttempts.map((a) => [a.kind, a.outcome, a.code, a.error]))}`,
      );
      // Ejected after `consecutive` timeouts: the pod got those and at most
      // the other requests already in flight when they ended, however long
      // each took.
      assert.ok(
        hungAttempts.length >= consecutive && hungAttempts.length < consecutive + concurrency,
        `attempts on the hung pod: ${hungAttempts.length}`,
      );
      // Every hung attempt is counted, none lost on the way out.
      const counted = await front.router.metrics.registry.getSingleMetricAsString(
        'llm_router_upstream_attempts_total',
      );
      const line = counted
        .split('\n')
        .find((l) => l.includes(`endpoint="${hung.address}"`) && l.includes('outcome="retried"'));
      assert.equal(Number(line?.split(' ').at(-1)), hungAttempts.length);
    } finally {
      await hung.faults({ stall_after_tokens: null });
      await front.close();
    }
  });
});
