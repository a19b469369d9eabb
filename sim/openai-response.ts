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

/**
 * Token ids a response carries with `return_token_ids` (vLLM >= 0.10.2);
 * both null without it.
 */
export interface ReturnedTokenIds {
  /** The prompt's ids: on the first chunk of a stream, or in the whole body. */
  prompt: readonly number[] | null;
  /** The output ids: those new in this chunk, or the whole output. */
  output: readonly number[] | null;
}

/** No token ids: a request without `return_token_ids`. */
export const NO_TOKEN_IDS: ReturnedTokenIds = { prompt: null, output: null };

/** One `/v1/completions` stream chunk; token ids go in the choice. */
export function completionChunk(
  identity: ResponseIdentity,
  text: string,
  finish: Finish | null,
  usage: UsageCounts | undefined,
  tokenIds: ReturnedTokenIds = NO_TOKEN_IDS,
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
        prompt_token_ids: tokenIds.prompt,
        token_ids: tokenIds.output,
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

/** The non-streaming `/v1/completions` body; token ids go in the choice. */
export function completionResponse(
  identity: ResponseIdentity,
  text: string,
  finish: Finish,
  usage: UsageCounts,
  promptTokensDetails: boolean,
  tokenIds: ReturnedTokenIds = NO_TOKEN_IDS,
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
        token_ids: tokenIds.output,
        prompt_logprobs: null,
        prompt_token_ids: tokenIds.prompt,
      },
    ],
    service_tier: null,
    system_fingerprint: null,
    usage: usageInfo(usage, promptTokensDetails, true),
    kv_transfer_params: null,
  };
}

/** The first chat chunk: the assistant role with empty content, and the prompt's ids at the top level. */
export function chatRoleChunk(
  identity: ResponseIdentity,
  usage: UsageCounts | undefined,
  promptTokenIds: readonly number[] | null = null,
): object {
  const chunk: Record<string, unknown> = {
    id: identity.id,
    object: 'chat.completion.chunk',
    created: identity.created,
    model: identity.model,
    choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
  };
  if (usage) chunk.usage = continuousUsage(usage, false);
  chunk.prompt_token_ids = promptTokenIds;
  return chunk;
}

/**
 * A chat content chunk; with `finish`, the last one, carrying the finish and
 * stop reasons. `tokenIds` are the ids new in this chunk (`return_token_ids`).
 */
export function chatContentChunk(
  identity: ResponseIdentity,
  content: string,
  finish: Finish | null,
  usage: UsageCounts | undefined,
  tokenIds: readonly number[] | null = null,
): object {
  const choice: Record<string, unknown> = {
    index: 0,
    delta: { content },
    logprobs: null,
    finish_reason: finish?.finishReason ?? null,
  };
  if (finish) choice.stop_reason = finish.stopReason;
  choice.token_ids = tokenIds;
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

/** The non-streaming `/v1/chat/completions` body: output ids in the choice, prompt ids at the top level. */
export function chatResponse(
  identity: ResponseIdentity,
  content: string,
  finish: Finish,
  usage: UsageCounts,
  promptTokensDetails: boolean,
  tokenIds: ReturnedTokenIds = NO_TOKEN_IDS,
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
        token_ids: tokenIds.output,
      },
    ],
    service_tier: null,
    system_fingerprint: null,
    usage: usageInfo(usage, promptTokensDetails, true),
    prompt_logprobs: null,
    prompt_token_ids: tokenIds.prompt,
    kv_transfer_params: null,
  };
}

/**
 * A fast serialiser for the content chunks of one stream: `build` is called
 * once with marker values for the text and the token ids, and each later call
 * splices the JSON-encoded values into the serialised result, so a token costs
 * one small `JSON.stringify` instead of building and serialising the whole
 * chunk. The output is exactly `JSON.stringify(build(text, tokenIds))`; a
 * `build` that ignores `tokenIds` gets no splice for them.
 */
export function createChunkSerializer(
  build: (text: string, tokenIds: readonly number[] | null) => object,
): (text: string, tokenIds?: readonly number[] | null) => string {
  const textMarker = '\u0000llmmesh-text\u0000';
  const idsMarker = '\u0000llmmesh-ids\u0000';
  // The ids marker is a string standing in for an array: only its serialised form matters.
  const json = JSON.stringify(build(textMarker, idsMarker as unknown as number[]));
  const slow = (text: string, tokenIds: readonly number[] | null = null) =>
    JSON.stringify(build(text, tokenIds));
  const textAt = uniqueIndex(json, JSON.stringify(textMarker));
  // The markers cannot come from a client (NUL never reaches ids or names in practice); if one did, stay exact.
  if (textAt === -1) return slow;
  const idsAt = uniqueIndex(json, JSON.stringify(idsMarker));
  const textEnd = textAt + JSON.stringify(textMarker).length;
  if (idsAt === -1) {
    if (json.includes(idsMarker)) return slow;
    const before = json.slice(0, textAt);
    const after = json.slice(textEnd);
    return (text) => before + JSON.stringify(text) + after;
  }
  const idsEnd = idsAt + JSON.stringify(idsMarker).length;
  if (idsAt < textEnd) return slow; // ids before text: not a shape vLLM sends, stay exact
  const before = json.slice(0, textAt);
  const between = json.slice(textEnd, idsAt);
  const after = json.slice(idsEnd);
  return (text, tokenIds = null) =>
    before + JSON.stringify(text) + between + JSON.stringify(tokenIds) + after;
}

function uniqueIndex(text: string, part: string): number {
  const at = text.indexOf(part);
  return at !== -1 && text.lastIndexOf(part) === at ? at : -1;
}
