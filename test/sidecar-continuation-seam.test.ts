/**
 * Stream migration across text the engine held back, against the real
 * simulator. With stop strings an engine streams every token's id at once but
 * holds back the last max(len(stop)) - 1 characters of text, so a stream cut
 * by a crash has delivered ids covering text the client never got. The
 * continuation on another pod must hand out that text first and apply the
 * stop strings across the seam: delivered + continued equals the undisturbed
 * run, text, ids, finish and usage, wherever the first pod failed.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { createSidecarClient, generate, type StreamResult } from '../bench/sidecar-client.js';
import { Status } from '../common/errors.js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import { createLogger, type Logger, silentLogger } from '../common/log.js';
import { startSidecar } from '../sidecar/server.js';
import { createSimServer } from '../sim/server.js';
import { MODEL } from './helpers/mesh.js';
import { nextEvent } from './helpers/wait.js';

interface Pod {
  client: EngineClient;
  close(): Promise<void>;
}

/** What a proxy in front of the simulator does with `/detokenize`. */
type Detokenize = 'missing' | 'garbled';

interface PodOptions {
  /** The simulator crashes after this many tokens of a stream. */
  crashAfterTokens?: number;
  /** Put a proxy in front of the simulator that changes `/detokenize`, and records requests. */
  detokenize?: Detokenize;
  logger?: Logger;
}

/** A simulator and its sidecar. */
async function startPod(options: PodOptions = {}): Promise<Pod & { seen: ProxySeen[] }> {
  const sim = createSimServer({
    servedModelName: MODEL,
    timeScale: 0,
    onCrash: () => {},
    ...(options.crashAfterTokens !== undefined
      ? { faults: { crashAfterTokens: options.crashAfterTokens } }
      : {}),
  });
  const simUrl = (await sim.listen(0)).url;
  const seen: ProxySeen[] = [];
  const proxy = options.detokenize ? await startProxy(simUrl, options.detokenize, seen) : undefined;
  const sidecar = await startSidecar({
    engineUrl: proxy?.url ?? simUrl,
    listen: '127.0.0.1:0',
    model: MODEL,
    version: 'v1',
    probeIntervalMs: 50,
    logger: options.logger ?? silentLogger,
  });
  await nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready);
  const client = createSidecarClient(sidecar.address);
  return {
    client,
    seen,
    async close() {
      client.close();
      await sidecar.close();
      await proxy?.close();
      await sim.close();
    },
  };
}

interface ProxySeen {
  path: string;
  body: Record<string, unknown>;
}

