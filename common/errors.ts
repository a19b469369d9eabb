/**
 * The one error type of llmmesh and every mapping to gRPC status: socket
 * errors, upstream HTTP statuses, engine error JSON, breaker rejections. Code
 * anywhere else throws or converts through here, never invents a status.
 */
import { Metadata, status as Status, type StatusObject } from '@grpc/grpc-js';
import { RETRY_PUSHBACK_KEY } from './metadata.js';

/** gRPC status codes, re-exported so callers need not import grpc-js. */
export { RETRY_PUSHBACK_KEY, Status };

/** Options of a {@link MeshError}. */
export interface MeshErrorOptions {
  /** Milliseconds the client should wait before retrying (sent as `grpc-retry-pushback-ms`). */
  retryPushbackMs?: number;
  /** The original error, kept for logs. */
  cause?: unknown;
  /** Extra trailing metadata. */
  metadata?: Metadata;
}

/** An error carrying a gRPC status code and a message meant for the caller. */
export class MeshError extends Error {
  readonly code: Status;
  readonly retryPushbackMs: number | undefined;
  readonly metadata: Metadata | undefined;

  constructor(code: Status, message: string, options: MeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeshError';
    this.code = code;
    this.retryPushbackMs = options.retryPushbackMs;
    this.metadata = options.metadata;
  }

  /** The status name, e.g. `UNAVAILABLE`. */
  get codeName(): string {
    return Status[this.code] ?? String(this.code);
  }

  /**
   * Converts anything thrown into a MeshError: MeshErrors pass through, gRPC
   * service errors keep their code, socket errors become UNAVAILABLE, aborts
   * CANCELLED, everything else INTERNAL.
   */
  static from(err: unknown, context?: string): MeshError {
    if (err instanceof MeshError) return err;
    if (isGrpcStatusError(err)) {
      const details = cleanGrpcDetails(err.details || err.message);
      return new MeshError(err.code, details, {
        cause: err,
        retryPushbackMs: pushbackFrom(err.metadata),
      });
    }
    if (isAbortError(err)) {
      return new MeshError(Status.CANCELLED, context ? `${context}: cancelled` : 'cancelled', { cause: err });
    }
    const socket = socketErrorCode(err);
    if (socket) return fromSocketError(err, context ?? 'upstream');
    const message = err instanceof Error ? err.message : String(err);
    return new MeshError(Status.INTERNAL, context ? `${context}: ${message}` : message, { cause: err });
  }

  /** The object grpc-js sends as the call's status. */
  toStatusObject(): Partial<StatusObject> & { code: Status; details: string; metadata: Metadata } {
    const metadata = this.metadata?.clone() ?? new Metadata();
    if (this.retryPushbackMs !== undefined) {
      metadata.set(RETRY_PUSHBACK_KEY, String(Math.max(0, Math.round(this.retryPushbackMs))));
    }
    return { code: this.code, details: this.message, metadata };
  }
}

/** Shorthands for the statuses of DESIGN §2. */
export const errors = {
  invalidArgument: (field: string, problem: string) =>
    new MeshError(Status.INVALID_ARGUMENT, `${field}: ${problem}`),
  notFound: (message: string) => new MeshError(Status.NOT_FOUND, message),
  unavailable: (message: string, options?: MeshErrorOptions) =>
    new MeshError(Status.UNAVAILABLE, message, options),
  resourceExhausted: (message: string, retryPushbackMs: number) =>
    new MeshError(Status.RESOURCE_EXHAUSTED, message, { retryPushbackMs }),
  deadlineExceeded: (message: string) => new MeshError(Status.DEADLINE_EXCEEDED, message),
  cancelled: (message: string) => new MeshError(Status.CANCELLED, message),
  internal: (message: string, cause?: unknown) => new MeshError(Status.INTERNAL, message, { cause }),
};

/**
 * True for statuses that say something about the caller's request, not the
 * endpoint's health: they must never trip a circuit breaker.
 */
export function isClientFault(code: Status): boolean {
  return (
    code === Status.INVALID_ARGUMENT ||
    code === Status.NOT_FOUND ||
    code === Status.PERMISSION_DENIED ||
    code === Status.UNAUTHENTICATED ||
    code === Status.CANCELLED ||
    code === Status.FAILED_PRECONDITION ||
    code === Status.OUT_OF_RANGE ||
    code === Status.ALREADY_EXISTS
  );
}

const SOCKET_UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * Maps a Node socket / HTTP client error to UNAVAILABLE. `peer` names what
 * was being talked to, e.g. `engine at 127.0.0.1:8000`.
 */
export function fromSocketError(err: unknown, peer: string): MeshError {
  const code = socketErrorCode(err) ?? 'unknown socket error';
  const detail =
    err instanceof Error && err.message && !err.message.includes(code) ? ` (${err.message})` : '';
  const connectFailed = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
  return new MeshError(
    Status.UNAVAILABLE,
    connectFailed ? `${peer} unreachable: ${code}${detail}` : `${peer} failed: ${code}${detail}`,
    { cause: err },
  );
}

