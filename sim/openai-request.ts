/**
 * Parsing and validation of OpenAI-style requests, in the order and with the
 * messages of vLLM's server: body shape, then the model name (404), then the
 * prompt against the context length, then sampling parameters. The result is a
 * {@link GenerationRequest} the engine can run, or a thrown {@link SimHttpError}.
 */
import { renderChatTemplate, type TemplateMessage } from './chat-template.js';
import { badRequest, modelNotFound } from './errors.js';
import { pythonFloatRepr } from './prometheus.js';
import { type Tokenizer, VOCAB_SIZE } from './tokenizer.js';

/** Which OpenAI endpoint a request came to. */
export type Endpoint = 'completions' | 'chat';

/** vLLM's default `max_tokens` for `/v1/completions`. */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

/** What the parser needs to know about the server. */
export interface RequestContext {
  servedModelName: string;
  maxModelLen: number;
  tokenizer: Tokenizer;
}

/** A validated generation request. */
export interface GenerationRequest {
  endpoint: Endpoint;
  promptTokenIds: number[];
  /** Output tokens at most, resolved against the context length when the request gave none. */
  maxTokens: number;
  stop: string[];
  includeStopStrInOutput: boolean;
  minTokens: number;
  seed: number | undefined;
  stream: boolean;
  /** `stream_options.include_usage`: send a final usage chunk. */
  includeUsage: boolean;
  /** `stream_options.continuous_usage_stats`: usage on every chunk. */
  continuousUsageStats: boolean;
  /** The body's `request_id`, if any. */
  requestId: string | undefined;
  /** `return_token_ids` (vLLM >= 0.10.2): responses carry prompt and output token ids. */
  returnTokenIds: boolean;
}

/** A validated `/tokenize` request. */
export interface TokenizeRequest {
  promptTokenIds: number[];
  pieces: string[];
  returnTokenStrs: boolean;
}

type Body = Record<string, unknown>;

/** Parses a `/v1/completions` or `/v1/chat/completions` body. */
export function parseGenerationRequest(
  endpoint: Endpoint,
  raw: unknown,
  context: RequestContext,
): GenerationRequest {
  const body = asObject(raw);
  const stream = optionalBool(body, 'stream') ?? false;
  const streamOptions = optionalObject(body, 'stream_options');
  if (streamOptions !== undefined && !stream) {
    throw badRequest('Stream options can only be defined when `stream=True`.');
  }
  const stop = parseStop(body);
  const seed = optionalInt(body, 'seed');
  const temperature = optionalNumber(body, 'temperature');
  const topP = optionalNumber(body, 'top_p');
  const n = optionalInt(body, 'n') ?? 1;
  const minTokens = optionalInt(body, 'min_tokens') ?? 0;
  const includeStopStrInOutput = optionalBool(body, 'include_stop_str_in_output') ?? false;
  const requestId = optionalString(body, 'request_id');
  const returnTokenIds = optionalBool(body, 'return_token_ids') ?? false;
  if (endpoint === 'chat') checkGenerationPrompt(body);
  let requestedMaxTokens: number | undefined;
  if (endpoint === 'chat') {
    requestedMaxTokens = optionalInt(body, 'max_completion_tokens') || optionalInt(body, 'max_tokens');
  } else {
    // Absent means vLLM's default of 16; an explicit null means "up to the context length".
    requestedMaxTokens =
      body.max_tokens === undefined ? DEFAULT_COMPLETION_MAX_TOKENS : optionalInt(body, 'max_tokens');
  }

  checkModel(body, context);
  rejectUnsupported(endpoint, body);

  const promptTokenIds =
    endpoint === 'chat'
      ? renderChatPrompt(body, context.tokenizer)
      : completionPromptTokens(body, context.tokenizer);
  const maxTokens = checkContextLength(
    endpoint,
    promptTokenIds.length,
    requestedMaxTokens,
    context.maxModelLen,
  );
  checkVocabulary(promptTokenIds);

  if (maxTokens < 1) throw badRequest(`max_tokens must be at least 1, got ${maxTokens}.`);
  if (n < 1) throw badRequest(`n must be at least 1, got ${n}.`);
  if (n > 1) throw badRequest(`n must be 1 on this server, got ${n}.`);
  if (temperature !== undefined && temperature < 0) {
    throw badRequest(`temperature must be non-negative, got ${pythonFloatRepr(temperature)}.`);
  }
  if (topP !== undefined && !(topP > 0 && topP <= 1)) {
    throw badRequest(`top_p must be in (0, 1], got ${pythonFloatRepr(topP)}.`);
  }
  if (minTokens < 0) throw badRequest(`min_tokens must be greater than or equal to 0, got ${minTokens}.`);
  if (minTokens > maxTokens) {
    throw badRequest(`min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${minTokens}.`);
  }

  const includeUsage = streamOptions !== undefined && (optionalBool(streamOptions, 'include_usage') ?? true);
  const continuousUsageStats =
    includeUsage && (optionalBool(streamOptions ?? {}, 'continuous_usage_stats') ?? false);
  return {
    endpoint,
    promptTokenIds,
    maxTokens,
    stop,
    includeStopStrInOutput,
    minTokens,
    seed,
    stream,
    includeUsage,
    continuousUsageStats,
    requestId,
    returnTokenIds,
  };
}

