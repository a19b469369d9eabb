/**
 * The checks a request passes before it is routed, as pure functions of the
 * request and the config: each throws a MeshError naming what is wrong.
 */
import { Reader, varintSize, writeVarint } from '../../common/chunk-codec.js';
import { errors } from '../../common/errors.js';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import { setWireBytes, takeReceivedBytes } from '../../common/proto.js';
import { validateGenerateRequest } from '../../common/validate.js';
import type { ModelConfig, RouterConfig } from '../config/schema.js';

/**
 * Validates `req` against the config's limits and models; returns the
 * model's config. Clients may not send a `continuation`: only a router sets
 * it, on the Engine hop.
 */
export function checkRequest(req: GenerateRequest__Output, cfg: RouterConfig): ModelConfig {
  validateGenerateRequest(req, {
    maxPromptChars: cfg.limits.max_prompt_chars,
    maxMessages: cfg.limits.max_messages,
    maxStopStrings: cfg.limits.max_stop_strings,
    maxStopChars: 256,
    maxIdChars: 256,
  });
  if (req.continuation) {
    throw errors.invalidArgument('continuation', 'is set by routers on the Engine hop, not by clients');
  }
  const model = cfg.models[req.model];
  if (!model) {
    throw errors.notFound(`unknown model "${req.model}" (models: ${Object.keys(cfg.models).join(', ')})`);
  }
  const maxTokens = req.sampling?.maxTokens ?? 0;
  if (model.max_tokens_cap !== undefined && maxTokens > model.max_tokens_cap) {
    throw errors.invalidArgument(
      'sampling.max_tokens',
      `${maxTokens} exceeds the limit of ${model.max_tokens_cap} for model "${req.model}"`,
    );
  }
  return model;
}

/**
 * The request as the Engine hop carries it: with its request id, and with
 * the model's `max_tokens_cap` asked for when the client set no `max_tokens`
 * (which means "until the context is full" to vLLM's chat API).
 *
 * Unless the cap is added, it goes out as the bytes the client sent, with
 * the request id appended when the client sent none (of a singular scalar
 * field that occurs more than once, protobuf reads the last), so nothing is
 * decoded and encoded again. A client never sends a continuation
 * ({@link checkRequest}). Bytes are encoded anew instead when their top
 * level is not plainly what this router read: a field it does not know (a
 * newer proto may add fields only a router may set, as `continuation` is,
 * and this router could not refuse them), a field with another wire type
 * than its own, or a singular field twice (decoders differ on a repeated
 * message field: protobuf merges it, protobufjs keeps the last). What lies
 * inside `sampling`, `routing` and the messages is relayed as this router's
 * decoder (protobufjs, the sidecar's too) read it.
 */
export function upstreamRequest(
  req: GenerateRequest__Output,
  requestId: string,
  model: ModelConfig,
): GenerateRequest__Output {
  const out: GenerateRequest__Output = { ...req, requestId, continuation: null };
  const bytes = takeReceivedBytes(req);
  if (model.max_tokens_cap !== undefined && (req.sampling?.maxTokens ?? 0) === 0) {
    out.sampling = { ...(req.sampling ?? { stop: [] }), maxTokens: model.max_tokens_cap };
    return out;
  }
  if (bytes && !req.continuation && plainRequest(bytes)) {
    setWireBytes(
      out,
      req.requestId === requestId ? bytes : withStringField(bytes, REQUEST_ID_FIELD, requestId),
    );
  }
  return out;
}

/** `GenerateRequest.request_id`'s field number. */
export const REQUEST_ID_FIELD = 6;
/** `GenerateRequest`'s fields (1–7, all length-delimited on the wire) as bits by number: every one, and those not repeated. */
export const REQUEST_FIELDS = 0b1111_1110;
export const SINGULAR_REQUEST_FIELDS = REQUEST_FIELDS & ~(1 << 3);
/** Protobuf's wire type of strings, bytes and messages (and of packed repeated fields). */
const LENGTH_DELIMITED = 2;

/**
 * Whether `bytes` hold, at their top level, only `GenerateRequest`'s own
 * fields, each with its own wire type and none that is singular twice (a
 * scan of the tags; malformed bytes are not).
 */
function plainRequest(bytes: Buffer): boolean {
  const r = new Reader(bytes, 0, bytes.length);
  let seen = 0;
  try {
    while (r.pos < r.end) {
      const tag = r.uint32();
      const field = tag >>> 3;
      const bit = field < 8 ? 1 << field : 0;
      if (!(bit & REQUEST_FIELDS) || (tag & 7) !== LENGTH_DELIMITED) return false;
      if (seen & bit & SINGULAR_REQUEST_FIELDS) return false;
      seen |= bit;
      r.skip(LENGTH_DELIMITED);
    }
  } catch {
    return false;
  }
  return true;
}

/** `message` with string field `field` set to `value` (appended: the last occurrence wins). */
function withStringField(message: Buffer, field: number, value: string): Buffer {
  const length = Buffer.byteLength(value);
  const out = Buffer.allocUnsafe(message.length + 1 + varintSize(length) + length);
  message.copy(out, 0);
  out[message.length] = (field << 3) | 2;
  out.write(value, writeVarint(out, message.length + 1, length), 'utf8');
  return out;
}

/**
 * Rejects what certainly cannot fit the engine's context (the smallest
 * `max_model_len` the version's sidecars report) before it reaches a GPU.
 * The prompt's token count here is a lower bound (8 characters per token);
 * the engine checks the exact count.
 */
export function checkContextLength(
  req: GenerateRequest__Output,
  maxTokens: number,
  contextLen: number,
  version: string,
): void {
  if (!Number.isFinite(contextLen)) return;
  const promptChars =
    req.messages.length > 0 ? req.messages.reduce((n, m) => n + m.content.length, 0) : req.prompt.length;
  const promptLowerBound = Math.ceil(promptChars / 8);
  if (promptLowerBound + maxTokens > contextLen) {
    throw errors.invalidArgument(
      'sampling.max_tokens',
      `prompt (at least ${promptLowerBound} tokens) plus max_tokens ${maxTokens} exceeds the context length ${contextLen} of model "${req.model}" version "${version}"`,
    );
  }
}
