/**
 * The sidecar's load plane against a real simulator and replayed real engine
 * output: reports on change and on schedule with the engine's numbers,
 * readiness that follows the engine's /health, failures that show in reports
 * without ending the stream, and the prefix index delivered to every watcher.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createSidecarClient, generate, watchLoad } from '../bench/sidecar-client.js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import { silentLogger } from '../common/log.js';
import { canonicalPrompt, prefixBlockHashes } from '../common/prefix-hash.js';
import { type Sidecar, startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { fixture } from './helpers/fixtures.js';
import { startHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { MODEL } from './helpers/mesh.js';
import { nextEvent } from './helpers/wait.js';

async function healthOf(address: string, service: string): Promise<string> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<string>((resolve, reject) => {
      client.makeUnaryRequest(
        '/grpc.health.v1.Health/Check',
        (arg: { service: string }) => {
          const name = Buffer.from(arg.service);
          return Buffer.concat([Buffer.from([0x0a, name.length]), name]);
        },
        (buf: Buffer) => (buf.length >= 2 ? buf[1] : 0),
        { service },
        (err, status) =>
          err ? reject(err) : resolve(['UNKNOWN', 'SERVING', 'NOT_SERVING'][status as number] ?? '?'),
      );
    });
  } finally {
    client.close();
  }
}

describe('sidecar load reports from a real simulator', () => {
  let sim: SimServer;
  let simUrl: string;
  let sidecar: Sidecar;
  let client: EngineClient;
  before(async () => {
    // Real time, 5 ms per token: long generations stay running while the test looks.
    sim = createSimServer({
      servedModelName: MODEL,
      timeScale: 1,
      interTokenLatencyMs: 5,
      numGpuBlocks: 4096,
    });
    simUrl = (await sim.listen(0)).url;
    sidecar = await startSidecar({
      engineUrl: simUrl,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      logger: silentLogger,
    });
    client = createSidecarClient(sidecar.address);
  });
  after(async () => {
    client.close();
    await sidecar.close();
    await sim.close();
  });

  it("carries the engine's real gauges and capacity, and the sidecar's own counts", async () => {
    const w = watchLoad(client);
    try {
      const idle = await w.until((r) => r.ready && r.capacity?.numGpuBlocks === 4096, 'ready with capacity');
      assert.equal(idle.model, MODEL);
      assert.equal(idle.version, 'v1');
      assert.equal(idle.servedModelName, MODEL);
      assert.deepEqual(idle.capacity, {
        // The simulator, like vLLM outside dev mode, does not publish max_num_seqs.
        maxNumSeqs: 0,
        numGpuBlocks: 4096,
        blockSize: 16,
        // The model's own context length, cut to what 4096 blocks of 16 hold (as vLLM does).
        maxModelLen: 65_536,
      });
      assert.equal(sidecar.prefixIndex.capacity, 4096, '4096 blocks × 16 tokens × 4 chars / 64');

      const controller = new AbortController();
      const streams = [1, 2, 3].map((i) =>
        generate(
          client,
          { model: MODEL, prompt: `long story ${i}`, sampling: { maxTokens: 4000 } },
          {
            signal: controller.signal,
          },
        ).catch(() => undefined),
      );
      const busy = await w.until(
        (r) => r.engine?.numRequestsRunning === 3 && r.inFlight === 3,
        'three running requests',
      );
      assert.equal(sim.stats.running, 3, 'the gauge is what the engine says');
      assert.ok((busy.engine?.kvCacheUsagePerc ?? 0) > 0, 'running requests hold KV blocks');
      assert.equal(busy.queued, 0);
      controller.abort();
      await Promise.all(streams);
      await w.until((r) => r.engine?.numRequestsRunning === 0 && r.inFlight === 0, 'back to idle');
    } finally {
      w.cancel();
    }
  });

  it('reports on schedule while nothing changes', async () => {
    const w = watchLoad(client);
    try {
      const first = await w.until(() => true, 'a first report');
      const later = await w.until((r) => r.sequence >= first.sequence + 3, 'three more reports');
      assert.equal(later.ready, true);
      assert.deepEqual(later.engine, first.engine);
    } finally {
      w.cancel();
    }
  });

  it('a change is reported without waiting for the schedule', async () => {
    const slow = await startSidecar({
      engineUrl: simUrl,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      reportIntervalMs: 600_000, // the schedule never fires during this test
      probeIntervalMs: 600_000,
      logger: silentLogger,
    });
    const c = createSidecarClient(slow.address);
    const w = watchLoad(c);
    try {
      await w.until((r) => r.ready, 'ready (the first probe changes readiness)');
      const controller = new AbortController();
      const stream = generate(
        c,
        { model: MODEL, prompt: 'x', sampling: { maxTokens: 4000 } },
        {
          signal: controller.signal,
        },
      ).catch(() => undefined);
      await w.until((r) => r.inFlight === 1, 'in flight 1');
      controller.abort();
      await stream;
      await w.until((r) => r.inFlight === 0, 'in flight 0');
    } finally {
      w.cancel();
      c.close();
      await slow.close();
    }
  });

  it('two watchers get the same reports and build the same prefix index from the deltas', async () => {
    const a = watchLoad(client, 'router-a');
    const b = watchLoad(client, 'router-b');
    try {
      await a.until(() => true, 'a connected');
      await b.until(() => true, 'b connected');
      const system = 'You are a meticulous assistant who answers in full sentences. '.repeat(4);
      const prompts = [0, 1, 2, 3].map((i) => `${system}Question number ${i}: why is the sky blue?`);
      for (const prompt of prompts) {
        await generate(client, { model: MODEL, prompt, sampling: { maxTokens: 4, temperature: 0.5 } });
      }
      const expected = [...sidecar.prefixIndex.snapshot()].sort();
      for (const prompt of prompts) {
        const hashes = prefixBlockHashes(canonicalPrompt({ prompt, messages: [] }));
        assert.equal(
          sidecar.prefixIndex.matchedBlocks(hashes),
          hashes.length,
          'every served prompt is indexed',
        );
      }
      const same = (index: Set<number>) => [...index].sort().join() === expected.join();
      const ra = await a.until(() => same(a.index), 'watcher a holds the index');
      await b.until((r) => r.sequence >= ra.sequence && same(b.index), 'watcher b holds the index');
      const bySeq = new Map(b.reports.map((r) => [r.sequence, r]));
      let common = 0;
      for (const r of a.reports) {
        const other = bySeq.get(r.sequence);
        if (!other) continue;
        common++;
        assert.deepEqual({ ...other, prefixIndex: null }, { ...r, prefixIndex: null });
      }
      assert.ok(common >= 2, `reports with the same sequence are the same report (${common} compared)`);
    } finally {
      a.cancel();
      b.cancel();
    }
  });
});

describe('sidecar readiness follows the engine', () => {
  it('not ready while the engine loads, ready after /health turns 200, not ready when it dies, ready when it is back', async () => {
    // The model load ends when the test says: the simulator's clock runs an hour
    // behind until then, and the load takes half an hour.
    let loading = true;
    const sim = createSimServer({
      servedModelName: MODEL,
      timeScale: 1,
      loadDelayMs: 1_800_000,
      interTokenLatencyMs: 1,
      now: () => Date.now() - (loading ? 3_600_000 : 0),
    });
    const { port, url } = await sim.listen(0);
    const sidecar = await startSidecar({
      engineUrl: url,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      admin: '127.0.0.1:0',
      logger: silentLogger,
    });
    const client = createSidecarClient(sidecar.address);
    const w = watchLoad(client);
    let sim2: SimServer | undefined;
    try {
      const first = await w.until(() => true, 'a first report');
      assert.equal(first.ready, false);
      assert.match(first.reason, /health is not 200|not probed yet/);
      assert.equal(await healthOf(sidecar.address, 'llmmesh.v1.Engine'), 'NOT_SERVING');
      assert.equal(await healthOf(sidecar.address, ''), 'SERVING');
      assert.equal((await fetch(`${sidecar.adminUrl}/readyz`)).status, 503);
      await assert.rejects(
        generate(client, { model: MODEL, prompt: 'too early' }),
        (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE,
      );

      loading = false;
      await w.until((r) => r.ready, 'ready after the load');
      assert.equal(await healthOf(sidecar.address, 'llmmesh.v1.Engine'), 'SERVING');
      assert.equal((await fetch(`${sidecar.adminUrl}/readyz`)).status, 200);
      assert.equal((await fetch(`${sidecar.adminUrl}/healthz`)).status, 200);

      await sim.close();
      const dead = await w.until((r) => !r.ready, 'not ready after the engine died');
      assert.ok(dead.reason.includes(new URL(url).host), dead.reason);
      assert.equal(await healthOf(sidecar.address, 'llmmesh.v1.Engine'), 'NOT_SERVING');
      const readyz = await fetch(`${sidecar.adminUrl}/readyz`);
      assert.equal(readyz.status, 503);
      assert.match(await readyz.text(), /not ready: /);

      // The same engine comes back on the same port.
      sim2 = createSimServer({ servedModelName: MODEL, timeScale: 0 });
      await sim2.listen(port);
      await w.until((r) => r.ready, 'ready again');
      const r = await generate(client, { model: MODEL, prompt: 'back', sampling: { maxTokens: 3 } });
      assert.equal(r.chunks.at(-1)?.usage?.completionTokens, 3);
      assert.equal(
        await Promise.race([w.closed.then(() => 'closed'), 'open']),
        'open',
        'one stream throughout',
      );
    } finally {
      w.cancel();
      client.close();
      await sidecar.close();
      await sim.close();
      await sim2?.close();
    }
  });
});

describe('sidecar load reports from recorded engine output', () => {
  let server: TestHttpServer;
  let metricsBody = '';
  let metricsStatus = 200;
  before(async () => {
    server = await startHttpServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path === '/health') {
        res.writeHead(200).end();
      } else if (path === '/v1/models') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(fixture('vllm-models.json'));
      } else if (path === '/metrics') {
        res.writeHead(metricsStatus, { 'content-type': 'text/plain' }).end(metricsBody);
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Not Found"}');
      }
    });
  });
  after(() => server.close());

  const start = () =>
    startSidecar({
      engineUrl: server.url,
      listen: '127.0.0.1:0',
      version: 'v7',
      probeIntervalMs: 30,
      logger: silentLogger,
    });

  it('a loaded vLLM: capacity from cache_config_info, model from /v1/models', async () => {
    metricsBody = fixture('vllm-metrics-v1-loaded.prom');
    metricsStatus = 200;
    const sidecar = await start();
    const client = createSidecarClient(sidecar.address);
    const w = watchLoad(client);
    try {
      const r = await w.until((x) => x.ready, 'ready');
      assert.equal(r.model, 'TinyLlama/TinyLlama-1.1B-Chat-v1.0', 'the model defaults to the served name');
      assert.deepEqual(r.capacity, { maxNumSeqs: 0, numGpuBlocks: 15998, blockSize: 4, maxModelLen: 2048 });
      assert.equal(sidecar.prefixIndex.capacity, 3999);

      // A failing scrape turns the pod not ready, and the stream goes on.
      metricsStatus = 500;
      metricsBody = '{"error":{"message":"boom","type":"InternalServerError","code":500}}';
      const broken = await w.until((x) => !x.ready, 'not ready on scrape failure');
      assert.match(broken.reason, /metrics scrape .* failed: .*500/);
      metricsStatus = 200;
      metricsBody = fixture('vllm-metrics-v1.prom');
      const back = await w.until((x) => x.ready && x.capacity?.numGpuBlocks === 2452, 'ready again');
      assert.equal(back.capacity?.blockSize, 16);
      assert.equal(
        await Promise.race([w.closed.then(() => 'closed'), 'open']),
        'open',
        'one stream throughout',
      );
    } finally {
      w.cancel();
      client.close();
      await sidecar.close();
    }
  });

  it("SGLang's gauges", async () => {
    metricsBody = fixture('sglang-metrics.prom');
    metricsStatus = 200;
    const sidecar = await start();
    const client = createSidecarClient(sidecar.address);
    const w = watchLoad(client);
    try {
      const r = await w.until((x) => x.ready, 'ready');
      assert.deepEqual(r.engine, {
        numRequestsRunning: 162,
        numRequestsWaiting: 2826,
        kvCacheUsagePerc: 0.28,
      });
    } finally {
      w.cancel();
      client.close();
      await sidecar.close();
    }
  });

  it('an engine without /metrics (404) stays ready with the sidecar counts only', async () => {
    metricsStatus = 404;
    metricsBody = '{"detail":"Not Found"}';
    const sidecar = await start();
    const client = createSidecarClient(sidecar.address);
    const w = watchLoad(client);
    try {
      const r = await w.until((x) => x.ready, 'ready');
      assert.deepEqual(r.engine, { numRequestsRunning: 0, numRequestsWaiting: 0, kvCacheUsagePerc: 0 });
    } finally {
      w.cancel();
      client.close();
      await sidecar.close();
    }
  });

  it("learns the in-flight limit from the engine's max_num_seqs when it publishes it", async () => {
    const info = await startHttpServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path === '/health') res.writeHead(200).end();
      else if (path === '/v1/models') res.writeHead(200).end(fixture('vllm-models.json'));
      else if (path === '/server_info')
        // The shape of vLLM's /server_info?config_format=json (VLLM_SERVER_DEV_MODE=1), trimmed.
        res.writeHead(200).end('{"vllm_config":{"scheduler_config":{"max_num_seqs":48}},"vllm_env":{}}');
      else res.writeHead(404).end('{"detail":"Not Found"}');
    });
    const sidecar = await startSidecar({
      engineUrl: info.url,
      listen: '127.0.0.1:0',
      version: 'v1',
      probeIntervalMs: 30,
      logger: silentLogger,
    });
    try {
      await nextEvent(
        sidecar.events,
        'report',
        (r: { capacity?: { maxNumSeqs?: number } }) => r.capacity?.maxNumSeqs === 48,
      );
      assert.ok(info.requests.some((r) => r.path === '/server_info?config_format=json'));
    } finally {
      await sidecar.close();
      await info.close();
    }
  });
});
