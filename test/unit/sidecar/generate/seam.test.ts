import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { type MeshError, Status } from '../../../../common/errors.js';
import { createEngineClient, type EngineEvent } from '../../../../sidecar/engine-client.js';
import type { StreamChunk } from '../../../../sidecar/generate/flight.js';
import { checkSeam, createSeam } from '../../../../sidecar/generate/seam.js';
import { startHttpServer } from '../../../helpers/http-server.js';

const cont = (text: string, tokenIds: number[]) => ({ text, tokenIds, completionTokens: tokenIds.length });

describe('seam', () => {
  const closers: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of closers) await c();
  });

  it("finds the held-back tail by decoding the delivered ids after the prompt's last ones, or says why not", async () => {
    // A tokenizer that, like SentencePiece, drops the leading space of a decoded text.
    const pieces: Record<number, string> = {
      1: '<s>',
      2: ' The',
      5: ' you',
      6: ' know',
      7: ' fir',
      8: ' caf',
      9: '\uFFFD',
    };
    let answer: 'decode' | 'garble' | 'missing' | 'refuse' = 'decode';
    const server = await startHttpServer((_req, res, body) => {
      const tokens = (JSON.parse(body) as { tokens: number[] }).tokens;
      const text = tokens
        .map((t) => pieces[t] ?? '')
        .join('')
        .replace(/^ /, '');
      const [status, json] =
        answer === 'missing'
          ? [404, { detail: 'Not Found' }]
          : answer === 'refuse'
            ? [400, { object: 'error', message: 'bad ids', type: 'BadRequestError', code: 400 }]
            : [200, { prompt: answer === 'garble' ? text.replace('know', 'knew') : text }];
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
    });
    const engine = createEngineClient({ url: server.url });
    closers.push(() => engine.close(), server.close);
    const delivered = cont(' you know', [5, 6, 7]);

    assert.deepEqual(await checkSeam(engine, 'm', delivered, [1, 2], {}), { kind: 'tail', heldBack: ' fir' });
    assert.deepEqual(
      server.requests.map((r) => JSON.parse(r.body)),
      [
        { model: 'm', tokens: [1, 2] },
        { model: 'm', tokens: [1, 2, 5, 6, 7] },
      ],
    );
    assert.deepEqual(await checkSeam(engine, 'm', cont(' you know', [5, 6]), [1, 2], {}), {
      kind: 'tail',
      heldBack: '',
    });
    assert.deepEqual(
      await checkSeam(engine, 'm', cont(' you know', [5, 6, 8, 9]), [1, 2], {}),
      { kind: 'tail', heldBack: ' caf' },
      'an unfinished character is not handed out',
    );
    const alone = await checkSeam(engine, 'm', delivered, [], {});
    assert.equal(alone.kind, 'mismatch', 'without context the leading space is lost');

    answer = 'garble';
    const garbled = await checkSeam(engine, 'm', delivered, [1, 2], {});
    assert.equal(garbled.kind, 'mismatch');
    assert.match(garbled.kind === 'mismatch' ? garbled.reason : '', /at character 7/);

    answer = 'missing';
    assert.deepEqual(await checkSeam(engine, 'm', delivered, [1, 2], {}), { kind: 'unsupported' });

    answer = 'refuse';
    await assert.rejects(
      checkSeam(engine, 'm', delivered, [1, 2], {}),
      (e: MeshError) => e.code === Status.INVALID_ARGUMENT,
    );
  });

  const run = (stop: string[], heldBack: string, events: EngineEvent[]) => {
    const seam = createSeam(stop, heldBack, cont('delivered', [1, 2, 3]), 11, (u) => ({
      ...u,
      completionTokens: u.completionTokens + 3,
    }));
    const chunks: StreamChunk[] = [];
    for (const ev of events) {
      const c = seam.next(ev);
      if (c) chunks.push(c);
      if (seam.stopped) break;
    }
    return { chunks, stopped: seam.stopped };
  };

  it('hands out the held-back tail first, then the engine text, with the engine finish and usage', () => {
    const { chunks, stopped } = run(['QQQQ'], ' fir', [
      { text: 'st', tokenIds: [9] },
      { text: ' does', tokenIds: [10] },
      {
        text: ' music',
        tokenIds: [11],
        finishReason: 'length',
        usage: { promptTokens: 14, completionTokens: 3, cachedTokens: 0 },
      },
    ]);
    assert.equal(stopped, false);
    assert.equal(chunks.map((c) => c.text).join(''), ' first does music');
    assert.deepEqual(
      chunks.flatMap((c) => c.tokenIds ?? []),
      [9, 10, 11],
    );
    assert.deepEqual(chunks.at(-1)?.usage, { promptTokens: 14, completionTokens: 6, cachedTokens: 0 });
    assert.equal(chunks.at(-1)?.finishReason, 'length');
  });

  it('a stop string straddling the seam ends the stream at the token that completes it', () => {
    const { chunks, stopped } = run(['first does'], ' fir', [
      { text: 'st', tokenIds: [9] },
      { text: ' does', tokenIds: [10] },
      { text: ' music', tokenIds: [11] },
    ]);
    assert.equal(stopped, true);
    assert.equal(chunks.map((c) => c.text).join(''), ' ');
    assert.deepEqual(
      chunks.flatMap((c) => c.tokenIds ?? []),
      [9, 10],
      'no id after the completing token',
    );
    assert.equal(chunks.at(-1)?.finishReason, 'stop');
    assert.deepEqual(chunks.at(-1)?.usage, { promptTokens: 11, completionTokens: 5, cachedTokens: 0 });
  });

  it('an event with neither text to hand out nor ids gives no chunk', () => {
    const { chunks } = run(['QQQQ'], '', [{ text: 'ab' }, { text: '', finishReason: 'stop' }]);
    assert.deepEqual(chunks, [{ text: 'ab', finishReason: 'stop' }]);
  });
});
