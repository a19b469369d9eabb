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
import { after, before, describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { createSidecarClient, generate, type StreamResult } from '../bench/sidecar-client.js';
import { Status } from '../common/errors.js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import { silentLogger } from '../common/log.js';
import { startSidecar } from '../sidecar/server.js';
import { createSimServer } from '../sim/server.js';
import { MODEL } from './helpers/mesh.js';
import { nextEvent } from './helpers/wait.js';

interface Pod {
  client: EngineClient;
  close(): Promise<void>;
}

/** A simulator and its sidecar; the simulator crashes after `crashAfterTokens` tokens of a stream when given. */
async function startPod(crashAfterTokens?: number): Promise<Pod> {
  const sim = createSimServer({
    servedModelName: MODEL,
    timeScale: 0,
    onCrash: () => {},
    ...(crashAfterTokens !== undefined ? { faults: { crashAfterTokens } } : {}),
  });
  const sidecar = await startSidecar({
    engineUrl: (await sim.listen(0)).url,
    listen: '127.0.0.1:0',
    model: MODEL,
    version: 'v1',
    probeIntervalMs: 50,
    logger: silentLogger,
  });
  await nextEvent(sidecar.events, 'report', (r: { ready: boolean }) => r.ready);
  const client = createSidecarClient(sidecar.address);
  return {
    client,
    async close() {
      client.close();
      await sidecar.close();
      await sim.close();
    },
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
  const crashing = await startPod(k);
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

  it('a stop string that never matches: the held-back tail is not lost, at any crash point', async () => {
    const req = withStop(['QQQQQQQQ']);
    const undisturbed = await generate(spare.client, req);
    assert.equal(undisturbed.chunks.at(-1)?.finishReason, 'FINISH_REASON_LENGTH');
    for (const k of [2, 9, 30]) {
      const m = await migrateAt(spare, req, k);
      assert.equal(m.ids.length, k, `k=${k}: every generated id was delivered`);
      assert.ok(
        m.text.length < undisturbed.text.length && undisturbed.text.startsWith(m.text),
        `k=${k}: some text was held back`,
      );
      assertSameAsUndisturbed(k, m, undisturbed);
    }
  });

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
});
