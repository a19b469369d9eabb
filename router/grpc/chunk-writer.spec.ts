import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { decodeChunk } from '../../common/chunk-codec.js';
import { RelayChunk } from '../../common/chunk-relay.js';
import { COALESCE_BACKLOG } from '../../common/coalescing.js';
import { type ChunkStream, ChunkWriter, MAX_PENDING_TOKENS } from './chunk-writer.js';

/**
 * A server stream as the writer sees it: a Writable with grpc-js's buffer
 * (16 messages before `write` returns false), whose client takes a message
 * only when the test lets it (`take`), or at once when `keepUp` is set.
 */
class Client extends Writable {
  cancelled = false;
  keepUp = false;
  readonly received: Buffer[] = [];
  private held: Array<() => void> = [];

  constructor() {
    super({ objectMode: true, highWaterMark: 16 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const deliver = () => {
      this.received.push(chunk);
      done();
    };
    if (this.keepUp) deliver();
    else this.held.push(deliver);
  }

  /** Lets the client take the message being written, if any; true if there was one. */
  take(): boolean {
    const next = this.held.shift();
    next?.();
    return next !== undefined;
  }

  /** Reads on until nothing is being written. */
  async drainAll(): Promise<void> {
    for (;;) {
      if (!this.take()) {
        await new Promise((r) => setImmediate(r));
        if (!this.take()) return;
      }
      await new Promise((r) => setImmediate(r));
    }
  }

  cancel(): void {
    this.cancelled = true;
    this.emit('cancelled');
  }

  /** What the client got, decoded. */
  messages() {
    return this.received.map((b) => decodeChunk(b));
  }
}

const token = (i: number) => RelayChunk.of({ text: `w${i} `, tokenIds: [1000 + i] });
const asStream = (c: Client) => c as unknown as ChunkStream;
const tick = () => new Promise((r) => setImmediate(r));

function whole(c: Client) {
  const ms = c.messages();
  return { text: ms.map((m) => m.text).join(''), ids: ms.flatMap((m) => m.tokenIds) };
}

function expected(n: number) {
  return {
    text: Array.from({ length: n }, (_, i) => `w${i} `).join(''),
    ids: Array.from({ length: n }, (_, i) => 1000 + i),
  };
}

describe('ChunkWriter', () => {
  it('sends one message per chunk to a client that keeps up', async () => {
    const client = new Client();
    client.keepUp = true;
    const writer = new ChunkWriter(asStream(client));
    for (let i = 0; i < 3000; i++) {
      assert.equal(writer.write(token(i)), undefined);
      if (i % 100 === 0) await tick();
    }
    writer.flush();
    await tick();
    assert.equal(client.received.length, 3000);
    assert.ok(client.messages().every((m) => m.tokenIds.length === 1));
    assert.deepEqual(whole(client), expected(3000));
  });

  it('once the client fell behind, merges what arrives while a message is in flight', async () => {
    const client = new Client();
    const writer = new ChunkWriter(asStream(client));
    let n = 0;
    // Behind: the backlog fills, then chunks merge until 'drain'.
    while (n < COALESCE_BACKLOG + 100) writer.write(token(n++));
    await client.drainAll();
    const afterDrain = client.received.length;
    assert.equal(afterDrain, COALESCE_BACKLOG + 1, 'the backlog, then one message for the merged chunks');
    // Slow from now on: each chunk that arrives while one message is in flight is merged into the next.
    for (let round = 0; round < 10; round++) {
      for (let k = 0; k < 50; k++) writer.write(token(n++));
      client.take();
      await tick();
    }
    writer.flush();
    await client.drainAll();
    const ms = client.messages();
    assert.equal(ms[0]?.tokenIds.length, 1, 'the first chunk goes out alone');
    assert.ok(ms.length - afterDrain <= 21, `${ms.length - afterDrain} messages for 500 chunks`);
    assert.ok(ms.slice(afterDrain).some((m) => m.tokenIds.length > 1));
    assert.deepEqual(whole(client), expected(n));
    assert.equal(writer.messages, ms.length);
  });

  it('pushes back once the merged chunks reach their limit, until the message in flight is written', async () => {
    const client = new Client();
    const writer = new ChunkWriter(asStream(client));
    let n = 0;
    while (n < COALESCE_BACKLOG + 1) writer.write(token(n++));
    await client.drainAll();
    writer.write(token(n++)); // in flight, not yet taken
    let wait: Promise<void> | undefined;
    for (let k = 0; k < MAX_PENDING_TOKENS && !wait; k++) wait = writer.write(token(n++));
    assert.ok(wait, 'the upstream read waits');
    let resolved = false;
    void wait.then(() => {
      resolved = true;
    });
    await tick();
    assert.equal(resolved, false);
    client.take();
    await tick();
    assert.equal(resolved, true);
    writer.flush();
    await client.drainAll();
    assert.deepEqual(whole(client), expected(n));
  });

  it('rejects the wait when the client goes away', async () => {
    const client = new Client();
    const writer = new ChunkWriter(asStream(client));
    let n = 0;
    while (n < COALESCE_BACKLOG + 1) writer.write(token(n++));
    await client.drainAll();
    writer.write(token(n++));
    let wait: Promise<void> | undefined;
    for (let k = 0; k < MAX_PENDING_TOKENS && !wait; k++) wait = writer.write(token(n++));
    assert.ok(wait);
    client.cancel();
    await assert.rejects(wait, /client went away/);
  });
});
