import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { CALLS_PER_CONNECTION, RotatingClient } from './rotating-client.js';

/**
 * A real gRPC server on loopback with one server-streaming method: `hold`
 * sends one message and stays open until the caller cancels (or, given a
 * count, sends that many more, one per `tick` the test releases).
 */
const METHOD = '/test.Hold/Hold';
const raw = (b: Buffer) => b;
let server: grpc.Server;
let address: string;
/** The caller's address and port of each call, in arrival order: one port per connection. */
const peers: string[] = [];
const ticks = new EventTarget();

before(async () => {
  server = new grpc.Server();
  server.register<Buffer, Buffer>(
    METHOD,
    (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      peers.push(call.getPeer());
      call.write(Buffer.from('first'));
      const more = call.request.length > 0 ? (call.request[0] as number) : 0;
      if (more === 0) return; // held until cancelled
      let sent = 0;
      const onTick = () => {
        call.write(Buffer.from('more'));
        if (++sent === more) {
          ticks.removeEventListener('tick', onTick);
          call.end();
        }
      };
      ticks.addEventListener('tick', onTick);
      call.on('cancelled', () => ticks.removeEventListener('tick', onTick));
    },
    raw,
    raw,
    'serverStream',
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  address = `127.0.0.1:${port}`;
});

after(() => server.forceShutdown());

const make = (options: grpc.ChannelOptions) =>
  new grpc.Client(address, grpc.credentials.createInsecure(), options);

/** Starts a call; resolves with it once its first message arrived. */
async function start(
  client: grpc.Client | RotatingClient<grpc.Client>,
  more = 0,
): Promise<grpc.ClientReadableStream<Buffer>> {
  const open = (c: grpc.Client) =>
    c.makeServerStreamRequest<Buffer, Buffer>(METHOD, raw, raw, Buffer.from([more]));
  const call = client instanceof RotatingClient ? client.call(open) : open(client);
  call.on('error', () => {});
  await once(call, 'data');
  return call;
}

/** Cancels `call` and waits for its status. */
async function cancel(call: grpc.ClientReadableStream<Buffer>): Promise<void> {
  const status = statusOf(call);
  call.cancel();
  await status;
}

/** Resolves with the call's status (`events.once` would reject on its 'error'). */
const statusOf = (call: grpc.ClientReadableStream<Buffer>) =>
  new Promise<grpc.StatusObject>((resolve) => call.once('status', resolve));

const portOf = (peer: string) => peer.slice(peer.lastIndexOf(':') + 1);

test('calls move to a fresh connection every callsPerConnection calls', async () => {
  const rotating = new RotatingClient(make, 3);
  peers.length = 0;
  try {
    for (let i = 0; i < 7; i++) await cancel(await start(rotating));
    const ports = peers.map(portOf);
    assert.equal(ports.length, 7);
    assert.equal(new Set(ports.slice(0, 3)).size, 1, 'calls 1-3 share one connection');
    assert.equal(new Set(ports.slice(3, 6)).size, 1, 'calls 4-6 share the next');
    assert.equal(new Set(ports).size, 3, `three connections, not ${new Set(ports).size}: ${ports.join(' ')}`);
  } finally {
    rotating.close();
  }
});

test('a call on a retired connection runs to its end', async () => {
  const rotating = new RotatingClient(make, 2);
  try {
    const long = await start(rotating, 3);
    const received: string[] = [];
    long.on('data', (b: Buffer) => received.push(b.toString()));
    const ended = statusOf(long);
    // The next two calls retire the first connection and move to a second one.
    await cancel(await start(rotating));
    await cancel(await start(rotating));
    for (let i = 0; i < 3; i++) ticks.dispatchEvent(new Event('tick'));
    const status = await ended;
    assert.equal(status.code, grpc.status.OK, status.details);
    assert.deepEqual(received, ['more', 'more', 'more']);
  } finally {
    rotating.close();
  }
});

test('calls started in one turn across a switch all run, on the connection that took them', async () => {
  // grpc-js starts a call a tick after it is made: a connection closed at
  // the switch would fail the calls it took but had not started yet.
  const rotating = new RotatingClient(make, 2);
  peers.length = 0;
  try {
    const calls = Array.from({ length: 7 }, () => start(rotating));
    const started = await Promise.all(calls);
    await Promise.all(started.map(cancel));
    const ports = peers.map(portOf);
    assert.equal(ports.length, 7, 'every call reached the server');
    assert.equal(new Set(ports).size, 4, `four connections: ${ports.join(' ')}`);
  } finally {
    rotating.close();
  }
});

test('while the next connection cannot connect, the current one carries on, up to 1.8 times its share', async () => {
  // Only the first connection reaches the server; the next ones dial a port nothing listens on.
  const closed = await new Promise<number>((resolve) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const made: grpc.Client[] = [];
  const rotating = new RotatingClient((options) => {
    const target = made.length === 0 ? address : `127.0.0.1:${closed}`;
    const client = new grpc.Client(target, grpc.credentials.createInsecure(), options);
    made.push(client);
    return client;
  }, 3);
  peers.length = 0;
  try {
    for (let i = 0; i < 3; i++) await cancel(await start(rotating));
    // The next connection was started ahead of the switch; wait until it has failed.
    const next = (made[1] as grpc.Client).getChannel();
    for (
      let changes = 0;
      next.getConnectivityState(true) !== grpc.connectivityState.TRANSIENT_FAILURE;
      changes++
    ) {
      assert.ok(changes < 10, `the next connection never failed: ${next.getConnectivityState(false)}`);
      const state = next.getConnectivityState(false);
      await new Promise<void>((resolve) =>
        next.watchConnectivityState(state, Date.now() + 10_000, () => resolve()),
      );
    }
    for (let i = 0; i < 2; i++) await cancel(await start(rotating));
    const ports = peers.map(portOf);
    assert.equal(
      new Set(ports).size,
      1,
      `calls 4 and 5 stayed on the working connection: ${ports.join(' ')}`,
    );
    // The sixth has carried the most: it moves, and fails on the broken connection.
    await assert.rejects(start(rotating), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  } finally {
    rotating.close();
  }
});

test('a burst of cancelled calls past the server reset limit leaves other streams open', async () => {
  // A Node gRPC server closes a connection on which it receives over 1000
  // RST_STREAMs in a burst, failing every stream still open on it; the
  // rotating client never lets one connection carry that many calls.
  const rotating = new RotatingClient(make);
  try {
    const survivor = await start(rotating);
    let survivorError: Error | undefined;
    survivor.on('error', (err: Error) => {
      survivorError = err;
    });
    const storm = 3 * CALLS_PER_CONNECTION;
    for (let done = 0; done < storm; done += 100) {
      const calls = await Promise.all(Array.from({ length: 100 }, () => start(rotating)));
      await Promise.all(calls.map(cancel));
    }
    assert.equal(survivorError, undefined, `the survivor failed: ${survivorError?.message}`);
    const status = statusOf(survivor);
    survivor.cancel();
    const s = await status;
    assert.equal(
      s.code,
      grpc.status.CANCELLED,
      `the survivor ended with ${s.code} ${s.details}, not by its cancel`,
    );
  } finally {
    rotating.close();
  }
});

test('a single connection does lose its streams to that burst (the guard the client avoids)', async () => {
  const client = make({ 'grpc.use_local_subchannel_pool': 1 });
  try {
    const survivor = await start(client);
    const ended = statusOf(survivor);
    for (let done = 0; done < 3 * CALLS_PER_CONNECTION; done += 100) {
      // Calls in flight when the server closes the connection fail with it.
      const calls = await Promise.allSettled(Array.from({ length: 100 }, () => start(client)));
      await Promise.all(calls.flatMap((c) => (c.status === 'fulfilled' ? [cancel(c.value)] : [])));
    }
    // Had the server kept the connection, this cancel would end it (CANCELLED).
    survivor.cancel();
    const status = await ended;
    assert.equal(status.code, grpc.status.INTERNAL, `${status.code} ${status.details}`);
  } finally {
    client.close();
  }
});
