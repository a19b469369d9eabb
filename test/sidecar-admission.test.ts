/**
 * Admission in the sidecar against a real simulator: a bounded in-flight
 * limit, a bounded queue whose depth is reported and exported as
 * `llm_queue_depth`, and shedding with a retry pushback when it is full.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { createSidecarClient, generate, watchLoad } from '../bench/sidecar-client.js';
import { RETRY_PUSHBACK_KEY, Status } from '../common/errors.js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import { silentLogger } from '../common/log.js';
import { type Sidecar, startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { MODEL } from './helpers/mesh.js';
import { nextEvent } from './helpers/wait.js';

const long = (i: number) => ({
  model: MODEL,
  prompt: `a long essay ${i}`,
  sampling: { maxTokens: 4000, temperature: 0.7 },
});

describe('sidecar admission', () => {
  let sim: SimServer;
  let sidecar: Sidecar;
  let client: EngineClient;
  before(async () => {
    sim = createSimServer({ servedModelName: MODEL, timeScale: 1, interTokenLatencyMs: 5 });
    const { url } = await sim.listen(0);
    sidecar = await startSidecar({
      engineUrl: url,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      maxInFlight: 1,
      maxQueue: 2,
      queuePushbackMs: 300,
      admin: '127.0.0.1:0',
      logger: silentLogger,
    });
    client = createSidecarClient(sidecar.address);
    await nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready);
  });
  after(async () => {
    client.close();
    await sidecar.close();
    await sim.close();
  });

  it('queues beyond the limit, reports and exports the depth, and sheds a full queue with pushback', async () => {
    const w = watchLoad(client);
    const controller = new AbortController();
    const engineStarted = nextEvent(sim.events, 'request-start');
    const running = [0, 1, 2].map((i) =>
      generate(client, long(i), { signal: controller.signal }).catch((e) => e),
    );
    try {
      const r = await w.until((x) => x.inFlight === 1 && x.queued === 2, 'one in flight, two queued');
      assert.equal(r.capacity?.maxNumSeqs, 1);
      await engineStarted;
      assert.equal(sim.stats.started, 1, 'only the admitted request reached the engine');

      const metrics = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
      assert.match(metrics, /^llm_queue_depth\{model="llama-3-8b-chat",model_version="v1"\} 2$/m);
      assert.match(metrics, /^llm_sidecar_in_flight_requests\{[^}]*\} 1$/m);

      await assert.rejects(generate(client, long(3)), (err: grpc.ServiceError) => {
        assert.equal(err.code, Status.RESOURCE_EXHAUSTED);
        assert.equal(err.metadata.get(RETRY_PUSHBACK_KEY)[0], '300');
        assert.match(err.details, /queue is full/);
        return true;
      });
      assert.match(
        await sidecar.metrics.registry.metrics(),
        /llm_sidecar_rejected_total\{reason="queue_full",[^}]*\} 1/,
      );
    } finally {
      controller.abort();
      await Promise.all(running);
      await w.until((x) => x.inFlight === 0 && x.queued === 0, 'drained');
      w.cancel();
    }
  });

  it('a caller that gives up while queued frees its place without reaching the engine', async () => {
    const w = watchLoad(client);
    const first = new AbortController();
    const queued = new AbortController();
    const started = sim.stats.started;
    const aStarted = nextEvent(sim.events, 'request-start');
    const a = generate(client, long(10), { signal: first.signal }).catch((e) => e);
    const b = generate(client, long(11), { signal: queued.signal }).catch((e) => e);
    try {
      await w.until((x) => x.queued === 1, 'one queued');
      queued.abort();
      await b;
      await w.until((x) => x.queued === 0 && x.inFlight === 1, 'queue empty');
      await aStarted;
      assert.equal(sim.stats.started, started + 1);
    } finally {
      first.abort();
      await a;
      w.cancel();
    }
  });

  it('admin: /metrics is Prometheus text from its own registry, /status the current report', async () => {
    const res = await fetch(`${sidecar.adminUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    for (const name of [
      'llm_queue_depth',
      'llm_sidecar_in_flight_requests',
      'llm_response_cache_requests_total',
      'llm_engine_errors_total',
      'llm_sidecar_time_to_first_token_seconds',
      'llm_prefix_index_blocks',
    ]) {
      assert.ok(text.includes(`# TYPE ${name} `), name);
    }
    assert.ok(!text.includes('process_cpu'), 'no default (global) metrics');
    const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as {
      version: string;
      ready: boolean;
    };
    assert.equal(status.version, 'v1');
    assert.equal(status.ready, true);
    assert.equal((await fetch(`${sidecar.adminUrl}/nope`)).status, 404);
  });
});
