/**
 * Chunk coalescing on both hops, against a real simulator, sidecar and
 * router on loopback: a reader that keeps up gets one chunk per token (the
 * first alone); a reader that falls behind gets fewer chunks carrying exactly
 * the same text, token ids, finish reason and usage. The reader is made slow
 * by pausing its stream until the hop in front of it has received the whole
 * generation (an event: the router's finished request, the engine's ended
 * HTTP response), so nothing depends on timing.
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { COALESCE_BACKLOG } from '../common/coalescing.js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import { silentLogger } from '../common/log.js';
import { loadProtos } from '../common/proto.js';
import { validateRouterConfig } from '../router/config/load.js';
import { type Router, startRouter } from '../router/server.js';
import { type Sidecar, startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { waitUntil } from './helpers/wait.js';

const MODEL = 'llama-3-8b-chat';
/** Long enough that a paused reader's flow-control window and the writer's backlog fill. */
const LONG = 6000;

/** An HTTP tap in front of the simulator: emits 'ended' when a response to the sidecar has been sent whole. */
async function startTap(
  target: string,
): Promise<{ url: string; events: EventEmitter; close(): Promise<void> }> {
  const events = new EventEmitter();
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const out = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        up.once('end', () => {
          if (req.url?.includes('/completions')) events.emit('ended');
        });
      },
    );
    // Connections the sidecar keeps alive are reset when the tap closes.
    out.on('error', () => res.destroy());
    req.on('error', () => out.destroy());
    res.on('error', () => {});
    req.pipe(out);
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    events,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Read {
  chunks: GenerateChunk__Output[];
  cache: string;
}

/** Reads a stream; when `hold` is given, pauses after the first chunk until `hold` settles. */
function read(
  call: grpc.ClientReadableStream<GenerateChunk__Output>,
  hold?: () => Promise<void>,
): Promise<Read> {
  return new Promise((resolve, reject) => {
    const chunks: GenerateChunk__Output[] = [];
    let cache = '';
    call.once('metadata', (md: grpc.Metadata) => {
      cache = String(md.get('x-llmmesh-cache')[0] ?? '');
    });
    call.on('data', (c: GenerateChunk__Output) => {
      chunks.push(c);
      if (chunks.length === 1 && hold) {
        call.pause();
        hold().then(() => call.resume(), reject);
      }
    });
    call.once('error', reject);
    call.once('end', () => resolve({ chunks, cache }));
  });
}

function whole(r: Read) {
  const last = r.chunks.at(-1);
  return {
    text: r.chunks.map((c) => c.text).join(''),
    tokenIds: r.chunks.flatMap((c) => c.tokenIds),
    finishReason: last?.finishReason,
    usage: last?.usage,
  };
}

const request = (maxTokens: number) => ({
  model: MODEL,
  prompt: 'Tell me a long story about a lighthouse keeper.',
  sampling: { maxTokens, temperature: 0 },
});

describe('chunk coalescing', () => {
  let sim: SimServer;
  let tap: Awaited<ReturnType<typeof startTap>>;
  let sidecar: Sidecar;
  let router: Router;
  const finished = new EventEmitter();
  let finishedCount = 0;
  let inference: grpc.Client;
  let engine: grpc.Client;

  before(async () => {
    sim = createSimServer({ servedModelName: MODEL, timeScale: 0, maxModelLen: 16_384 });
    const bound = await sim.listen(0, '127.0.0.1');
    tap = await startTap(bound.url);
    sidecar = await startSidecar({
      engineUrl: tap.url,
      listen: '127.0.0.1:0',
      model: MODEL,
      version: 'v1',
      probeIntervalMs: 50,
      logger: silentLogger,
    });
    router = await startRouter({
      config: validateRouterConfig({
        listen: '127.0.0.1:0',
        discovery: { kind: 'static', endpoints: [sidecar.address] },
        models: { [MODEL]: { versions: { v1: { weight: 1 } } } },
      }),
      logger: silentLogger,
      admin: false,
      onRequestTrace: () => {
        finishedCount++;
        finished.emit('request');
      },
    });
    await waitUntil(
      router.endpoints.events,
      'change',
      () => router.endpoints.snapshot().endpoints.some((e) => e.ready),
      'a ready endpoint',
    );
    const protos = loadProtos();
    inference = new protos.inference.Inference(router.address, grpc.credentials.createInsecure());
    engine = new protos.engine.Engine(sidecar.address, grpc.credentials.createInsecure());
  });

  after(async () => {
    inference.close();
    engine.close();
    await router.close(0);
    await sidecar.close();
    await tap.close();
    await sim.close();
  });

  type Streaming = {
    GenerateStream(r: unknown, md: grpc.Metadata): grpc.ClientReadableStream<GenerateChunk__Output>;
  };
  // Every call reaches the engine: a cached answer would be replayed, not generated.
  const bypass = () => {
    const md = new grpc.Metadata();
    md.set('x-llmmesh-cache', 'bypass');
    return md;
  };
  const viaRouter = (maxTokens: number) =>
    (inference as unknown as Streaming).GenerateStream(request(maxTokens), bypass());
  const viaSidecar = (maxTokens: number) =>
    (engine as unknown as Streaming).GenerateStream({ ...request(maxTokens), requestId: 'direct' }, bypass());

  it('a reader that keeps up gets one chunk per token, the first alone, ids on every chunk', async () => {
    const r = await read(viaRouter(200));
    assert.equal(r.cache, 'bypass', 'served by the engine, not replayed from a cache');
    assert.equal(r.chunks.length, 200);
    assert.ok(r.chunks.every((c) => c.tokenIds.length === 1));
    assert.equal(whole(r).usage?.completionTokens, 200);
  });

  it('the router merges what waits for a reader that fell behind: fewer chunks, the same text, ids and usage', async () => {
    const reference = whole(await read(viaRouter(LONG)));
    assert.equal(reference.tokenIds.length, LONG);
    const before = finishedCount;
    // Held until the router has relayed the whole generation (its request finished).
    const slow = await read(viaRouter(LONG), () =>
      waitUntil(
        finished,
        'request',
        () => finishedCount > before,
        'the router to finish the request',
        30_000,
      ),
    );
    const first = slow.chunks[0] as GenerateChunk__Output;
    assert.equal(first.tokenIds.length, 1, 'the first chunk is one token');
    assert.equal(first.modelVersion, 'v1');
    assert.ok(
      slow.chunks.length < LONG - COALESCE_BACKLOG,
      `merged chunks: ${slow.chunks.length} messages for ${LONG} tokens`,
    );
    assert.ok(slow.chunks.some((c) => c.tokenIds.length > 1));
    assert.deepEqual(whole(slow), reference);
  });

  it('the sidecar merges what waits for a caller that fell behind', async () => {
    const reference = whole(await read(viaSidecar(LONG)));
    assert.equal(reference.tokenIds.length, LONG);
    // Held until the engine's response has reached the sidecar whole.
    const ended = once(tap.events, 'ended');
    const slow = await read(viaSidecar(LONG), async () => {
      await ended;
    });
    assert.equal(slow.chunks[0]?.tokenIds.length, 1, 'the first chunk is one token');
    assert.ok(
      slow.chunks.length < LONG - COALESCE_BACKLOG,
      `merged chunks: ${slow.chunks.length} messages for ${LONG} tokens`,
    );
    assert.deepEqual(whole(slow), reference);
  });
});
