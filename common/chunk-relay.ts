/**
 * Streamed chunks relayed as received. `Engine.GenerateStream` streams the
 * same `llmmesh.v1.GenerateChunk` that `Inference.GenerateStream` does, so
 * the router reads only the fields it acts on (how many tokens and how much
 * text, finish reason, usage, model version) and writes the bytes it got to
 * its client. It encodes only where it changes a chunk: the model version set
 * on the first one ({@link withModelVersion}) and the chunks merged for a
 * reader that fell behind ({@link mergeChunks}). Text and token ids are
 * decoded only when something needs them (a migration, a unary response).
 */
import {
  decodeChunk,
  decodeUsage,
  encodeChunk,
  FINISH_NAMES,
  malformed,
  Reader,
  varintSize,
  writeVarint,
} from './chunk-codec.js';
import type { FinishReason__Output } from './generated/llmmesh/v1/FinishReason.js';
import type { GenerateChunk, GenerateChunk__Output } from './generated/llmmesh/v1/GenerateChunk.js';
import type { Usage__Output } from './generated/llmmesh/v1/Usage.js';

/** Counts the varints in a packed field's bytes (a value ends at each byte below 0x80). */
function countVarints(buf: Buffer, start: number, end: number): number {
  let n = 0;
  let run = 0;
  for (let i = start; i < end; i++) {
    if ((buf[i] as number) < 0x80) {
      n++;
      run = 0;
    } else if (++run === 10) throw malformed('varint longer than 10 bytes');
  }
  if (run > 0) throw malformed('packed token_ids overrun their length');
  return n;
}

/**
 * One chunk as received: its bytes and the fields the router reads. It
 * accepts and rejects exactly what {@link decodeChunk} does, and where a field
 * repeats reads it as protobuf does (the last text, usage, finish reason and
 * model version; every token id).
 */
export class RelayChunk {
  /** Token ids it carries. */
  readonly tokens: number = 0;
  /** UTF-8 bytes of its text, from {@link textAt} in {@link bytes}. */
  readonly textBytes: number = 0;
  readonly textAt: number = 0;
  /** Where its token ids lie in {@link bytes} as packed varints; -1 when they came otherwise (unpacked, or in several fields). */
  readonly idsAt: number = 0;
  readonly idBytes: number = 0;
  readonly finishReason: FinishReason__Output = 'FINISH_REASON_UNSPECIFIED';
  readonly usage: Usage__Output | null = null;
  readonly modelVersion: string = '';
  private decoded: GenerateChunk__Output | undefined;

  /** Reads `bytes`; throws on a malformed message (grpc-js turns that into INTERNAL). */
  constructor(readonly bytes: Buffer) {
    const r = new Reader(bytes, 0, bytes.length);
    let idFields = 0;
    while (r.pos < r.end) {
      const tag = r.uint32();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field === 1 && wire === 2) {
        const end = r.span();
        this.textAt = r.pos;
        this.textBytes = end - r.pos;
        r.pos = end;
      } else if (field === 2 && wire === 0) {
        const v = r.int32();
        this.finishReason = FINISH_NAMES[v] ?? (v as unknown as FinishReason__Output);
      } else if (field === 3 && wire === 2) {
        this.usage = decodeUsage(r, r.span());
      } else if (field === 4 && wire === 2) {
        this.modelVersion = r.string();
      } else if (field === 5 && wire === 2) {
        const end = r.span();
        this.tokens += countVarints(bytes, r.pos, end);
        this.idsAt = idFields++ === 0 ? r.pos : -1;
        this.idBytes = end - r.pos;
        r.pos = end;
      } else if (field === 5 && wire === 0) {
        r.uint32();
        this.tokens++;
        this.idsAt = -1;
        idFields++;
      } else {
        if (field === 0) throw malformed(`invalid tag ${tag}`);
        r.skip(wire);
      }
    }
  }

  /** A chunk the router makes itself. */
  static of(chunk: GenerateChunk): RelayChunk {
    return new RelayChunk(encodeChunk(chunk));
  }

  /** Its text, decoded on first use. */
  get text(): string {
    this.decoded ??= decodeChunk(this.bytes);
    return this.decoded.text;
  }

  /** Its token ids, decoded on first use. */
  get tokenIds(): number[] {
    this.decoded ??= decodeChunk(this.bytes);
    return this.decoded.tokenIds;
  }
}

