/**
 * Translation between llmmesh's GenerateRequest / GenerateChunk and the
 * OpenAI-compatible HTTP API that vLLM, SGLang and llama.cpp serve.
 */
import { errors } from '../common/errors.js';
import type { Continuation__Output } from '../common/generated/llmmesh/v1/Continuation.js';
import type { GenerateRequest__Output } from '../common/generated/llmmesh/v1/GenerateRequest.js';

/** The engine-side request: path and JSON body. */
export interface OpenAiRequest {
  path: '/v1/completions' | '/v1/chat/completions';
  body: Record<string, unknown>;
}

/**
 * How a continuation is given to the engine: `token_ids` (exact: the prompt's
 * ids from the engine's `/tokenize` followed by the delivered ids, on
 * `/v1/completions`) or `text` (the prompt followed by the delivered text).
 */
export type ContinuationMode = 'token_ids' | 'text';

/** The continuation mode of `req`, or undefined when it is not a continuation. */
export function continuationMode(
  req: Pick<GenerateRequest__Output, 'continuation'>,
): ContinuationMode | undefined {
  const c = req.continuation;
  if (!c) return undefined;
  return c.tokenIds.length > 0 ? 'token_ids' : 'text';
}

/**
 * Builds the OpenAI request for `req`, addressed to the engine's
 * `servedModelName`. Token ids are asked for (`return_token_ids`, vLLM ≥
 * 0.10.2; other engines ignore it) so that a stream can be continued exactly
 * elsewhere. A continuation (`req.continuation`) goes on from the delivered
 * output: with `promptTokenIds` (the prompt's ids from `/tokenize`) and
 * delivered ids, as a token-id prompt on `/v1/completions`; otherwise as text
 * (completions: prompt + text; chat: the text as an assistant message the
 * engine continues). `max_tokens` is what remains of the original budget.
 */
export function toOpenAiRequest(
  req: GenerateRequest__Output,
  servedModelName: string,
  promptTokenIds?: readonly number[],
): OpenAiRequest {
  const body: Record<string, unknown> = {
    model: servedModelName,
    stream: true,
    stream_options: { include_usage: true },
    return_token_ids: true,
  };
  const s = req.sampling;
  const cont = req.continuation;
  if (s) {
    const maxTokens = cont ? remainingMaxTokens(s.maxTokens, cont.completionTokens) : s.maxTokens;
    if (maxTokens > 0) body.max_tokens = maxTokens;
    if (s.temperature !== undefined) body.temperature = s.temperature;
    if (s.topP !== undefined) body.top_p = s.topP;
    if (s.seed !== undefined) body.seed = s.seed;
    if (s.stop.length > 0) body.stop = s.stop;
  }
  if (req.requestId) body.request_id = req.requestId;
  if (cont && promptTokenIds && cont.tokenIds.length > 0) {
    body.prompt = [...promptTokenIds, ...cont.tokenIds];
    return { path: '/v1/completions', body };
  }
  if (req.messages.length > 0) {
    body.messages = req.messages.map((m) => ({ role: m.role, content: m.content }));
    if (cont) {
      (body.messages as Array<{ role: string; content: string }>).push({
        role: 'assistant',
        content: cont.text,
      });
      body.continue_final_message = true;
      body.add_generation_prompt = false;
    }
    return { path: '/v1/chat/completions', body };
  }
  body.prompt = cont ? req.prompt + cont.text : req.prompt;
  return { path: '/v1/completions', body };
}

/**
 * The body of the engine's `POST /tokenize` for the prompt of `req`, as the
 * engine renders it for generation (completions: with special tokens; chat:
 * the chat template with the generation prompt).
 */
export function tokenizeBody(req: GenerateRequest__Output, servedModelName: string): Record<string, unknown> {
  if (req.messages.length > 0) {
    return {
      model: servedModelName,
      messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: true,
    };
  }
  return { model: servedModelName, prompt: req.prompt, add_special_tokens: true };
}