/**
 * Parses a `/tokenize` body: `{model?, prompt, add_special_tokens?}` (BOS by
 * default, as `/v1/completions` feeds the engine) or `{model?, messages,
 * add_generation_prompt?, continue_final_message?, add_special_tokens?}` (the
 * ids `/v1/chat/completions` feeds the engine for the same fields).
 */
export function parseTokenizeRequest(raw: unknown, context: RequestContext): TokenizeRequest {
  const body = asObject(raw);
  const returnTokenStrs = optionalBool(body, 'return_token_strs') ?? false;
  if (body.messages !== undefined) checkGenerationPrompt(body);
  checkModel(body, context);
  if (body.messages !== undefined) {
    const text = renderChatText(body);
    const encoded = context.tokenizer.encodeWithPieces(text, {
      addSpecialTokens: optionalBool(body, 'add_special_tokens') ?? false,
    });
    return { promptTokenIds: encoded.ids, pieces: encoded.pieces, returnTokenStrs };
  }
  const prompt = body.prompt;
  if (typeof prompt !== 'string')
    throw badRequest('prompt: Field required (a string) unless messages are given');
  const encoded = context.tokenizer.encodeWithPieces(prompt, {
    addSpecialTokens: optionalBool(body, 'add_special_tokens') ?? true,
  });
  return { promptTokenIds: encoded.ids, pieces: encoded.pieces, returnTokenStrs };
}

/** A `/detokenize` body: `{model?, tokens}`. */
export function parseDetokenizeRequest(raw: unknown, context: RequestContext): number[] {
  const body = asObject(raw);
  checkModel(body, context);
  const tokens = body.tokens;
  if (tokens === undefined || tokens === null) throw badRequest('tokens: Field required');
  if (!Array.isArray(tokens) || !tokens.every(isTokenId)) {
    throw badRequest('tokens: Input should be a valid list of integers');
  }
  checkVocabulary(tokens as number[]);
  return tokens as number[];
}

// vLLM's request validator, run before anything else looks at the body.
function checkGenerationPrompt(body: Body): void {
  if (body.continue_final_message === true && body.add_generation_prompt === true) {
    throw badRequest(
      'Value error, Cannot set both `continue_final_message` and `add_generation_prompt` to True.',
    );
  }
}

// vLLM's input processor refuses ids beyond the tokenizer's largest.
function checkVocabulary(tokenIds: readonly number[]): void {
  let max = -1;
  for (const id of tokenIds) if (id > max) max = id;
  if (max >= VOCAB_SIZE) throw badRequest(`Token id ${max} is out of vocabulary`);
}

function checkModel(body: Body, context: RequestContext): void {
  const model = optionalString(body, 'model');
  if (model !== undefined && model !== context.servedModelName) throw modelNotFound(model);
}

function rejectUnsupported(endpoint: Endpoint, body: Body): void {
  if (endpoint === 'completions') {
    if (body.suffix !== undefined && body.suffix !== null)
      throw badRequest('suffix is not currently supported');
    if (optionalBool(body, 'echo')) throw badRequest('echo is not supported by this server');
    if (body.logprobs !== undefined && body.logprobs !== null)
      throw badRequest('logprobs are not supported by this server');
    const bestOf = optionalInt(body, 'best_of');
    if (bestOf !== undefined && bestOf > 1) throw badRequest('best_of is not supported by this server');
  } else if (optionalBool(body, 'logprobs')) {
    throw badRequest('logprobs are not supported by this server');
  }
  if (optionalBool(body, 'use_beam_search')) throw badRequest('beam search is not supported by this server');
}

