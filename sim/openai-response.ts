/**
 * The JSON bodies vLLM's OpenAI-compatible server sends, field for field and in
 * its key order (vLLM 0.11: pydantic models dumped with `exclude_unset=False`
 * for completion chunks, `exclude_unset=True` for chat chunks, `exclude_none`
 * for the final usage chunk, and full `model_dump()` for non-streaming bodies).
 */

/** Identity fields shared by every chunk of one response. */
export interface ResponseIdentity {
  /** `cmpl-…` or `chatcmpl-…`. */
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

/** Token counts of a request. */
export interface UsageCounts {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens served from the prefix cache. */
  cachedTokens: number;
}

/** The finish reason and stop reason of a finished choice. */
export interface Finish {
  finishReason: 'stop' | 'length';
  /** The matched stop string, or null. */
  stopReason: string | null;
}

/**
 * Usage as sent at the end of a request. vLLM adds `prompt_tokens_details`
 * only with `--enable-prompt-tokens-details` and only when some prompt tokens
 * were cached; `withNulls` is the non-streaming form, which spells absent
 * details as `null`.
 */
export function usageInfo(counts: UsageCounts, promptTokensDetails: boolean, withNulls: boolean): object {
  const usage: Record<string, unknown> = {
    prompt_tokens: counts.promptTokens,
    total_tokens: counts.promptTokens + counts.completionTokens,
    completion_tokens: counts.completionTokens,
  };
  if (promptTokensDetails && counts.cachedTokens > 0) {
    usage.prompt_tokens_details = { cached_tokens: counts.cachedTokens };
  } else if (withNulls) {
    usage.prompt_tokens_details = null;
  }
  return usage;
}

/** Usage attached to every chunk with `continuous_usage_stats` (completion chunks keep the null details). */
function continuousUsage(counts: UsageCounts, withNulls: boolean): object {
  return usageInfo({ ...counts, cachedTokens: 0 }, false, withNulls);
}

/** One `/v1/completions` stream chunk. */
export function completionChunk(
  identity: ResponseIdentity,
  text: string,
  finish: Finish | null,
  usage: UsageCounts | undefined,
): object {
  return {
    id: identity.id,
    object: 'text_completion',
    created: identity.created,
    model: identity.model,
    choices: [
      {
        index: 0,
        text,
        logprobs: null,
        finish_reason: finish?.finishReason ?? null,
        stop_reason: finish?.stopReason ?? null,
        prompt_token_ids: null,
        token_ids: null,
      },
    ],
    usage: usage ? continuousUsage(usage, true) : null,
  };
}

/** The final `choices: []` chunk of a stream with `include_usage`. */
export function usageChunk(
  identity: ResponseIdentity,
  object: 'text_completion' | 'chat.completion.chunk',
  usage: UsageCounts,
  promptTokensDetails: boolean,
): object {
  return {
    id: identity.id,
    object,
    created: identity.created,
    model: identity.model,
    choices: [],
    usage: usageInfo(usage, promptTokensDetails, false),
  };
}

/** The non-streaming `/v1/completions` body. */
export function completionResponse(
  identity: ResponseIdentity,
  text: string,
  finish: Finish,
  usage: UsageCounts,
  promptTokensDetails: boolean,
): object {
  return {
    id: identity.id,
    object: 'text_completion',
    created: identity.created,
    model: identity.model,
    choices: [
      {
        index: 0,
        text,
        logprobs: null,
        finish_reason: finish.finishReason,
        stop_reason: finish.stopReason,
        token_ids: null,
        prompt_logprobs: null,
        prompt_token_ids: null,
      },
    ],
    service_tier: null,
    system_fingerprint: null,
    usage: usageInfo(usage, promptTokensDetails, true),
    kv_transfer_params: null,
  };
}

/** The first chat chunk: the assistant role with empty content. */
export function chatRoleChunk(identity: ResponseIdentity, usage: UsageCounts | undefined): object {
  const chunk: Record<string, unknown> = {
    id: identity.id,
    object: 'chat.completion.chunk',
    created: identity.created,
    model: identity.model,
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
  };
  if (usage) chunk.usage = continuousUsage(usage, false);
  chunk.prompt_token_ids = null;
  return chunk;
}

/** A chat content chunk; with `finish`, the last one, carrying the finish and stop reasons. */
export function chatContentChunk(
  identity: ResponseIdentity,
  content: string,
  finish: Finish | null,
  usage: UsageCounts | undefined,
): object {
  const choice: Record<string, unknown> = {
    index: 0,
    delta: { content },
    logprobs: null,
    finish_reason: finish?.finishReason ?? null,
  };
  if (finish) choice.stop_reason = finish.stopReason;
  choice.token_ids = null;
  const chunk: Record<string, unknown> = {
    id: identity.id,
    object: 'chat.completion.chunk',
    created: identity.created,
    model: identity.model,
    choices: [choice],
  };
  if (usage) chunk.usage = continuousUsage(usage, false);
  return chunk;
}

/** The non-streaming `/v1/chat/completions` body. */
export function chatResponse(
  identity: ResponseIdentity,
  content: string,
  finish: Finish,
  usage: UsageCounts,
  promptTokensDetails: boolean,
): object {
  return {
    id: identity.id,
    object: 'chat.completion',
    created: identity.created,
    model: identity.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content,
          refusal: null,
          annotations: null,
          audio: null,
          function_call: null,
          tool_calls: [],
          reasoning_content: null,
        },
        logprobs: null,
        finish_reason: finish.finishReason,
        stop_reason: finish.stopReason,
        token_ids: null,
      },
    ],
    service_tier: null,
    system_fingerprint: null,
    usage: usageInfo(usage, promptTokensDetails, true),
    prompt_logprobs: null,
    prompt_token_ids: null,
    kv_transfer_params: null,
  };
}

/**
 * A fast serialiser for the content chunks of one stream: `build` is called
 * once with a marker text, and each later call splices the JSON-encoded text
 * into the serialised result, so a token costs one small `JSON.stringify`
 * instead of building and serialising the whole chunk. The output is exactly
 * `JSON.stringify(build(text))`.
 */
export function createChunkSerializer(build: (text: string) => object): (text: string) => string {
  const marker = '\u0000llmmesh-text\u0000';
  const json = JSON.stringify(build(marker));
  const encoded = JSON.stringify(marker);
  const at = json.indexOf(encoded);
  // The marker cannot come from a client (NUL never reaches ids or names in practice); if it did, stay exact.
  if (at === -1 || json.lastIndexOf(encoded) !== at) return (text) => JSON.stringify(build(text));
  const before = json.slice(0, at);
  const after = json.slice(at + encoded.length);
  return (text) => before + JSON.stringify(text) + after;
}
