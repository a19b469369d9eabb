import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { START_PER_TURN, StartGate } from './start-gate.js';

test('a lone request starts at once, with no promise to wait on', () => {
  const gate = new StartGate();
  assert.equal(gate.enter(), undefined);
});

test('a burst starts its first share at once and the rest in later turns, in arrival order', async () => {
  const gate = new StartGate(4);
  const started: number[] = [];
  const done: Array<Promise<void>> = [];
  for (let i = 0; i < 20; i++) {
    const turn = gate.enter();
    if (turn === undefined) started.push(i);
    else done.push(turn.then(() => void started.push(i)));
  }
  assert.deepEqual(started, [0, 1, 2, 3]);
  assert.equal(gate.queued, 16);
  await new Promise((resolve) => setImmediate(resolve));
  // Half of the 16 waiting (at least the turn's share) start in the next turn.
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  await Promise.all(done);
  assert.deepEqual(
    started,
    Array.from({ length: 20 }, (_, i) => i),
  );
  assert.equal(gate.queued, 0);
  // The burst is over: the next request starts at once again.
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(gate.enter(), undefined);
});

test('each request of a turn is set up, promise jobs and all, before the next one starts', async () => {
  const gate = new StartGate(2);
  const events: string[] = [];
  const setUp = async (i: number) => {
    events.push(`start ${i}`);
    // Stands for the awaits of a request's setup (admission, the pick) on settled promises.
    for (let k = 0; k < 5; k++) await Promise.resolve();
    events.push(`set up ${i}`);
  };
  const all: Array<Promise<void>> = [];
  for (let i = 0; i < 8; i++) {
    const turn = gate.enter();
    all.push(turn === undefined ? setUp(i) : turn.then(() => setUp(i)));
  }
  await Promise.all(all);
  // The two that started at once share a tick here; every later one waits for the one before.
  assert.deepEqual(
    events.slice(4),
    [2, 3, 4, 5, 6, 7].flatMap((i) => [`start ${i}`, `set up ${i}`]),
  );
});

test('the HTTP/2 frames of a turn are written before the next turn starts', async (t) => {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 });
    stream.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.after(() => session.close());
  await once(session, 'connect');

  const gate = new StartGate();
  const burst = START_PER_TURN * 2;
  /** Frames still waiting to be written when each request started. */
  const queuedAtStart: number[] = [];
  const streams: Array<Promise<unknown>> = [];
  const start = () => {
    queuedAtStart.push(session.state.outboundQueueSize ?? 0);
    const req = session.request({ ':path': '/' });
    req.resume();
    req.end();
    streams.push(once(req, 'close'));
  };
  const turns: Array<Promise<void>> = [];
  for (let i = 0; i < burst; i++) {
    const turn = gate.enter();
    if (turn === undefined) start();
    else turns.push(turn.then(start));
  }
  await Promise.all(turns);
  await Promise.all(streams);
  // The first turn's requests queued behind each other; the second turn's
  // first request found them written.
  assert.ok((queuedAtStart[START_PER_TURN - 1] as number) > 0, `queued: ${queuedAtStart.join(' ')}`);
  assert.equal(queuedAtStart[START_PER_TURN], 0, `queued: ${queuedAtStart.join(' ')}`);
});
