/**
 * A hand-written protobuf codec for `llmmesh.v1.GenerateChunk`, the message
 * of every streamed token on both hops. proto-loader's generic path
 * (protobufjs decode, then `toObject`; `fromObject`, then encode) builds two
 * objects per message and walks reflection data; this reads and writes the
 * five fields directly. It produces exactly what proto-loader does with
 * `PROTO_LOADER_OPTIONS` (defaults filled in, enums as names, unknown enum
 * values as numbers, unknown fields skipped, token ids packed or not), and
 * encodes what protobufjs reads back as the same message (fields in number
 * order, token ids packed; proto3 defaults are left out, where protobufjs
 * writes the fields present in the object even at their default).
 *
 *     message GenerateChunk { string text = 1; FinishReason finish_reason = 2;
 *       Usage usage = 3; string model_version = 4; repeated uint32 token_ids = 5; }
 *     message Usage { uint32 prompt_tokens = 1; uint32 completion_tokens = 2; uint32 cached_tokens = 3; }
 */
import type { FinishReason__Output } from './generated/llmmesh/v1/FinishReason.js';
import type { GenerateChunk, GenerateChunk__Output } from './generated/llmmesh/v1/GenerateChunk.js';
import type { Usage, Usage__Output } from './generated/llmmesh/v1/Usage.js';

export const FINISH_NAMES: readonly FinishReason__Output[] = [
  'FINISH_REASON_UNSPECIFIED',
  'FINISH_REASON_STOP',
  'FINISH_REASON_LENGTH',
];
const FINISH_VALUES: Readonly<Record<string, number>> = {
  FINISH_REASON_UNSPECIFIED: 0,
  FINISH_REASON_STOP: 1,
  FINISH_REASON_LENGTH: 2,
};

/** A malformed message: grpc-js turns a deserializer's throw into an INTERNAL status. */
export function malformed(what: string): Error {
  return new Error(`malformed llmmesh.v1.GenerateChunk: ${what}`);
}

/** Reads protobuf wire data from one buffer. */
export class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint's low 32 bits, unsigned (how uint32 and enum fields read longer encodings). */
  uint32(): number {
    const buf = this.buf;
    let value = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw malformed('truncated varint');
      const b = buf[this.pos++] as number;
      if (shift < 32) value |= (b & 0x7f) << shift;
      shift += 7;
      if (b < 0x80) return value >>> 0;
    }
    throw malformed('varint longer than 10 bytes');
  }

  /** An int32 (enum) value: the varint's low 32 bits, signed. */
  int32(): number {
    return this.uint32() | 0;
  }

  /** The end of a length-delimited field starting here. */
  span(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) throw malformed('length beyond the message');
    return end;
  }

  string(): string {
    const end = this.span();
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end;
    return s;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.uint32();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.pos = this.span();
        return;
      case 3:
        // A group: skip fields up to its end tag.
        for (;;) {
          const tag = this.uint32();
          if ((tag & 7) === 4) return;
          this.skip(tag & 7);
        }
      case 5:
        this.pos += 4;
        break;
      default:
        throw malformed(`invalid wire type ${wireType} at offset ${this.pos}`);
    }
    if (this.pos > this.end) throw malformed('truncated field');
  }
}

export function decodeUsage(r: Reader, end: number): Usage__Output {
  const usage: Usage__Output = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
  const outer = r.end;
  const inner = new Reader(r.buf, r.pos, end);
  while (inner.pos < end) {
    const tag = inner.uint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0 && field === 1) usage.promptTokens = inner.uint32();
    else if (wire === 0 && field === 2) usage.completionTokens = inner.uint32();
    else if (wire === 0 && field === 3) usage.cachedTokens = inner.uint32();
    else inner.skip(wire);
  }
  if (inner.pos !== end || end > outer) throw malformed('usage overruns its length');
  r.pos = end;
  return usage;
}

/** Decodes one message as proto-loader does (defaults filled in, enums as names). */
export function decodeChunk(buf: Buffer): GenerateChunk__Output {
  const chunk: GenerateChunk__Output = {
    tokenIds: [],
    text: '',
    finishReason: 'FINISH_REASON_UNSPECIFIED',
    usage: null,
    modelVersion: '',
  };
  const r = new Reader(buf, 0, buf.length);
  while (r.pos < r.end) {
    const tag = r.uint32();
    const field = tag >>> 3;
    const wire = tag & 7;
    switch (field) {
      case 1:
        if (wire !== 2) break;
        chunk.text = r.string();
        continue;
      case 2: {
        if (wire !== 0) break;
        const v = r.int32();
        chunk.finishReason = FINISH_NAMES[v] ?? (v as unknown as FinishReason__Output);
        continue;
      }
      case 3:
        if (wire !== 2) break;
        chunk.usage = decodeUsage(r, r.span());
        continue;
      case 4:
        if (wire !== 2) break;
        chunk.modelVersion = r.string();
        continue;
      case 5:
        if (wire === 2) {
          const end = r.span();
          while (r.pos < end) chunk.tokenIds.push(r.uint32());
          if (r.pos !== end) throw malformed('packed token_ids overrun their length');
          continue;
        }
        if (wire !== 0) break;
        chunk.tokenIds.push(r.uint32());
        continue;
    }
    if (field === 0) throw malformed(`invalid tag ${tag}`);
    r.skip(wire);
  }
  return chunk;
}

