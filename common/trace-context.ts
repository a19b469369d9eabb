/**
 * W3C Trace Context (`traceparent`) handling: continue the caller's trace when
 * it sent one, start one otherwise, and pass it to the next hop, so a request
 * keeps one trace id from client to engine.
 */
import { randomFillSync } from 'node:crypto';

/** A parsed or new trace context. */
export interface TraceContext {
  /** 32 lowercase hex digits. */
  traceId: string;
  /** 16 lowercase hex digits: the span that the next hop's span is a child of. */
  spanId: string;
  sampled: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Parses a `traceparent` header; undefined when absent or invalid (all-zero ids are invalid). */
export function parseTraceparent(value: string | undefined): TraceContext | undefined {
  if (!value) return undefined;
  const m = TRACEPARENT.exec(value.trim().toLowerCase());
  if (!m || m[1] === 'ff') return undefined;
  const traceId = m[2] ?? '';
  const spanId = m[3] ?? '';
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, sampled: (Number.parseInt(m[4] ?? '0', 16) & 1) === 1 };
}

/** A child context: same trace, new span id. Starts a new trace when `parent` is undefined. */
export function childContext(parent: TraceContext | undefined): TraceContext {
  return {
    traceId: parent?.traceId ?? randomHex(16),
    spanId: randomHex(8),
    sampled: parent?.sampled ?? true,
  };
}

/** Random bytes for ids, drawn from a pool refilled 4 KiB at a time (one syscall per ~170 requests, not two per request). */
const pool = Buffer.allocUnsafe(4096);
let poolOffset = pool.length;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

/** Formats a context as a `traceparent` header value. */
export function formatTraceparent(ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? '01' : '00'}`;
}
