/**
 * Stream migration, the sidecar's side, against the real simulator: a stream
 * through one pod's sidecar is cut by an engine crash; a continuation request
 * (the prompt plus what was delivered) to another pod's sidecar gives the
 * rest, and delivered + rest is byte-identical to an undisturbed run, for a
 * prompt and for chat, with token ids (exact mode). An engine that gives no
 * ids (a proxy that drops `return_token_ids`) is continued from the text.
 * The usage of a continuation covers the whole generation.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { tracing } from '@opentelemetry/sdk-node';
import { cacheHeader, createSidecarClient, generate } from '../bench/sidecar-client.js';
import { Status } from '../common/errors.js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import { silentLogger } from '../common/log.js';
import { type Sidecar, startSidecar } from '../sidecar/server.js';
import { createSimServer, type SimServer } from '../sim/server.js';
import { MODEL } from './helpers/mesh.js';
import { nextEvent } from './helpers/wait.js';

interface Pod {
  sim: SimServer;
  sidecar: Sidecar;
  client: EngineClient;
  close(): Promise<void>;
}

const exporter = new tracing.InMemorySpanExporter();
const provider = new tracing.BasicTracerProvider({
  spanProcessors: [new tracing.SimpleSpanProcessor(exporter)],
});
const tracer = provider.getTracer('test');

async function startPod(
  engineUrl: (simUrl: string) => Promise<string> = async (u) => u,
  crashAfterTokens?: number,
) {
  const sim = createSimServer({
    servedModelName: MODEL,
    timeScale: 0,
    onCrash: () => {},
    ...(crashAfterTokens !== undefined ? { faults: { crashAfterTokens } } : {}),
  });
  const simUrl = (await sim.listen(0)).url;
  const sidecar = await startSidecar({
    engineUrl: await engineUrl(simUrl),
    listen: '127.0.0.1:0',
    model: MODEL,
    version: 'v1',
    probeIntervalMs: 50,
    logger: silentLogger,
    tracer,
  });
  await nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready);
  const client = createSidecarClient(sidecar.address);
  return {
    sim,
    sidecar,
    client,
    async close() {
      client.close();
      await sidecar.close();
      await sim.close();
    },
  } satisfies Pod;
}

const requests: Record<string, GenerateRequest> = {
  prompt: {
    model: MODEL,
    prompt: 'The history of the river crossing at the old town',
    sampling: { maxTokens: 48, temperature: 0, seed: 7 },
  },
  chat: {
    model: MODEL,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Tell me about rivers.' },
    ],
    sampling: { maxTokens: 48, temperature: 0, seed: 7 },
  },
};

/** Runs a stream that fails part-way; returns what was delivered before the failure. */
async function cutStream(pod: Pod, req: GenerateRequest) {
  const chunks: GenerateChunk__Output[] = [];
  const err = await generate(pod.client, req, { onChunk: (c) => chunks.push(c) }).then(
    () => assert.fail('the stream should have been cut'),
    (e: grpc.ServiceError) => e,
  );
  return { chunks, err };
}

const continuationSpans = () =>
  exporter
    .getFinishedSpans()
    .filter((s) => s.name === 'llmmesh.v1.Engine/GenerateStream')
    .map((s) => s.attributes['llmmesh.continuation'])
    .filter((v) => v !== undefined);

