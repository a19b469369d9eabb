/**
 * A burst of cancelled streams must not take other streams with it. A Node
 * gRPC server closes an HTTP/2 connection on which it receives more than
 * 1000 stream resets in a burst (its rapid-reset guard), failing every
 * stream still open on it: the sidecar would do so to the router's
 * connection, and the router to a client's. Users stopping generations,
 * deadlines and a client service going away all cancel streams in numbers.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { type GenerateStreamCall, type MeshError, Status } from '../client/index.js';
import { CALLS_PER_CONNECTION } from '../common/rotating-client.js';
import { MODEL, startTestMesh, type TestMesh } from './helpers/mesh.js';
import { waitUntil } from './helpers/wait.js';

/** Streams open at once in the burst (the pod runs them all). */
const WAVE = 40;

describe('cancel storm', () => {
  // A real-time engine (20 ms per token) and long answers: a stream runs until cancelled.
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh({
      pods: [
        {
          version: 'v1',
          sim: { timeScale: 1, interTokenLatencyMs: 20, maxNumSeqs: 1024 },
        },
      ],
    });
  });
  after(() => mesh.close());

  const open = (prompt: string) =>
    mesh.client.generateStream({ model: MODEL, prompt, sampling: { maxTokens: 8000 } });

  /** Starts a stream and waits for its first chunk; returns it with its iterator. */
  async function started(prompt: string) {
    const call = open(prompt);
    const iter = call[Symbol.asyncIterator]();
    const first = await iter.next();
    assert.equal(first.done, false, `${prompt}: no first chunk`);
    return { call, iter };
  }

  /** Cancels a stream and waits until it has ended. */
  async function cancel(call: GenerateStreamCall) {
    call.cancel();
    await call.traceId;
  }

  it('twice the reset limit of cancelled streams, and the stream beside them runs on', async (t) => {
    const survivor = await started('the survivor');
    let outcome = 'streaming';
    let chunks = 0;
    const read = new EventEmitter();
    const reading = (async () => {
      try {
        for (let r = await survivor.iter.next(); !r.done; r = await survivor.iter.next()) {
          chunks++;
          read.emit('chunk');
        }
        outcome = 'ended';
      } catch (err) {
        outcome = `failed: ${(err as MeshError).code} ${(err as MeshError).message}`;
        throw err;
      }
    })();
    reading.catch(() => {});
    const storm = 4 * CALLS_PER_CONNECTION;
    const stormStarted = performance.now();
    for (let done = 0; done < storm; done += WAVE) {
      const wave = await Promise.all(Array.from({ length: WAVE }, (_, i) => started(`storm ${done + i}`)));
      await Promise.all(wave.map((s) => cancel(s.call)));
    }
    // The server's guard refills 33 resets a second: a storm slower than
    // (2000 - 1000) / 33 ≈ 30 s would no longer reach it, and prove nothing.
    t.diagnostic(`${storm} streams cancelled in ${Math.round(performance.now() - stormStarted)} ms`);
    assert.equal(outcome, 'streaming', 'the stream beside the storm');
    const endpoint = mesh.router.endpoints.snapshot().endpoints[0];
    assert.equal(endpoint?.ready, true, `the pod's load stream: ${endpoint?.reason}`);
    const before = chunks;
    await waitUntil(read, 'chunk', () => chunks > before, 'a chunk of the survivor after the storm');
    survivor.call.cancel();
    await assert.rejects(reading, (err: MeshError) => err.code === Status.CANCELLED);
  });
});
