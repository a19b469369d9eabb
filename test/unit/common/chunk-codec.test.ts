import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeChunk, encodeChunk } from '../../../common/chunk-codec.js';
import { createRandom as rng } from '../../../common/random.js';
import { pbDecode, pbEncode, randomChunk } from '../../helpers/chunk-fuzz.js';

/** A varint, as bytes. */
function varint(v: number | bigint): number[] {
  let n = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}

/** An unknown field of a random wire type, with a field number the message does not use. */
function unknownField(random: () => number): number[] {
  const field = 6 + Math.floor(random() * 2000);
  switch (Math.floor(random() * 4)) {
    case 0:
      return [...varint(field * 8), ...varint(BigInt(Math.floor(random() * 2 ** 53)) * 1000n)];
    case 1:
      return [...varint(field * 8 + 1), 1, 2, 3, 4, 5, 6, 7, 8];
    case 2:
      return [...varint(field * 8 + 2), 3, 0x0a, 0x01, 0x41];
    default:
      return [...varint(field * 8 + 5), 9, 9, 9, 9];
  }
}

describe('GenerateChunk codec', () => {
  it('decodes what protobufjs encodes, to the object proto-loader gives', () => {
    const random = rng(1);
    for (let i = 0; i < 3000; i++) {
      const bytes = pbEncode(randomChunk(random));
      assert.deepEqual(decodeChunk(bytes), pbDecode(bytes));
    }
  });

  it('encodes what protobufjs decodes back to the same message', () => {
    const random = rng(2);
    for (let i = 0; i < 3000; i++) {
      const chunk = randomChunk(random);
      const want = pbDecode(pbEncode(chunk));
      assert.deepEqual(pbDecode(encodeChunk(chunk)), want);
      assert.deepEqual(decodeChunk(encodeChunk(chunk)), want);
    }
  });

  it('skips unknown fields and reads unpacked token ids, sign-extended enums and long varints', () => {
    const random = rng(3);
    for (let i = 0; i < 2000; i++) {
      const chunk = randomChunk(random);
      // Rebuild the message field by field: token ids unpacked (one field each), unknown fields between.
      const fields: number[][] = [];
      const plain = { ...chunk, tokenIds: [] };
      const base = [...pbEncode(plain)];
      fields.push(base);
      for (const id of chunk.tokenIds ?? []) {
        // uint32 values may arrive as ten-byte varints (written as negative int32 by some encoders).
        const wide = random() < 0.2 && id >= 2 ** 31 ? varint(BigInt(id) - 2n ** 32n) : varint(id);
        fields.push([0x28, ...wide]);
      }
      if (random() < 0.3) fields.push([0x10, ...varint(-1)]);
      const bytes: number[] = [];
      for (const f of fields) {
        if (random() < 0.5) bytes.push(...unknownField(random));
        bytes.push(...f);
      }
      if (random() < 0.5) bytes.push(...unknownField(random));
      const buf = Buffer.from(bytes);
      assert.deepEqual(decodeChunk(buf), pbDecode(buf), `bytes ${buf.toString('hex')}`);
    }
  });

  it('rejects a truncated message with an error naming the message', () => {
    const bytes = encodeChunk({ text: 'hello', tokenIds: [1, 2, 3] });
    for (let cut = 1; cut < bytes.length; cut++) {
      if (cut === 7) continue; // a whole text field: a valid message
      assert.throws(
        () => decodeChunk(bytes.subarray(0, cut)),
        /malformed llmmesh\.v1\.GenerateChunk/,
        `cut ${cut}`,
      );
    }
  });
});