describe('sidecar continuation (stream migration)', () => {
  let spare: Pod;
  before(async () => {
    spare = await startPod();
  });
  after(async () => {
    await spare.close();
    await provider.shutdown();
  });

  for (const [kind, req] of Object.entries(requests)) {
    it(`${kind}: an engine crash mid-stream, continued exactly on another pod, gives the undisturbed text and usage`, async () => {
      // Undisturbed, on the spare pod: cached there (temperature 0), which the continuation must not use.
      const undisturbed = await generate(spare.client, req);
      const last = undisturbed.chunks.at(-1);
      const ids = undisturbed.chunks.flatMap((c) => c.tokenIds);
      assert.equal(ids.length, last?.usage?.completionTokens, 'every token carries its id');
      assert.equal(last?.finishReason, 'FINISH_REASON_LENGTH');

      const crashing = await startPod(undefined, 9);
      try {
        const cut = await cutStream(crashing, req);
        assert.equal(cut.err.code, Status.UNAVAILABLE, cut.err.message);
        const deliveredIds = cut.chunks.flatMap((c) => c.tokenIds);
        const deliveredText = cut.chunks.map((c) => c.text).join('');
        assert.ok(deliveredIds.length >= 9 && deliveredIds.length < 48, `${deliveredIds.length} delivered`);

        exporter.reset();
        const rest = await generate(spare.client, {
          ...req,
          continuation: {
            tokenIds: deliveredIds,
            text: deliveredText,
            completionTokens: deliveredIds.length,
          },
        });
        assert.equal(deliveredText + rest.text, undisturbed.text, 'byte-identical to the undisturbed run');
        assert.deepEqual([...deliveredIds, ...rest.chunks.flatMap((c) => c.tokenIds)], ids);
        assert.equal(cacheHeader(rest), 'bypass', 'a continuation is never served from the cache');
        const end = rest.chunks.at(-1);
        assert.equal(end?.finishReason, last?.finishReason);
        assert.equal(end?.usage?.promptTokens, last?.usage?.promptTokens, 'the original prompt only');
        assert.equal(
          end?.usage?.completionTokens,
          last?.usage?.completionTokens,
          'every token of the generation',
        );
        assert.deepEqual(continuationSpans(), ['token_ids']);
      } finally {
        await crashing.close();
      }
    });
  }

  it('an engine that gives no token ids is continued from the text, with the budget and usage adjusted', async () => {
    // A proxy in front of the simulator that drops `return_token_ids`, as an engine without it does.
    const seen: Array<{ path: string; body: Record<string, unknown> }> = [];
    let proxy: http.Server | undefined;
    const noIds = await startPod(async (simUrl) => {
      const target = new URL(simUrl);
      const server = http.createServer((req, res) => {
        const parts: Buffer[] = [];
        req.on('data', (p: Buffer) => parts.push(p));
        req.on('end', () => {
          let body = Buffer.concat(parts);
          if (req.method === 'POST' && body.length > 0) {
            const json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
            delete json.return_token_ids;
            seen.push({ path: req.url ?? '', body: json });
            body = Buffer.from(JSON.stringify(json));
          }
          const headers = { ...req.headers, 'content-length': String(body.length) };
          const up = http.request(
            { host: target.hostname, port: target.port, path: req.url, method: req.method, headers },
            (upRes) => {
              res.writeHead(upRes.statusCode ?? 502, upRes.headers);
              upRes.pipe(res);
            },
          );
          up.on('error', () => res.destroy());
          res.on('close', () => up.destroy());
          up.end(body);
        });
      });
      proxy = server;
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    try {
      for (const [kind, original] of Object.entries(requests)) {
        const req = { ...original, sampling: { ...original.sampling, maxTokens: 20 } };
        const whole = await generate(noIds.client, req);
        assert.ok(
          whole.chunks.every((c) => c.tokenIds.length === 0),
          'no ids from this engine',
        );
        const delivered = whole.chunks.slice(0, 6);
        const text = delivered.map((c) => c.text).join('');
        seen.length = 0;
        exporter.reset();
        const rest = await generate(noIds.client, {
          ...req,
          continuation: { tokenIds: [], text, completionTokens: 6 },
        });
        const sent = seen.find((s) => s.path.startsWith('/v1/'));
        assert.ok(sent, 'the engine got a generation request');
        assert.equal(sent.body.max_tokens, 14, `${kind}: 20 less the 6 delivered`);
        assert.equal(sent.body.seed, 7);
        if (kind === 'prompt') {
          assert.equal(sent.path, '/v1/completions');
          assert.equal(sent.body.prompt, `${req.prompt}${text}`);
        } else {
          assert.equal(sent.path, '/v1/chat/completions');
          assert.deepEqual(sent.body.messages, [
            ...(req.messages ?? []),
            { role: 'assistant', content: text },
          ]);
          assert.equal(sent.body.continue_final_message, true);
          assert.equal(sent.body.add_generation_prompt, false);
        }
        assert.ok(!seen.some((s) => s.path === '/tokenize'), 'no tokenization in text mode');
        const end = rest.chunks.at(-1);
        assert.equal(end?.finishReason, 'FINISH_REASON_LENGTH');
        assert.equal(end?.usage?.completionTokens, 20, 'the 6 delivered and the 14 of the continuation');
        assert.equal(
          end?.usage?.promptTokens,
          whole.chunks.at(-1)?.usage?.promptTokens,
          'the original prompt',
        );
        assert.deepEqual(continuationSpans(), ['text']);
      }
    } finally {
      await noIds.close();
      await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
    }
  });
});