// vLLM's context check (serving_engine._validate_input). Chat wraps preprocessing
// errors as f"{e} {e.__cause__}", hence the trailing " None" on chat messages.
function checkContextLength(
  endpoint: Endpoint,
  promptTokens: number,
  maxTokens: number | undefined,
  maxModelLen: number,
): number {
  const suffix = endpoint === 'chat' ? ' None' : '';
  if (maxTokens === undefined) {
    if (promptTokens >= maxModelLen) {
      throw badRequest(
        `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
          `${promptTokens} tokens in the messages, Please reduce the length of the messages.${suffix}`,
      );
    }
    return maxModelLen - promptTokens;
  }
  if (promptTokens + maxTokens > maxModelLen) {
    throw badRequest(
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
        `${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). ` +
        `Please reduce the length of the messages or completion.${suffix}`,
    );
  }
  return maxTokens;
}

function completionPromptTokens(body: Body, tokenizer: Tokenizer): number[] {
  const prompt = body.prompt;
  const empty =
    prompt === undefined ||
    prompt === null ||
    prompt === '' ||
    (Array.isArray(prompt) && prompt.length === 0);
  if (empty) throw badRequest('Either prompt or prompt_embeds must be provided and non-empty.');
  // Text gets BOS unless `add_special_tokens: false`; token ids go to the engine as given.
  const addSpecialTokens = optionalBool(body, 'add_special_tokens') ?? true;
  if (typeof prompt === 'string') return tokenizer.encode(prompt, { addSpecialTokens });
  if (Array.isArray(prompt)) {
    if (prompt.every(isTokenId)) return [...(prompt as number[])];
    if (prompt.length > 1 && (prompt.every((p) => typeof p === 'string') || prompt.every(Array.isArray))) {
      // vLLM answers a batch with one choice per prompt; this server serves one prompt per request.
      throw badRequest('this server accepts one prompt per request');
    }
    const only = prompt[0];
    if (prompt.length === 1 && typeof only === 'string' && only !== '') {
      return tokenizer.encode(only, { addSpecialTokens });
    }
    if (prompt.length === 1 && Array.isArray(only) && only.length > 0 && only.every(isTokenId)) {
      return [...(only as number[])];
    }
  }
  throw badRequest('prompt: Input should be a valid string, a list of strings, or a list of token ids');
}

function renderChatPrompt(body: Body, tokenizer: Tokenizer): number[] {
  return tokenizer.encode(renderChatText(body), {
    addSpecialTokens: optionalBool(body, 'add_special_tokens') ?? false,
  });
}

function renderChatText(body: Body): string {
  const messages = body.messages;
  if (messages === undefined || messages === null) throw badRequest('messages: Field required');
  if (!Array.isArray(messages)) throw badRequest('messages: Input should be a valid list');
  const flattened: TemplateMessage[] = messages.map((m, i) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) {
      throw badRequest(`messages.${i}: Input should be a valid dictionary`);
    }
    const message = m as Body;
    if (typeof message.role !== 'string') throw badRequest(`messages.${i}.role: Field required`);
    return { role: message.role, content: messageText(message.content, i) };
  });
  return renderChatTemplate(flattened, {
    addGenerationPrompt: optionalBool(body, 'add_generation_prompt') ?? true,
    continueFinalMessage: optionalBool(body, 'continue_final_message') ?? false,
  });
}

// Text parts are joined with newlines, as vLLM does for string-format templates.
function messageText(content: unknown, index: number): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part, j) => {
        const p = part as Body | null;
        if (p && typeof p === 'object' && p.type === 'text' && typeof p.text === 'string') return p.text;
        throw badRequest(
          `messages.${index}.content.${j}: only text content parts are supported by this model`,
        );
      })
      .join('\n');
  }
  throw badRequest(`messages.${index}.content: Input should be a valid string or list of content parts`);
}

function parseStop(body: Body): string[] {
  const stop = body.stop;
  if (stop === undefined || stop === null) return [];
  if (typeof stop === 'string') return [stop];
  if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) return stop as string[];
  throw badRequest('stop: Input should be a valid string or list of strings');
}

function isTokenId(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function asObject(raw: unknown): Body {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw badRequest('Input should be a valid dictionary or object to extract fields from');
  }
  return raw as Body;
}

function optionalObject(body: Body, key: string): Body | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value))
    throw badRequest(`${key}: Input should be a valid dictionary`);
  return value as Body;
}

function optionalString(body: Body, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw badRequest(`${key}: Input should be a valid string`);
  return value;
}

function optionalBool(body: Body, key: string): boolean | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw badRequest(`${key}: Input should be a valid boolean`);
  return value;
}

function optionalNumber(body: Body, key: string): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw badRequest(`${key}: Input should be a valid number`);
  return value;
}

function optionalInt(body: Body, key: string): number | undefined {
  const value = optionalNumber(body, key);
  if (value !== undefined && !Number.isInteger(value))
    throw badRequest(`${key}: Input should be a valid integer`);
  return value;
}