/**
 * `max_tokens` left for a continuation: the original less what was
 * delivered; 0 (no limit) stays 0. A budget already spent is a caller error.
 */
export function remainingMaxTokens(maxTokens: number, delivered: number): number {
  if (maxTokens === 0) return 0;
  if (delivered >= maxTokens) {
    throw errors.invalidArgument(
      'continuation.completion_tokens',
      `${delivered} delivered leaves nothing of sampling.max_tokens (${maxTokens})`,
    );
  }
  return maxTokens - delivered;
}

/**
 * The usage of a whole continued generation from the engine's usage of the
 * continuation: prompt tokens are the original prompt's (exact mode: the
 * engine's count less the delivered ids; text mode: `promptTokensAlone` when
 * known, else the engine's count less the delivered tokens), completion
 * tokens add the delivered ones.
 */
export function continuedUsage(
  engine: EngineUsage,
  cont: Continuation__Output,
  mode: ContinuationMode,
  promptTokensAlone?: number,
): EngineUsage {
  const promptTokens =
    mode === 'token_ids'
      ? engine.promptTokens - cont.tokenIds.length
      : (promptTokensAlone ?? engine.promptTokens - cont.completionTokens);
  const prompt = Math.max(0, promptTokens);
  return {
    promptTokens: prompt,
    completionTokens: engine.completionTokens + cont.completionTokens,
    cachedTokens: Math.min(engine.cachedTokens, prompt),
  };
}

/** Token counts as the engine reports them. */
export interface EngineUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** What one parsed SSE chunk contributes. */
export interface ParsedChunk {
  text: string;
  /** Token ids of `text`, when the engine gives them (`return_token_ids`). */
  tokenIds?: number[];
  finishReason?: string;
  usage?: EngineUsage;
}

/**
 * Extracts text, finish reason and usage from one OpenAI streaming chunk
 * (completions `choices[0].text` or chat `choices[0].delta.content`; usage on
 * a `choices: []` chunk as vLLM sends it, or on the finish chunk as llama.cpp
 * does). Returns undefined for chunks that are not completion chunks.
 */
export function parseStreamChunk(json: unknown): ParsedChunk | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const obj = json as { choices?: unknown; usage?: unknown };
  const out: ParsedChunk = { text: '' };
  if (Array.isArray(obj.choices) && obj.choices.length > 0) {
    const choice = obj.choices[0] as {
      text?: unknown;
      delta?: { content?: unknown };
      finish_reason?: unknown;
      token_ids?: unknown;
    };
    if (typeof choice.text === 'string') out.text = choice.text;
    else if (choice.delta && typeof choice.delta.content === 'string') out.text = choice.delta.content;
    if (Array.isArray(choice.token_ids) && allTokenIds(choice.token_ids)) {
      out.tokenIds = choice.token_ids as number[];
    }
    if (typeof choice.finish_reason === 'string' && choice.finish_reason)
      out.finishReason = choice.finish_reason;
  }
  const usage = parseUsage(obj.usage);
  if (usage) out.usage = usage;
  return out;
}

function allTokenIds(vs: unknown[]): boolean {
  for (const v of vs) if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0)) return false;
  return true;
}

function parseUsage(u: unknown): EngineUsage | undefined {
  if (typeof u !== 'object' || u === null) return undefined;
  const usage = u as {
    prompt_tokens?: unknown;
    completion_tokens?: unknown;
    prompt_tokens_details?: { cached_tokens?: unknown } | null;
  };
  return {
    promptTokens: tokenCount(usage.prompt_tokens),
    completionTokens: tokenCount(usage.completion_tokens),
    cachedTokens: tokenCount(usage.prompt_tokens_details?.cached_tokens),
  };
}

/** A reported token count: a finite number ≥ 0, floored; 0 otherwise. */
function tokenCount(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0;
}
