/**
 * Drain as Kubernetes does it: `llmmesh sidecar` as a real process gets
 * SIGTERM while a long stream runs. It reports draining, refuses new streams
 * with UNAVAILABLE, lets the stream finish, deregisters from Redis and exits 0.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { createSidecarClient, generate, watchLoad } from '../bench/sidecar-client.js';
import { sidecarCommand } from '../cli/commands/sidecar.js';
import { parseRegistration, registrationKey } from '../common/discovery-keys.js';
import { Status } from '../common/errors.js';
import { silentLogger } from '../common/log.js';
import { startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { MODEL } from './helpers/mesh.js';
import { freePorts, runCommand, runToEnd } from './helpers/processes.js';
import { deletePrefix, redisClient, SHARED_REDIS_URL, uniquePrefix } from './helpers/redis.js';
import { nextEvent } from './helpers/wait.js';

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
    const [port, adminPort] = await freePorts(2);
    const address = `127.0.0.1:${port}`;
    const proc = runCommand(
      [
        'sidecar',
        '--engine-url',
        simUrl,
        '--listen',
        address,
        '--admin',
        `127.0.0.1:${adminPort}`,
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
      { LLMMESH_REDIS_URL: SHARED_REDIS_URL },
    );
    const client = createSidecarClient(address);
    try {
      await proc.waitForOutput(`llmmesh sidecar listening on ${address}`);
      assert.match(proc.stdout(), new RegExp(`admin http://127\\.0\\.0\\.1:${adminPort}`));
      const w = watchLoad(client);
      await w.until((r) => r.ready, 'ready');

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
      const readyz = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
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
      client.close();
      if (proc.proc.exitCode === null) proc.proc.kill('SIGKILL');
    }
  });

  it('--help documents every option with its LLMMESH_ environment variable', async () => {
    const help = await runToEnd(['sidecar', '--help']);
    assert.equal(help.code, 0);
    for (const [name, o] of Object.entries(sidecarCommand.options)) {
      assert.match(o.env ?? '', /^LLMMESH_[A-Z_]+$/, `--${name} has an environment variable`);
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

  it('a stream longer than the grace period is cancelled, and the engine request with it', async () => {
    const sidecar = await startSidecar({
      engineUrl: simUrl,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      logger: silentLogger,
    });
    const client = createSidecarClient(sidecar.address);
    try {
      await nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready);
      let firstChunk!: () => void;
      const streaming = new Promise<void>((r) => {
        firstChunk = r;
      });
      const endless = generate(
        client,
        { model: MODEL, prompt: 'never ending', sampling: { maxTokens: 8000, temperature: 0.5 } },
        { onChunk: () => firstChunk() },
      );
      await streaming;
      const aborted = nextEvent(sim.events, 'request-abort');
      await sidecar.drain(100);
      await assert.rejects(endless, (err: grpc.ServiceError) => err.code !== Status.OK);
      await aborted;
    } finally {
      client.close();
      await sidecar.close();
    }
  });
});