/** A proxy to the simulator: `/detokenize` answers 404 (`missing`) or decodes to other text (`garbled`: upper case). */
async function startProxy(simUrl: string, detokenize: Detokenize, seen: ProxySeen[]) {
  const target = new URL(simUrl);
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (p: Buffer) => parts.push(p));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      if (req.method === 'POST') seen.push({ path: req.url ?? '', body: JSON.parse(body.toString('utf8')) });
      if (req.url === '/detokenize' && detokenize === 'missing') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Not Found"}');
        return;
      }
      const up = http.request(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
        (upRes) => {
          if (req.url !== '/detokenize') {
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
            return;
          }
          const answer: Buffer[] = [];
          upRes.on('data', (p: Buffer) => answer.push(p));
          upRes.on('end', () => {
            const json = JSON.parse(Buffer.concat(answer).toString('utf8')) as { prompt: string };
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ prompt: json.prompt.toUpperCase() }));
          });
        },
      );
      up.on('error', () => res.destroy());
      res.on('close', () => up.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const base: GenerateRequest = {
  model: MODEL,
  prompt: 'The history of the river crossing at the old town',
  sampling: { maxTokens: 48, temperature: 0, seed: 7 },
};

const withStop = (stop: string[]): GenerateRequest => ({ ...base, sampling: { ...base.sampling, stop } });

const idsOf = (r: { chunks: GenerateChunk__Output[] }) => r.chunks.flatMap((c) => c.tokenIds);

/**
 * Runs `req` on a pod whose engine crashes after `k` tokens, then continues
 * it on `spare`; returns what was delivered before the crash and the rest.
 */
async function migrateAt(spare: Pod, req: GenerateRequest, k: number) {
  const crashing = await startPod({ crashAfterTokens: k });
  try {
    const chunks: GenerateChunk__Output[] = [];
    const err = await generate(crashing.client, req, { onChunk: (c) => chunks.push(c) }).then(
      () => assert.fail(`k=${k}: the stream should have been cut`),
      (e: grpc.ServiceError) => e,
    );
    assert.equal(err.code, Status.UNAVAILABLE, err.message);
    const ids = idsOf({ chunks });
    const text = chunks.map((c) => c.text).join('');
    const rest = await generate(spare.client, {
      ...req,
      continuation: { tokenIds: ids, text, completionTokens: ids.length },
    });
    return { ids, text, rest };
  } finally {
    await crashing.close();
  }
}

/** Delivered + continued must be the undisturbed run: text, ids, finish and usage. */
function assertSameAsUndisturbed(
  k: number,
  m: { ids: number[]; text: string; rest: StreamResult },
  undisturbed: StreamResult,
) {
  assert.equal(m.text + m.rest.text, undisturbed.text, `k=${k}: byte-identical text`);
  assert.deepEqual([...m.ids, ...idsOf(m.rest)], idsOf(undisturbed), `k=${k}: the same token ids`);
  const end = m.rest.chunks.at(-1);
  const last = undisturbed.chunks.at(-1);
  assert.equal(end?.finishReason, last?.finishReason, `k=${k}: finish reason`);
  assert.equal(end?.usage?.promptTokens, last?.usage?.promptTokens, `k=${k}: prompt tokens`);
  assert.equal(end?.usage?.completionTokens, last?.usage?.completionTokens, `k=${k}: completion tokens`);
}

describe('sidecar continuation across held-back text', () => {
  let spare: Pod;
  before(async () => {
    spare = await startPod();
  });
  after(async () => {
    await spare.close();
  });

  const chat: GenerateRequest = {
    model: MODEL,
    messages: [{ role: 'user', content: 'Tell me about rivers.' }],
    sampling: { maxTokens: 48, temperature: 0, seed: 7 },
  };
  const cases = [
    { kind: 'prompt', req: base, ks: [2, 9, 30] },
    { kind: 'chat', req: chat, ks: [9] },
  ];
  for (const { kind, req: plain, ks } of cases) {
    it(`${kind}: a stop string that never matches: the held-back tail is not lost, at any crash point`, async () => {
      // Without stop strings each chunk is one token's text: what the ids of k tokens cover.
      const free = await generate(spare.client, plain);
      const covered = (k: number) =>
        free.chunks
          .slice(0, k)
          .map((c) => c.text)
          .join('');
      const req = { ...plain, sampling: { ...plain.sampling, stop: ['QQQQQQQQ'] } };
      const undisturbed = await generate(spare.client, req);
      assert.equal(undisturbed.text, free.text);
      assert.equal(undisturbed.chunks.at(-1)?.finishReason, 'FINISH_REASON_LENGTH');
      for (const k of ks) {
        const m = await migrateAt(spare, req, k);
        assert.equal(m.ids.length, k, `k=${k}: every generated id was delivered`);
        assert.ok(
          covered(k).startsWith(m.text) && m.text.length < covered(k).length,
          `k=${k}: the delivered ids cover text that was held back`,
        );
        assertSameAsUndisturbed(k, m, undisturbed);
      }
    });
  }

  it('a stop string in the output: cut at the match and STOP, wherever the seam falls', async () => {
    // Each chunk of a run without stop strings is one token's text, nothing held back.
    const free = await generate(spare.client, base);
    const pieces = free.chunks.map((c) => c.text);
    const startOf = (i: number) => pieces.slice(0, i).join('').length;
    // Three tokens from the middle whose text first occurs there: the stop string
    // starts in token `at` (after its leading space) and is completed by token `at + 2`.
    let at = 20;
    let stop = '';
    for (; at < pieces.length - 3; at++) {
      stop = pieces
        .slice(at, at + 3)
        .join('')
        .trimStart();
      const first = free.text.indexOf(stop);
      if (stop.length >= 6 && first >= startOf(at) && first < startOf(at + 1)) break;
    }
    assert.ok(at < pieces.length - 3, 'a stop string was found in the output');
    const matchAt = free.text.indexOf(stop);

    const req = withStop([stop]);
    const undisturbed = await generate(spare.client, req);
    assert.equal(undisturbed.text, free.text.slice(0, matchAt), 'the engine cuts before the match');
    assert.equal(undisturbed.chunks.at(-1)?.finishReason, 'FINISH_REASON_STOP');
    assert.equal(idsOf(undisturbed).length, at + 3, 'the ids run to the token that completed the match');

    // Crash points: well before the match, just before it, with the match's
    // first token delivered as ids only, and with two of its three tokens
    // delivered (the match straddles the seam, starting in the held-back tail).
    for (const k of [at - 6, at - 1, at, at + 1, at + 2]) {
      const m = await migrateAt(spare, req, k);
      assert.equal(m.ids.length, k, `k=${k}: every generated id was delivered`);
      assertSameAsUndisturbed(k, m, undisturbed);
    }
  });

  for (const detokenize of ['missing', 'garbled'] as const) {
    it(`an engine whose /detokenize is ${detokenize}: ${detokenize === 'missing' ? 'exact as before, the engine applies the stop strings, warned once' : 'continued from the text, with a warning why'}`, async () => {
      const lines: string[] = [];
      const logger = createLogger('sidecar', { level: 'warn', write: (l) => lines.push(l) });
      const pod = await startPod({ detokenize, logger });
      try {
        const req = withStop(['QQQQQQQQ']);
        const first = await migrateAt(pod, req, 9);
        const second = await migrateAt(pod, req, 12);
        for (const m of [first, second]) {
          assert.equal(m.rest.chunks.at(-1)?.finishReason, 'FINISH_REASON_LENGTH');
          assert.ok(m.rest.text.length > 0);
        }
        const runs = pod.seen.filter((s) => s.path === '/v1/completions');
        const warnings = lines.map((l) => JSON.parse(l) as { msg: string; reason?: string });
        assert.equal(runs.length, 2);
        if (detokenize === 'missing') {
          for (const r of runs) {
            assert.ok(Array.isArray(r.body.prompt), 'a token-id prompt');
            assert.deepEqual(r.body.stop, ['QQQQQQQQ'], 'the engine applies the stop strings');
          }
          assert.deepEqual(
            warnings.map((w) => w.msg),
            ['engine has no /detokenize; continuations may lose text the engine held back'],
          );
        } else {
          for (const [i, r] of runs.entries()) {
            const text = [first, second][i]?.text;
            assert.equal(r.body.prompt, `${req.prompt}${text}`, 'a text prompt');
            assert.deepEqual(r.body.stop, ['QQQQQQQQ']);
          }
          assert.equal(warnings.length, 2);
          for (const w of warnings) {
            assert.equal(w.msg, 'delivered ids do not match the delivered text; continuing from text');
            assert.match(w.reason ?? '', /differs from the delivered text at character 1/);
          }
        }
      } finally {
        await pod.close();
      }
    });
  }
});
