/**
 * One trace per request across real router, sidecar and simulator
 * processes, exported over OTLP/HTTP to a real receiver on loopback.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from '../bench/otlp-receiver.js';
import { createInferenceClient, type InferenceClient, type MeshError } from '../client/index.js';
import { Status } from '../common/errors.js';
import { listeningOn, type RunningCommand, runCommand, simServingOn } from './helpers/processes.js';

const MODEL = 'llama-3-8b-chat';

describe('tracing across router, sidecar and engine', () => {
  let receiver: OtlpReceiver;
  const procs: RunningCommand[] = [];
  let client: InferenceClient;
  const sims: string[] = [];

  before(async () => {
    receiver = await startOtlpReceiver();
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
      OTEL_SERVICE_NAME: '',
    };
    // Every process listens on port 0 and says where: the next one is told that address.
    for (let i = 0; i < 2; i++) {
      const p = runCommand(['sim', '--port', '0', '--served-model-name', MODEL, '--time-scale', '0'], env);
      procs.push(p);
      sims.push(await simServingOn(p));
    }
    const sidecars: string[] = [];
    for (const engine of sims) {
      const p = runCommand(
        [
          'sidecar',
          '--engine-url',
          engine,
          '--listen',
          '127.0.0.1:0',
          '--model',
          MODEL,
          '--version',
          'v1',
          '--admin',
          'off',
        ],
        env,
      );
      procs.push(p);
      sidecars.push((await listeningOn(p, 'sidecar')).address);
    }
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-trace-'));
    writeFileSync(
      join(dir, 'routes.yaml'),
      `models:\n  ${MODEL}:\n    versions:\n      v1: { weight: 1 }\nupstream: { idle_timeout_ms: 2000 }\n`,
    );
    const router = runCommand(
      [
        'router',
        '--config',
        join(dir, 'routes.yaml'),
        '--listen',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--endpoints',
        sidecars.join(','),
      ],
      env,
    );
    procs.push(router);
    const { address } = await listeningOn(router, 'router');
    client = createInferenceClient(address, { maxAttempts: 1 });
    // Ready when both endpoints serve: a pinned-free request succeeds.
    await client.waitForReady(10_000);
    for (let i = 0; i < 100; i++) {
      const ok = await client
        .generate({ model: MODEL, prompt: 'warm up', sampling: { maxTokens: 1 } })
        .then(() => true)
        .catch(() => false);
      if (ok) break;
    }
  });

  after(async () => {
    client?.close();
    for (const p of procs.reverse()) {
      p.proc.kill('SIGTERM');
      await p.exit;
    }
    await receiver?.close();
  });

  const ofTrace = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);
  const named = (spans: ReceivedSpan[], service: string, name: string | RegExp) =>
    spans.filter(
      (s) => s.service === service && (typeof name === 'string' ? s.name === name : name.test(s.name)),
    );

  it('one request is one trace through all three services, and the trailer carries its id', async () => {
    const r = await client.generate({
      model: MODEL,
      prompt: 'trace this request',
      sampling: { maxTokens: 8 },
    });
    assert.match(r.traceId, /^[0-9a-f]{32}$/);
    await receiver.waitFor((all) => {
      const t = all.filter((s) => s.traceId === r.traceId);
      // Spans export in batches as they end: wait for the last one of each service.
      return (
        t.some((s) => s.service === 'llmmesh-router' && s.name === 'llmmesh.v1.Inference/Generate') &&
        t.some((s) => s.service === 'llmmesh-sidecar' && s.name === 'llmmesh.v1.Engine/GenerateStream') &&
        t.some((s) => s.service === 'llmmesh-sim')
      );
    }, 'spans of router, sidecar and sim in one trace');
    const spans = ofTrace(r.traceId);
    const server = named(spans, 'llmmesh-router', 'llmmesh.v1.Inference/Generate')[0];
    assert.ok(server, `router server span in ${spans.map((s) => `${s.service}:${s.name}`).join(', ')}`);
    assert.equal(server.parentSpanId, '');
    assert.equal(server.attributes['gen_ai.request.model'], MODEL);
    assert.equal(server.attributes['gen_ai.request.max_tokens'], 8);
    assert.equal(server.attributes['gen_ai.usage.output_tokens'], 8);
    assert.ok(Number(server.attributes['gen_ai.usage.input_tokens']) > 0);
    assert.equal(server.attributes['llmmesh.version'], 'v1');
    assert.equal(server.attributes['llmmesh.endpoint'], r.endpoint);
    assert.ok(server.events.some((e) => e.name === 'first_token'));

    const schedule = named(spans, 'llmmesh-router', 'schedule')[0];
    assert.ok(schedule, 'schedule span');
    assert.equal(schedule.parentSpanId, server.spanId);
    const candidates = schedule.events.filter((e) => e.name === 'candidate');
    assert.equal(candidates.length, 2, 'one event per candidate endpoint with its scores');
    assert.ok(candidates.every((c) => typeof c.attributes['llmmesh.score'] === 'number'));

    const attempt = named(spans, 'llmmesh-router', 'attempt')[0];
    assert.ok(attempt);
    assert.equal(attempt.attributes['llmmesh.endpoint'], r.endpoint);
    assert.equal(attempt.attributes['llmmesh.breaker_state'], 'closed');

    const sidecar = named(spans, 'llmmesh-sidecar', 'llmmesh.v1.Engine/GenerateStream')[0];
    assert.ok(sidecar);
    assert.equal(sidecar.parentSpanId, attempt.spanId, 'the sidecar continues the attempt span');
    const lookup = named(spans, 'llmmesh-sidecar', 'cache lookup')[0];
    assert.equal(lookup?.parentSpanId, sidecar.spanId);
    assert.ok(lookup?.attributes['llmmesh.cache']);
    const engine = named(spans, 'llmmesh-sidecar', /^POST \/v1\/completions$/)[0];
    assert.ok(engine, 'engine HTTP span');
    const simSpan = named(spans, 'llmmesh-sim', 'POST /v1/completions')[0];
    assert.equal(simSpan?.parentSpanId, engine.spanId, 'the engine continues the sidecar HTTP span');
  });

  /** The router's attempt spans of a trace, once its request span arrived. */
  const attemptSpans = async (traceId: string) => {
    await receiver.waitFor(
      (all) =>
        all.some((s) => s.traceId === traceId && s.service === 'llmmesh-router' && s.parentSpanId === ''),
      'the router span',
    );
    return named(ofTrace(traceId), 'llmmesh-router', 'attempt');
  };

  it('retries show as separate attempt spans, the failed one marked as an error', async () => {
    // One engine answers every request with 503: the router must retry on the other.
    const res = await fetch(`${sims[0]}/sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ error_rate: 1, error_status: 503 }),
    });
    assert.equal(res.status, 200);
    try {
      let retried: ReceivedSpan[] | undefined;
      for (let i = 0; i < 20 && !retried; i++) {
        const r = await client.generate({ model: MODEL, prompt: `retry ${i}`, sampling: { maxTokens: 2 } });
        const attempts = await attemptSpans(r.traceId);
        if (attempts.length === 2) retried = attempts;
      }
      assert.ok(retried, 'some request was retried');
      const failed = retried.filter((a) => a.statusCode === 2);
      assert.equal(failed.length, 1);
      assert.equal(failed[0]?.attributes['rpc.grpc.status_code'], Status.UNAVAILABLE);
    } finally {
      await fetch(`${sims[0]}/sim/faults`, { method: 'DELETE' });
    }
  });

  it('a migrated stream is one trace: the failed attempt and its exact continuation as sibling spans', async () => {
    // One engine stalls after 3 tokens: the idle timeout moves the stream to the other.
    const res = await fetch(`${sims[0]}/sim/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ stall_after_tokens: 3 }),
    });
    assert.equal(res.status, 200);
    try {
      let moved: ReceivedSpan[] | undefined;
      for (let i = 0; i < 20 && !moved; i++) {
        const r = await client.generate({
          model: MODEL,
          prompt: `migrate ${i}`,
          sampling: { maxTokens: 8, temperature: 0 },
        });
        assert.equal(r.usage?.completionTokens, 8);
        const attempts = await attemptSpans(r.traceId);
        if (attempts.length === 2) moved = attempts;
      }
      assert.ok(moved, 'some stream was on the stalling engine');
      const [first, second] = [...moved].sort(
        (a, b) => Number(a.attributes['llmmesh.attempt']) - Number(b.attributes['llmmesh.attempt']),
      );
      assert.equal(first?.attributes['llmmesh.outcome'], 'idle-timeout');
      assert.equal(first?.statusCode, 2);
      assert.equal(second?.attributes['llmmesh.continuation'], 'token_ids');
      assert.equal(first?.parentSpanId, second?.parentSpanId, 'both are children of the request span');
    } finally {
      await fetch(`${sims[0]}/sim/faults`, { method: 'DELETE' });
    }
  });

  it('errors mark the span with the gRPC code', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    await assert.rejects(
      client.generate(
        { model: 'no-such-model', prompt: 'x' },
        { metadata: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } },
      ),
      (e: MeshError) => e.code === Status.NOT_FOUND,
    );
    await receiver.waitFor((all) => all.some((s) => s.traceId === traceId), 'the failed request span');
    const span = ofTrace(traceId)[0];
    assert.equal(span?.parentSpanId, 'b7ad6b7169203331');
    assert.equal(span?.statusCode, 2);
    assert.equal(span?.attributes['rpc.grpc.status_code'], Status.NOT_FOUND);
  });
});
