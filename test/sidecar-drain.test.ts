/**
 * Drain as Kubernetes does it: `llmmesh sidecar` as a real process gets
 * SIGTERM while a long stream runs (its admin port behind a token). It reports draining, refuses new streams
 * with UNAVAILABLE, lets the stream finish, deregisters from Redis and exits 0.
 * A stream that cannot finish within the grace period is handed back to the
 * router (UNAVAILABLE with `x-llmmesh-handback: draining`), never cancelled.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { createSidecarClient, generate, watchLoad } from '../bench/sidecar-client.js';
import { sidecarCommand } from '../cli/commands/sidecar.js';
import { parseRegistration, registrationKey } from '../common/discovery-keys.js';
import { Status } from '../common/errors.js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import { silentLogger } from '../common/log.js';
import { HANDBACK_KEY } from '../common/metadata.js';
import { startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { MODEL } from './helpers/mesh.js';
import { listeningOn, runCommand, runToEnd } from './helpers/processes.js';
import { deletePrefix, redisClient, SHARED_REDIS_URL, uniquePrefix } from './helpers/redis.js';
import { nextEvent } from './helpers/wait.js';

const ADMIN_TOKEN = 'sidecar-admin-secret';
const ADMIN_TOKEN_SHA256 = createHash('sha256').update(ADMIN_TOKEN).digest('hex');

describe('sidecar drain', () => {
  const prefix = uniquePrefix('sidecar-drain');
  let sim: SimServer;
  let simUrl: string;
  let redis: Redis;
  before(async () => {
    // Real time, 5 ms per token: a 400-token stream takes about two seconds.
    sim = createSimServer({ servedModelName: MODEL, timeScale: 1, interTokenLatencyMs: 5 });
    simUrl = (await sim.listen(0)).url;
    redis = redisClient();
  });
  after(async () => {
    await deletePrefix(redis, prefix);
    redis.disconnect();
    await sim.close();
  });

  it('SIGTERM: draining report, new streams refused, the running stream finishes, deregistered, exit 0', async () => {
    const proc = runCommand(
      [
        'sidecar',
        '--engine-url',
        simUrl,
        '--listen',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--model',
        MODEL,
        '--version',
        'v3',
        '--probe-interval-ms',
        '50',
        '--discovery-prefix',
        `${prefix}endpoints:`,
        '--cache-key-prefix',
        `${prefix}cache:`,
        '--heartbeat-ms',
        '100',
      ],
      { LLMMESH_REDIS_URL: SHARED_REDIS_URL, LLMMESH_ADMIN_TOKEN_SHA256: ADMIN_TOKEN_SHA256 },
    );
    let client: EngineClient | undefined;
    try {
      // Listening on ports 0: the client and the registration key follow the address it prints.
      const { address, adminUrl } = await listeningOn(proc, 'sidecar');
      assert.match(adminUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
      client = createSidecarClient(address);
      const w = watchLoad(client);
      await w.until((r) => r.ready, 'ready');

      // The admin token guards all but the probes.
      const adminBase = adminUrl as string;
      assert.equal((await fetch(`${adminBase}/readyz`)).status, 200);
      assert.equal((await fetch(`${adminBase}/status`)).status, 401);
      const status = await fetch(`${adminBase}/status`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assert.equal(status.status, 200);
      assert.equal(((await status.json()) as { version: string }).version, 'v3');

      // Registered for redis discovery.
      const key = registrationKey(address, `${prefix}endpoints:`);
      await proc.waitForOutput(`registered for redis discovery as ${key}`);
      const registration = parseRegistration(await redis.get(key));
      assert.deepEqual(
        registration && {
          address: registration.address,
          model: registration.model,
          version: registration.version,
        },
        { address, model: MODEL, version: 'v3' },
      );
      assert.ok((await redis.pttl(key)) > 0, 'with a TTL');

      let firstChunk!: () => void;
      const streaming = new Promise<void>((r) => {
        firstChunk = r;
      });
      const long = generate(
        client,
        { model: MODEL, prompt: 'a long goodbye', sampling: { maxTokens: 400, temperature: 0.5 } },
        { onChunk: () => firstChunk() },
      );
      await streaming;

      proc.proc.kill('SIGTERM');
      const draining = await w.until((r) => r.draining, 'draining');
      assert.equal(draining.ready, false);
      assert.equal(draining.reason, 'draining');
      const readyz = await fetch(`${adminBase}/readyz`);
      assert.equal(readyz.status, 503);

      await assert.rejects(
        generate(client, { model: MODEL, prompt: 'too late', sampling: { maxTokens: 4 } }),
        (err: grpc.ServiceError) => {
          assert.equal(err.code, Status.UNAVAILABLE);
          assert.match(err.details, /draining/);
          return true;
        },
      );

      const done = await long;
      assert.equal(done.chunks.length, 400, 'the running stream finished whole');
      assert.equal(done.chunks.at(-1)?.finishReason, 'FINISH_REASON_LENGTH');

      assert.equal(await proc.exit, 0, proc.stderr());
      await w.closed;
      assert.equal(await redis.exists(key), 0, 'deregistered');
    } finally {
      client?.close();
      if (proc.proc.exitCode === null) proc.proc.kill('SIGKILL');
    }
  });

  it('--help documents every option with its LLMMESH_ environment variable', async () => {
    const help = await runToEnd(['sidecar', '--help']);
    assert.equal(help.code, 0);
    for (const [name, o] of Object.entries(sidecarCommand.options)) {
      assert.match(o.env ?? '', /^LLMMESH_[A-Z][A-Z0-9_]*$/, `--${name} has an environment variable`);
      assert.ok(
        help.stdout.includes(`--${name}`) && help.stdout.includes(`env ${o.env}`),
        `--${name} in --help`,
      );
    }
    const bad = await runToEnd([
      'sidecar',
      '--engine-url',
      'http://127.0.0.1:1',
      '--response-cache',
      'maybe',
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--response-cache must be on or off/);
  });

  it('SIGTERM with a short grace: a stream that cannot finish is handed back, not cancelled, and its engine request aborted', async () => {
    const proc = runCommand([
      'sidecar',
      '--engine-url',
      simUrl,
      '--listen',
      '127.0.0.1:0',
      '--admin',
      'off',
      '--model',
      MODEL,
      '--version',
      'v1',
      '--probe-interval-ms',
      '50',
      '--drain-grace-ms',
      '1000',
      '--drain-handback-ms',
      '300',
    ]);
    let client: EngineClient | undefined;
    try {
      const { address } = await listeningOn(proc, 'sidecar');
      client = createSidecarClient(address);
      const w = watchLoad(client);
      await w.until((r) => r.ready, 'ready');
      let firstChunk!: () => void;
      const streaming = new Promise<void>((r) => {
        firstChunk = r;
      });
      const chunks: GenerateChunk__Output[] = [];
      // 8000 tokens at 5 ms each: far longer than the grace period. The engine
      // call carries the request id, so only this test's abort is awaited.
      const requestId = `drain-endless-${process.pid}-${Date.now()}`;
      const endless = generate(
        client,
        { model: MODEL, prompt: 'never ending', requestId, sampling: { maxTokens: 8000, temperature: 0.5 } },
        {
          onChunk: (c) => {
            chunks.push(c);
            firstChunk();
          },
        },
      );
      await streaming;
      const aborted = nextEvent(sim.events, 'request-abort', (e: { id: string }) => e.id.includes(requestId));
      proc.proc.kill('SIGTERM');
      await w.until((r) => r.draining, 'draining');

      const err = await endless.then(
        () => assert.fail('the stream cannot have finished'),
        (e: grpc.ServiceError) => e,
      );
      assert.equal(err.code, Status.UNAVAILABLE, err.message);
      assert.deepEqual(err.metadata.get(HANDBACK_KEY), ['draining']);
      const m = /^pod draining: stream handed back after (\d+) tokens$/.exec(err.details);
      assert.ok(m, err.details);
      const withIds = chunks.some((c) => c.tokenIds.length > 0);
      const delivered = withIds ? chunks.reduce((n, c) => n + c.tokenIds.length, 0) : chunks.length;
      assert.equal(Number(m[1]), delivered, 'the message counts what the client received');
      assert.ok(delivered > 1 && delivered < 8000);
      await aborted;
      assert.equal(await proc.exit, 0, proc.stderr());
    } finally {
      client?.close();
      if (proc.proc.exitCode === null) proc.proc.kill('SIGKILL');
    }
  });

  it('drain(): coalesced followers of one engine call are all handed back, and the engine call aborted once', async () => {
    const sidecar = await startSidecar({
      engineUrl: simUrl,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      drainHandbackMs: 100,
      logger: silentLogger,
    });
    const client = createSidecarClient(sidecar.address);
    try {
      await nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready);
      // Deterministic and identical: the second call joins the first one's engine call.
      // The engine call carries this id (x-request-id), so only this test's
      // calls are counted: another test process's sidecar whose engine died
      // may point at the port the kernel has since given this simulator.
      const requestId = `drain-coalesced-${process.pid}-${Date.now()}`;
      const req = {
        model: MODEL,
        prompt: 'the same long answer',
        requestId,
        sampling: { maxTokens: 8000, temperature: 0 },
      };
      const started = nextEvent(sidecar.events, 'cache', (e: { result: string }) => e.result === 'coalesced');
      let firstChunk!: () => void;
      const streaming = new Promise<void>((r) => {
        firstChunk = r;
      });
      let engineCalls = 0;
      const onStart = (e: { id: string }) => {
        if (e.id.includes(requestId)) engineCalls++;
      };
      sim.events.on('request-start', onStart);
      const calls = [generate(client, req, { onChunk: () => firstChunk() }), generate(client, req)];
      const outcomes = Promise.allSettled(calls);
      await started;
      await streaming;
      const aborted = nextEvent(sim.events, 'request-abort', (e: { id: string }) => e.id.includes(requestId));
      await sidecar.drain(1000);
      sim.events.off('request-start', onStart);
      for (const o of await outcomes) {
        assert.equal(o.status, 'rejected');
        const err = (o as PromiseRejectedResult).reason as grpc.ServiceError;
        assert.equal(err.code, Status.UNAVAILABLE);
        assert.deepEqual(err.metadata.get(HANDBACK_KEY), ['draining']);
      }
      await aborted;
      assert.equal(engineCalls, 1, 'one engine call for both');
    } finally {
      client.close();
      await sidecar.close();
    }
  });
});