/**
 * Maps an OpenAI-compatible engine's HTTP error (vLLM, SGLang, llama.cpp) to a
 * status. `body` is the raw response text; the engine's own message is kept,
 * whether it uses the nested `{"error": {"message"}}` shape (vLLM ≥ 0.10.1),
 * the flat legacy `{"object": "error", "message"}` shape, or FastAPI's `{"detail"}`.
 */
export function fromHttpStatus(
  httpStatus: number,
  body: string,
  endpoint: string,
  retryAfter?: string | null,
): MeshError {
  const engineMessage = engineErrorMessage(body) ?? (body.trim().slice(0, 300) || `HTTP ${httpStatus}`);
  const message = `engine at ${endpoint} answered ${httpStatus}: ${engineMessage}`;
  const pushback = retryAfterMs(retryAfter);
  switch (httpStatus) {
    case 400:
    case 422:
      return new MeshError(Status.INVALID_ARGUMENT, engineMessage);
    case 401:
      return new MeshError(Status.UNAUTHENTICATED, message);
    case 403:
      return new MeshError(Status.PERMISSION_DENIED, message);
    case 404:
      return new MeshError(Status.NOT_FOUND, engineMessage);
    case 408:
      return new MeshError(Status.DEADLINE_EXCEEDED, message);
    case 413:
      return new MeshError(Status.INVALID_ARGUMENT, engineMessage);
    case 429:
      return new MeshError(Status.RESOURCE_EXHAUSTED, message, {
        retryPushbackMs: pushback ?? 1000,
      });
    case 499:
      return new MeshError(Status.CANCELLED, message);
    case 501:
      return new MeshError(Status.UNIMPLEMENTED, message);
    case 502:
    case 503:
    case 504:
      // The engine refused before doing work (loading, overloaded, gateway).
      return new MeshError(Status.UNAVAILABLE, message, { retryPushbackMs: pushback });
    default:
      if (httpStatus >= 400 && httpStatus < 500) return new MeshError(Status.INVALID_ARGUMENT, engineMessage);
      return new MeshError(Status.INTERNAL, message);
  }
}

/**
 * Extracts the human message of an engine error body, or undefined when the
 * body is not one of the known shapes. Also handles the in-band SSE error
 * object (`data: {"error": {...}}`) once parsed.
 */
export function engineErrorMessage(body: string | unknown): string | undefined {
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (!isRecord(value)) return undefined;
  const nested = value.error;
  if (isRecord(nested) && typeof nested.message === 'string') return nested.message;
  if (typeof nested === 'string') return nested;
  if (typeof value.message === 'string') return value.message;
  if (typeof value.detail === 'string') return value.detail;
  return undefined;
}

/** Maps the HTTP status carried inside an engine's error object (`code`) to a MeshError. */
export function fromEngineErrorObject(obj: unknown, endpoint: string): MeshError {
  const message = engineErrorMessage(obj) ?? 'engine reported an error';
  const inner = isRecord(obj) && isRecord(obj.error) ? obj.error : obj;
  const code = isRecord(inner) && typeof inner.code === 'number' ? inner.code : 500;
  return fromHttpStatus(code, JSON.stringify({ error: { message } }), endpoint);
}

function retryAfterMs(value: string | null | undefined): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  if (Number.isFinite(date)) return Math.max(0, date - Date.now());
  return undefined;
}

/** Reads `grpc-retry-pushback-ms` from metadata; negative or malformed means "do not retry". */
export function pushbackFrom(metadata: Metadata | undefined): number | undefined {
  const raw = metadata?.get(RETRY_PUSHBACK_KEY)[0];
  if (raw === undefined) return undefined;
  const ms = Number(raw.toString());
  return Number.isInteger(ms) ? ms : -1;
}

interface GrpcStatusError {
  code: Status;
  details: string;
  message: string;
  metadata?: Metadata;
}

function isGrpcStatusError(err: unknown): err is GrpcStatusError {
  return (
    err instanceof Error &&
    typeof (err as Partial<GrpcStatusError>).code === 'number' &&
    'details' in err &&
    'metadata' in err
  );
}

function isAbortError(err: unknown): boolean {
  return (
    err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR')
  );
}

function socketErrorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && SOCKET_UNAVAILABLE.has(code)) return code;
    e = e.cause;
  }
  return undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * grpc-js's own status details, made fit for people: the deadline's timing
 * breakdown (`Deadline exceeded after 5.000s,name resolution: 0.015s,...`),
 * the load balancer's `Resolution note:` and `Last error:` wording are cut
 * down to what happened. Messages from servers pass unchanged.
 */
export function cleanGrpcDetails(details: string): string {
  const deadline = /^Deadline exceeded after ([\d.]+s)/.exec(details);
  if (deadline) return `deadline exceeded after ${deadline[1]}`;
  const connect =
    /^(?:\w+: )?No connection established\. Last error: (.*?)(?:\. Resolution note: .*)?$/s.exec(details);
  if (connect) return `connection failed: ${connect[1]}`;
  if (details.startsWith('Received RST_STREAM with code')) return 'the stream was reset by the peer';
  return details.replace(/\.? ?Resolution note: .*$/s, '');
}
