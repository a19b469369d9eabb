/**
 * The streaming data path end to end: client → router → sidecar → simulator
 * over real sockets, with the public client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GenerateChunk, MeshError } from '../client/index.js';
import { Status } from '../common/errors.js';
import { MODEL, startTestMesh, type TestMesh } from './helpers/mesh.js';
import { nextEvent, waitUntil } from './helpers/wait.js';

async function collect(iter: AsyncIterable<GenerateChunk>): Promise<GenerateChunk[]> {
  const chunks: GenerateChunk[] = [];
  for await (const c of iter) chunks.push(c);
  return chunks;
}

describe('data path: router → sidecar → engine', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh({ pods: [{ version: 'v1' }, { version: 'v1' }] });
  });
  after(() => mesh.close());

  it('streams a 64-token completion whole: version first, finish and usage last', async () => {
    const call = mesh.client.generateStream({
      model: MODEL,
      prompt: 'Tell me about the sea',
      sampling: { maxTokens: 64 },
    });
    const chunks = await collect(call);
    assert.equal(chunks.length, 64, 'one chunk per token, finish and usage ride on the last');
    assert.equal(chunks[0]?.modelVersion, 'v1');
    assert.ok(
      chunks.slice(1).every((c) => c.modelVersion === ''),
      'model_version on the first chunk only',
    );
    const last = chunks.at(-1);
    assert.equal(last?.finishReason, 'FINISH_REASON_LENGTH');
    assert.ok(
      chunks.slice(0, -1).every((c) => c.finishReason === 'FINISH_REASON_UNSPECIFIED' && c.usage === null),
    );
    assert.equal(last?.usage?.completionTokens, 64);
    assert.ok((last?.usage?.promptTokens ?? 0) > 0);
    assert.ok(chunks.every((c) => c.text.length > 0));
    const served = await call.servedBy;
    assert.equal(served.version, 'v1');
    assert.ok(
      mesh.pods.some((p) => p.sidecar.address === served.endpoint),
      `endpoint ${served.endpoint}`,
    );
    assert.match(await call.traceId, /^[0-9a-f]{32}$/);
  });

  it('serves chat messages through /v1/chat/completions', async () => {
    const r = await mesh.client.generate({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Say hi' },
      ],
      sampling: { maxTokens: 8 },
    });
    assert.equal(r.usage?.completionTokens, 8);
    assert.ok(r.text.length > 0);
    assert.equal(r.finishReason, 'FINISH_REASON_LENGTH');
  });

  it('Generate returns the same text as GenerateStream for a deterministic request', async () => {
    const input = {
      model: MODEL,
      prompt: 'Deterministic please',
      sampling: { maxTokens: 24, temperature: 0, seed: 7 },
    };
    const streamed = (await collect(mesh.client.generateStream(input))).map((c) => c.text).join('');
    const unary = await mesh.client.generate(input);
    assert.equal(unary.text, streamed);
    assert.equal(unary.modelVersion, 'v1');
    assert.match(unary.traceId, /^[0-9a-f]{32}$/);
    assert.ok(unary.endpoint.startsWith('127.0.0.1:'));
  });

  it('honours stop strings end to end', async () => {
    const full = await mesh.client.generate({
      model: MODEL,
      prompt: 'stop test',
      sampling: { maxTokens: 12, temperature: 0 },
    });
    const words = full.text.trim().split(/\s+/);
    const stopWord = words[3] ?? '';
    const r = await mesh.client.generate({
      model: MODEL,
      prompt: 'stop test',
      sampling: { maxTokens: 12, temperature: 0, stop: [stopWord] },
    });
    assert.equal(r.finishReason, 'FINISH_REASON_STOP');
    assert.ok(!r.text.includes(stopWord), `"${r.text}" should stop before "${stopWord}"`);
  });

  it('continues the caller trace: the trace id comes back in the trailer', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const r = await mesh.client.generate(
      { model: MODEL, prompt: 'trace me', sampling: { maxTokens: 2 } },
      { metadata: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } },
    );
    assert.equal(r.traceId, traceId);
  });

  it('rejects an unknown model with NOT_FOUND', async () => {
    await assert.rejects(mesh.client.generate({ model: 'gpt-9', prompt: 'x' }), (err: MeshError) => {
      assert.equal(err.code, Status.NOT_FOUND);
      assert.match(err.message, /unknown model "gpt-9"/);
      return true;
    });
  });

  it('rejects an empty prompt with INVALID_ARGUMENT naming the field', async () => {
    await assert.rejects(collect(mesh.client.generateStream({ model: MODEL })), (err: MeshError) => {
      assert.equal(err.code, Status.INVALID_ARGUMENT);
      assert.match(err.message, /^prompt: /);
      return true;
    });
    await assert.rejects(
      mesh.client.generate({ model: MODEL, messages: [{ role: 'wizard', content: 'x' }] }),
      (err: MeshError) => err.code === Status.INVALID_ARGUMENT && /messages\[0\]\.role/.test(err.message),
    );
  });

  it("passes the engine's own error message through (context length exceeded)", async () => {
    await assert.rejects(
      // Short words: the router's character-based lower bound lets it through,
      // and only the engine's exact count can reject it.
      mesh.client.generate({ model: MODEL, prompt: 'a '.repeat(7000), sampling: { maxTokens: 2000 } }),
      (err: MeshError) => {
        assert.equal(err.code, Status.INVALID_ARGUMENT);
        assert.match(err.message, /maximum context length is 8192 tokens/);
        return true;
      },
    );
  });

  it('lists models with weights and endpoints', async () => {
    const list = await mesh.client.listModels();
    assert.deepEqual(
      list.models.map((m) => ({
        name: m.name,
        versions: m.versions.map((v) => [v.name, v.weight, v.readyEndpoints, v.endpoints]),
      })),
      [{ name: MODEL, versions: [['v1', 1, 2, 2]] }],
    );
    assert.equal(list.models[0]?.versions[0]?.maxModelLen, 8192);
  });

  it('pools connections: a burst of concurrent streams all complete', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        mesh.client.generate({ model: MODEL, prompt: `burst ${i}`, sampling: { maxTokens: 16 } }),
      ),
    );
    assert.ok(results.every((r) => r.usage?.completionTokens === 16));
    const endpoints = new Set(results.map((r) => r.endpoint));
    assert.equal(endpoints.size, 2, 'load spread over both pods');
  });
});

describe('data path: cancellation and deadlines', () => {
  // A real-time engine (5 ms per token): these generations would run for tens of seconds.
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh({ pods: [{ version: 'v1', sim: { timeScale: 1, interTokenLatencyMs: 5 } }] });
  });
  after(() => mesh.close());

  it('cancellation by the client aborts the engine request', async () => {
    const sims = mesh.pods.map((p) => p.sim);
    const controller = new AbortController();
    const call = mesh.client.generateStream(
      { model: MODEL, prompt: 'a very long story', sampling: { maxTokens: 4000 } },
      { signal: controller.signal },
    );
    const aborted = Promise.race(sims.map((s) => nextEvent(s.events, 'request-abort')));
    const abortedBefore = sims.reduce((n, s) => n + s.stats.aborted, 0);
    const iter = call[Symbol.asyncIterator]();
    const first = await iter.next();
    assert.equal(first.done, false);
    controller.abort();
    await assert.rejects(iter.next(), (err: MeshError) => err.code === Status.CANCELLED);
    await aborted;
    assert.equal(
      sims.reduce((n, s) => n + s.stats.aborted, 0),
      abortedBefore + 1,
    );
  });

  it('a passed deadline ends the call with DEADLINE_EXCEEDED and aborts the engine request', async () => {
    const sims = mesh.pods.map((p) => p.sim);
    const aborted = Promise.race(sims.map((s) => nextEvent(s.events, 'request-abort')));
    const started = Promise.race(sims.map((s) => nextEvent(s.events, 'request-start')));
    const call = mesh.client.generateStream(
      { model: MODEL, prompt: 'slow', sampling: { maxTokens: 8000 } },
      { timeoutMs: 300 },
    );
    await started;
    await assert.rejects(collect(call), (err: MeshError) => err.code === Status.DEADLINE_EXCEEDED);
    await aborted;
  });
  it('tells the client how the pod served it: a repeated deterministic request is a cache hit', async () => {
    const input = {
      model: MODEL,
      prompt: 'cache me through the router',
      sampling: { maxTokens: 8, temperature: 0 },
    };
    const first = await mesh.client.generate(input);
    const second = await mesh.client.generate(input);
    assert.equal(first.cache, 'miss');
    assert.equal(second.cache, 'hit-l1');
    assert.equal(second.text, first.text);
    const stream = mesh.client.generateStream({ ...input, sampling: { maxTokens: 8 } });
    for await (const _ of stream) {
      // drain
    }
    assert.equal((await stream.servedBy).cache, 'uncacheable', 'sampling without temperature 0 or a seed');
  });
});

describe('data path: failures', () => {
  it('engine down: the router answers UNAVAILABLE saying which endpoint and why', async () => {
    const mesh = await startTestMesh({ pods: [{ version: 'v1' }] });
    try {
      const pod = mesh.pods[0]!;
      await pod.sim.close();
      await waitUntil(
        mesh.router.endpoints.events,
        'change',
        () => mesh.router.endpoints.snapshot().endpoints.every((e) => !e.ready),
        'the endpoint to turn not ready',
      );
      await assert.rejects(mesh.client.generate({ model: MODEL, prompt: 'hi' }), (err: MeshError) => {
        assert.equal(err.code, Status.UNAVAILABLE);
        assert.ok(err.message.includes(pod.sidecar.address), err.message);
        assert.ok(err.message.includes(new URL(pod.simUrl).host), err.message);
        return true;
      });
    } finally {
      await mesh.close();
    }
  });

  it('an engine that dies between probes: the request is retried on another pod before the first token', async () => {
    // Probes are rare here, so the sidecars still believe their engines are up.
    const mesh = await startTestMesh({
      pods: [
        { version: 'v1', probeIntervalMs: 600_000 },
        { version: 'v1', probeIntervalMs: 600_000 },
      ],
    });
    try {
      const dead = mesh.pods[0]!;
      await dead.sim.close();
      for (let i = 0; i < 10; i++) {
        const r = await mesh.client.generate({
          model: MODEL,
          prompt: `retry ${i}`,
          sampling: { maxTokens: 4 },
        });
        assert.equal(r.endpoint, mesh.pods[1]!.sidecar.address);
      }
      const metrics = await mesh.router.metrics.registry.getSingleMetricAsString(
        'llm_router_upstream_attempts_total',
      );
      assert.match(
        metrics,
        new RegExp(`endpoint="${dead.sidecar.address.replace(/\./g, '\\.')}",outcome="retried"`),
      );
    } finally {
      await mesh.close();
    }
  });

  it('with a single pod whose engine died, the error names the engine address', async () => {
    const mesh = await startTestMesh({ pods: [{ version: 'v1', probeIntervalMs: 600_000 }] });
    try {
      const pod = mesh.pods[0]!;
      await pod.sim.close();
      await assert.rejects(
        mesh.client.generate({ model: MODEL, prompt: 'hi' }, { timeoutMs: 10_000 }),
        (err: MeshError) => {
          assert.equal(err.code, Status.UNAVAILABLE);
          assert.match(
            err.message,
            new RegExp(`engine at ${new URL(pod.simUrl).host.replace(/\./g, '\\.')} unreachable`),
          );
          return true;
        },
      );
    } finally {
      await mesh.close();
    }
  });
});
