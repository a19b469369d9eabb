import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeChunk } from '../../../common/chunk-codec.js';
import { ChunkLog, mergeChunks, RelayChunk, withModelVersion } from '../../../common/chunk-relay.js';
import type {
  GenerateChunk,
  GenerateChunk__Output,
} from '../../../common/generated/llmmesh/v1/GenerateChunk.js';
import { createRandom } from '../../../common/random.js';
import { pbDecode, pbEncode, randomChunk } from '../../helpers/chunk-fuzz.js';

/** The message's bytes, sometimes with its fields repeated or split as other encoders may write them. */
function randomBytes(random: () => number): Buffer {
  const chunk = randomChunk(random);
  const parts = [pbEncode(chunk)];
  // Protobuf concatenation is a merge: a later text, finish reason, usage or version wins, token ids add up.
  while (random() < 0.2) parts.push(pbEncode(randomChunk(random)));
  if (random() < 0.2) {
    // Token ids unpacked, one field each.
    for (const id of [1, 300, 2 ** 32 - 1].slice(0, 1 + Math.floor(random() * 3))) {
      parts.push(pbEncode({ tokenIds: [] }), Buffer.from([0x28, ...varint(id)]));
    }
  }
  if (random() < 0.2) parts.push(Buffer.from([0x98, 0x01, 0x07])); // an unknown field (19, varint)
  return Buffer.concat(parts);
}

function varint(v: number): number[] {
  const out: number[] = [];
  let n = v;
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

/** What the router reads of a chunk, from protobufjs' decoding of the same bytes. */
function expected(m: GenerateChunk__Output) {
  return {
    tokens: m.tokenIds.length,
    textBytes: Buffer.byteLength(m.text),
    finishReason: m.finishReason,
    usage: m.usage,
    modelVersion: m.modelVersion,
    text: m.text,
    tokenIds: m.tokenIds,
  };
}

function read(c: RelayChunk) {
  return {
    tokens: c.tokens,
    textBytes: c.textBytes,
    finishReason: c.finishReason,
    usage: c.usage,
    modelVersion: c.modelVersion,
    text: c.text,
    tokenIds: c.tokenIds,
  };
}

describe('relayed chunks', () => {
  it('read the fields protobufjs decodes from the same bytes, repeated and unpacked fields included', () => {
    const random = createRandom(11);
    for (let i = 0; i < 3000; i++) {
      const bytes = randomBytes(random);
      const chunk = new RelayChunk(bytes);
      assert.deepEqual(read(chunk), expected(pbDecode(bytes)), `bytes ${bytes.toString('hex')}`);
      assert.equal(chunk.bytes, bytes, 'the bytes are relayed as received');
      // The text's position is that of the text protobuf keeps.
      assert.equal(bytes.toString('utf8', chunk.textAt, chunk.textAt + chunk.textBytes), chunk.text);
    }
  });

  it('set the model version by appending it, whatever the chunk carried', () => {
    const random = createRandom(12);
    for (let i = 0; i < 1000; i++) {
      const bytes = randomBytes(random);
      const version = ['v2', 'canary-é', 'x'.repeat(200)][i % 3] as string;
      assert.deepEqual(pbDecode(withModelVersion(bytes, version)), {
        ...pbDecode(bytes),
        modelVersion: version,
      });
    }
  });

  it('merge into one message with the text and ids of all, in order, and the tail', () => {
    const random = createRandom(13);
    for (let i = 0; i < 1000; i++) {
      const chunks = Array.from(
        { length: 1 + Math.floor(random() * 8) },
        () => new RelayChunk(randomBytes(random)),
      );
      const tail: GenerateChunk =
        random() < 0.5 ? {} : { finishReason: 'FINISH_REASON_STOP', modelVersion: 'v1' };
      if (random() < 0.5) tail.usage = { promptTokens: 3, completionTokens: 9, cachedTokens: 0 };
      const merged = pbDecode(mergeChunks(chunks, tail));
      assert.deepEqual(merged, {
        ...pbDecode(pbEncode(tail)),
        text: chunks.map((c) => c.text).join(''),
        tokenIds: chunks.flatMap((c) => c.tokenIds),
      });
    }
  });

  it('are kept in a log that reads back their text and ids in order', () => {
    const random = createRandom(14);
    const log = new ChunkLog();
    const chunks: RelayChunk[] = [];
    for (let i = 0; i < 500; i++) {
      const chunk = new RelayChunk(randomBytes(random));
      chunks.push(chunk);
      log.append(chunk.bytes);
    }
    assert.deepEqual(log.read(), {
      text: chunks.map((c) => c.text).join(''),
      tokenIds: chunks.flatMap((c) => c.tokenIds),
    });
    assert.deepEqual(new ChunkLog().read(), { text: '', tokenIds: [] });
  });

  it('reject what the chunk decoder rejects, naming the message', () => {
    const bytes = pbEncode({ text: 'hello', tokenIds: [1, 300, 3], usage: { promptTokens: 5 } });
    for (let cut = 1; cut < bytes.length; cut++) {
      const part = bytes.subarray(0, cut);
      const error = /malformed llmmesh\.v1\.GenerateChunk/;
      // Cut after a whole field (text ends at 7, usage at 11) the rest is a valid message.
      if (cut === 7 || cut === 11) {
        assert.doesNotThrow(() => new RelayChunk(part), `cut ${cut}`);
        continue;
      }
      assert.throws(() => decodeChunk(part), error, `cut ${cut}`);
      assert.throws(() => new RelayChunk(part), error, `cut ${cut}`);
    }
    // Packed ids whose last varint never ends, and a varint longer than ten bytes.
    assert.throws(() => new RelayChunk(Buffer.from([0x2a, 0x02, 0x01, 0x80])), /packed token_ids/);
    assert.throws(
      () => new RelayChunk(Buffer.from([0x2a, 0x0b, ...Array(10).fill(0x80), 0x01])),
      /longer than 10 bytes/,
    );
  });
});
