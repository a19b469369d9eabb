/**
 * Translation between llmmesh's GenerateRequest / GenerateChunk and the
 * OpenAI-compatible HTTP API that vLLM, SGLang and llama.cpp serve.
 */
import type { GenerateRequest__Output } from '../common/generated/llmmesh/v1/GenerateRequest.js';

/** The engine-side request: path and JSON body. */
export interface OpenAiRequest {
  path: '/v1/completions' | '/v1/chat/completions';
  body: Record<string, unknown>;
}

/** Builds the OpenAI request for `req`, addressed to the engine's `servedModelName`. */
export function toOpenAiRequest(req: GenerateRequest__Output, servedModelName: string): OpenAiRequest {
  const body: Record<string, unknown> = {
    model: servedModelName,
    stream: true,
    stream_options: { include_usage: true },
  };
  const s = req.sampling;
  if (s) {
    if (s.maxTokens > 0) body.max_tokens = s.maxTokens;
    if (s.temperature !== undefined) body.temperature = s.temperature;
    if (s.topP !== undefined) body.top_p = s.topP;
    if (s.seed !== undefined) body.seed = s.seed;
    if (s.stop.length > 0) body.stop = s.stop;
  }
  if (req.requestId) body.request_id = req.requestId;
  if (req.messages.length > 0) {
    body.messages = req.messages.map((m) => ({ role: m.role, content: m.content }));
    return { path: '/v1/chat/completions', body };
  }
  body.prompt = req.prompt;
  return { path: '/v1/completions', body };
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
    };
    if (typeof choice.text === 'string') out.text = choice.text;
    else if (choice.delta && typeof choice.delta.content === 'string') out.text = choice.delta.content;
    if (typeof choice.finish_reason === 'string' && choice.finish_reason)
      out.finishReason = choice.finish_reason;
  }
  const usage = parseUsage(obj.usage);
  if (usage) out.usage = usage;
  return out;
}

function parseUsage(u: unknown): EngineUsage | undefined {
  if (typeof u !== 'object' || u === null) return undefined;
  const usage = u as {
    prompt_tokens?: unknown;
    completion_tokens?: unknown;
    prompt_tokens_details?: { cached_tokens?: unknown } | null;
  };
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.floor(v) : 0);
  return {
    promptTokens: num(usage.prompt_tokens),
    completionTokens: num(usage.completion_tokens),
    cachedTokens: num(usage.prompt_tokens_details?.cached_tokens),
  };
}
