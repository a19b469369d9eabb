/**
 * Thousands of random and malformed GenerateRequests against a live router
 * process: every call gets a gRPC status, none crashes or hangs a process,
 * and the router's memory stays flat.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { silentLogger } from '../common/log.js';
import { loadProtos } from '../common/proto.js';
import { type Sidecar, startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { listeningOn, type RunningCommand, runCommand } from './helpers/processes.js';

const MODEL = 'llama-3-8b-chat';

function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

/** Arbitrary requests: mostly plausible, often wrong, sometimes absurd. */
const anyString = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom(MODEL, 'gpt-9', 'user', 'system', 'assistant', '\u0000', '../../etc/passwd', 'v1', 'v2'),
);
const anyNumber = fc.oneof(
  fc.double(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1, 0, 1e30, 0.5),
  fc.integer({ min: -1000, max: 1000 }),
);
const requestArb = fc.record(
  {
    model: fc.oneof(fc.constant(MODEL), anyString),
    prompt: anyString,
    messages: fc.array(fc.record({ role: anyString, content: anyString }), { maxLength: 5 }),
    sampling: fc.record(
      {
        maxTokens: fc.oneof(fc.constantFrom(0, 1, 4, 8, 1_000_000, 4_294_967_295), fc.nat({ max: 32 })),
        temperature: anyNumber,
        topP: anyNumber,
        seed: fc.oneof(fc.integer(), fc.constantFrom(Number.MAX_SAFE_INTEGER, -1)),
        stop: fc.array(anyString, { maxLength: 20 }),
      },
      { requiredKeys: [] },
    ),
    routing: fc.record(
      {
        version: fc.oneof(fc.constantFrom('', 'v1', 'v9'), anyString),
        sessionKey: anyString,
        priority: fc.constantFrom('PRIORITY_UNSPECIFIED', 'PRIORITY_LOW', 'PRIORITY_HIGH', 7, -3),
      },
      { requiredKeys: [] },
    ),
    requestId: anyString,
  },
  { requiredKeys: [] },
);

describe('fuzzing a live router', () => {
  let sim: SimServer;
  let sidecar: Sidecar;
  let router: RunningCommand;
  let address: string;
  let client: grpc.Client;

  before(async () => {
    sim = createSimServer({ servedModelName: MODEL, timeScale: 0, maxModelLen: 4096 });
    const bound = await sim.listen(0, '127.0.0.1');
    sidecar = await startSidecar({
      engineUrl: bound.url,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      logger: silentLogger,
    });
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-fuzz-'));
    writeFileSync(join(dir, 'routes.yaml'), `models:\n  ${MODEL}:\n    versions:\n      v1: { weight: 1 }\n`);
    router = runCommand([
      'router',
      '--config',
      join(dir, 'routes.yaml'),
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--endpoints',
      sidecar.address,
    ]);
    ({ address } = await listeningOn(router, 'router'));
    const { inference } = loadProtos();
    client = new inference.Inference(address, grpc.credentials.createInsecure());
    await new Promise<void>((resolve, reject) =>
      client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
    );
  });

  after(async () => {
    client?.close();
    router?.proc.kill('SIGTERM');
    await router?.exit;
    await sidecar?.close();
    await sim?.close();
  });

  const call = (req: unknown, unary: boolean): Promise<number> =>
    new Promise((resolve) => {
      const deadline = Date.now() + 10_000;
      if (unary) {
        (client as unknown as { Generate: (...args: unknown[]) => void }).Generate(
          req,
          new grpc.Metadata(),
          { deadline },
          (err: grpc.ServiceError | null) => resolve(err ? err.code : grpc.status.OK),
        );
      } else {
        const s = (client as unknown as { GenerateStream: (...args: unknown[]) => unknown }).GenerateStream(
          req,
          new grpc.Metadata(),
          {
            deadline,
          },
        ) as grpc.ClientReadableStream<unknown>;
        s.on('data', () => {});
        s.on('error', () => {});
        s.on('status', (st: grpc.StatusObject) => resolve(st.code));
      }
    });

  it('answers every random request with a status, without crashing or leaking', async () => {
    const pid = router.proc.pid as number;
    // Warm up so the baseline includes lazily allocated pools and caches.
    for (let i = 0; i < 200; i++)
      await call({ model: MODEL, prompt: `warm ${i}`, sampling: { maxTokens: 2 } }, i % 2 === 0);
    const before = rssKb(pid);
    const codes = new Map<number, number>();
    let n = 0;
    await fc.assert(
      fc.asyncProperty(requestArb, fc.boolean(), async (req, unary) => {
        const code = await call(req, unary);
        n++;
        codes.set(code, (codes.get(code) ?? 0) + 1);
        // A deadline means the router hung on this request.
        return code !== grpc.status.DEADLINE_EXCEEDED && code !== grpc.status.UNKNOWN;
      }),
      { numRuns: 2000, seed: 20261128 },
    );
    assert.equal(n, 2000);
    assert.equal(router.proc.exitCode, null, 'router still running');
    assert.ok((codes.get(grpc.status.INVALID_ARGUMENT) ?? 0) > 100, `codes: ${JSON.stringify([...codes])}`);
    assert.ok((codes.get(grpc.status.OK) ?? 0) > 10, `codes: ${JSON.stringify([...codes])}`);
    // Memory: thousands of requests later the router is within a few MB of where it was.
    const grown = rssKb(pid) - before;
    assert.ok(grown < 40_000, `router RSS grew by ${grown} kB`);
  });

  it('answers garbage bytes (not a protobuf) with a status', async () => {
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    try {
      for (const bytes of [
        Buffer.from([0xff, 0xff, 0xff]),
        Buffer.from('not protobuf at all'),
        Buffer.alloc(0),
      ]) {
        const code = await new Promise<number>((resolve) => {
          raw.makeUnaryRequest(
            '/llmmesh.v1.Inference/Generate',
            (b: Buffer) => b,
            (b: Buffer) => b,
            bytes,
            new grpc.Metadata(),
            { deadline: Date.now() + 5000 },
            (err: grpc.ServiceError | null) => resolve(err ? err.code : grpc.status.OK),
          );
        });
        assert.notEqual(code, grpc.status.DEADLINE_EXCEEDED);
        assert.notEqual(code, grpc.status.OK);
      }
    } finally {
      raw.close();
    }
    assert.equal(router.proc.exitCode, null);
  });
});