export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Writes an unsigned 32-bit varint at `pos`; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, value: number): number {
  let v = value >>> 0;
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/** An enum's wire value: a known name, or a number as is (as protobufjs' fromObject takes them). */
function finishValue(reason: unknown): number {
  if (typeof reason === 'number') return reason | 0;
  return FINISH_VALUES[String(reason)] ?? 0;
}

/** The size of an int32 varint: negative values take ten bytes. */
function int32Size(v: number): number {
  return v < 0 ? 10 : varintSize(v);
}

function writeInt32(buf: Buffer, pos: number, value: number): number {
  if (value >= 0) return writeVarint(buf, pos, value);
  // Sign-extended to 64 bits: the low 32 bits, then four more 1 bits and a final 0x01.
  let v = value >>> 0;
  for (let i = 0; i < 4; i++) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = (v & 0x7f) | 0x70 | 0x80;
  for (let i = 0; i < 4; i++) buf[pos++] = 0xff;
  buf[pos++] = 0x01;
  return pos;
}

function usageSize(u: Usage): number {
  const p = (u.promptTokens ?? 0) >>> 0;
  const c = (u.completionTokens ?? 0) >>> 0;
  const k = (u.cachedTokens ?? 0) >>> 0;
  return (p ? 1 + varintSize(p) : 0) + (c ? 1 + varintSize(c) : 0) + (k ? 1 + varintSize(k) : 0);
}

/** Encodes one message (what proto-loader's serializer takes: enum names or numbers, fields optional). */
export function encodeChunk(chunk: GenerateChunk): Buffer {
  const text = chunk.text ?? '';
  const textBytes = text ? Buffer.byteLength(text) : 0;
  const finish = finishValue(chunk.finishReason);
  const usage = chunk.usage ?? undefined;
  const usageBytes = usage ? usageSize(usage) : 0;
  const version = chunk.modelVersion ?? '';
  const versionBytes = version ? Buffer.byteLength(version) : 0;
  const ids = chunk.tokenIds ?? [];
  let idBytes = 0;
  for (let i = 0; i < ids.length; i++) idBytes += varintSize((ids[i] as number) >>> 0);

  let size = 0;
  if (textBytes) size += 1 + varintSize(textBytes) + textBytes;
  if (finish) size += 1 + int32Size(finish);
  if (usage) size += 1 + varintSize(usageBytes) + usageBytes;
  if (versionBytes) size += 1 + varintSize(versionBytes) + versionBytes;
  if (ids.length) size += 1 + varintSize(idBytes) + idBytes;

  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  if (textBytes) {
    buf[pos++] = 0x0a;
    pos = writeVarint(buf, pos, textBytes);
    pos += buf.write(text, pos, textBytes, 'utf8');
  }
  if (finish) {
    buf[pos++] = 0x10;
    pos = writeInt32(buf, pos, finish);
  }
  if (usage) {
    buf[pos++] = 0x1a;
    pos = writeVarint(buf, pos, usageBytes);
    const p = (usage.promptTokens ?? 0) >>> 0;
    const c = (usage.completionTokens ?? 0) >>> 0;
    const k = (usage.cachedTokens ?? 0) >>> 0;
    if (p) {
      buf[pos++] = 0x08;
      pos = writeVarint(buf, pos, p);
    }
    if (c) {
      buf[pos++] = 0x10;
      pos = writeVarint(buf, pos, c);
    }
    if (k) {
      buf[pos++] = 0x18;
      pos = writeVarint(buf, pos, k);
    }
  }
  if (versionBytes) {
    buf[pos++] = 0x22;
    pos = writeVarint(buf, pos, versionBytes);
    pos += buf.write(version, pos, versionBytes, 'utf8');
  }
  if (ids.length) {
    buf[pos++] = 0x2a;
    pos = writeVarint(buf, pos, idBytes);
    for (let i = 0; i < ids.length; i++) pos = writeVarint(buf, pos, ids[i] as number);
  }
  return buf;
}