/**
 * `bytes` with its model version set to `version`: the field is appended, and
 * of a non-repeated field that appears more than once a reader keeps the last.
 */
export function withModelVersion(bytes: Buffer, version: string): Buffer {
  const len = Buffer.byteLength(version);
  const out = Buffer.allocUnsafe(bytes.length + 1 + varintSize(len) + len);
  bytes.copy(out, 0);
  let pos = bytes.length;
  out[pos++] = 0x22;
  pos = writeVarint(out, pos, len);
  out.write(version, pos, len, 'utf8');
  return out;
}

/**
 * One message for `chunks`, in order: their text joined and their token ids
 * concatenated (both copied as bytes), then `tail`'s finish reason, usage and
 * model version.
 */
export function mergeChunks(chunks: readonly RelayChunk[], tail: GenerateChunk): Buffer {
  let textBytes = 0;
  let idBytes = 0;
  for (const c of chunks) {
    textBytes += c.textBytes;
    if (c.idsAt >= 0) idBytes += c.idBytes;
    else for (const id of c.tokenIds) idBytes += varintSize(id);
  }
  const rest = encodeChunk(tail);
  let size = rest.length;
  if (textBytes) size += 1 + varintSize(textBytes) + textBytes;
  if (idBytes) size += 1 + varintSize(idBytes) + idBytes;
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  if (textBytes) {
    out[pos++] = 0x0a;
    pos = writeVarint(out, pos, textBytes);
    for (const c of chunks) pos += c.bytes.copy(out, pos, c.textAt, c.textAt + c.textBytes);
  }
  if (idBytes) {
    out[pos++] = 0x2a;
    pos = writeVarint(out, pos, idBytes);
    for (const c of chunks) {
      if (c.idsAt >= 0) pos += c.bytes.copy(out, pos, c.idsAt, c.idsAt + c.idBytes);
      else for (const id of c.tokenIds) pos = writeVarint(out, pos, id);
    }
  }
  rest.copy(out, pos);
  return out;
}

const EMPTY = Buffer.alloc(0);
/** Chunks up to this many bytes are copied into the log byte by byte. */
const SHORT_COPY = 64;

/**
 * Chunks kept as one growing buffer (each message behind its length), so a
 * stream's output costs no object per chunk until it is read back.
 */
export class ChunkLog {
  private buf = EMPTY;
  private length = 0;

  append(bytes: Buffer): void {
    const n = bytes.length;
    const need = this.length + 5 + n;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(256, 2 * need));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    const buf = this.buf;
    const pos = writeVarint(buf, this.length, n);
    // A one-token chunk is a few bytes: a loop costs less than Buffer#copy's checks.
    if (n <= SHORT_COPY) for (let i = 0; i < n; i++) buf[pos + i] = bytes[i] as number;
    else bytes.copy(buf, pos);
    this.length = pos + n;
  }

  /** The text and token ids of every chunk appended, in order. */
  read(): { text: string; tokenIds: number[] } {
    const parts: string[] = [];
    const tokenIds: number[] = [];
    const r = new Reader(this.buf, 0, this.length);
    while (r.pos < r.end) {
      const end = r.span();
      const chunk = decodeChunk(this.buf.subarray(r.pos, end));
      parts.push(chunk.text);
      for (const id of chunk.tokenIds) tokenIds.push(id);
      r.pos = end;
    }
    return { text: parts.join(''), tokenIds };
  }
}
