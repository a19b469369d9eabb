/** Conversions between engine (OpenAI) values and llmmesh.v1 proto values. */
import type { FinishReason } from './generated/llmmesh/v1/FinishReason.js';
import type { Usage } from './generated/llmmesh/v1/Usage.js';

/** Maps an OpenAI `finish_reason` to the proto enum (`abort` and unknown reasons map to STOP). */
export function finishReasonToProto(reason: string): FinishReason {
  return reason === 'length' ? 'FINISH_REASON_LENGTH' : 'FINISH_REASON_STOP';
}

/** Maps engine usage to the proto message; zeros when the engine reported none. */
export function usageToProto(
  usage: { promptTokens: number; completionTokens: number; cachedTokens: number } | undefined,
): Usage {
  return {
    promptTokens: usage?.promptTokens ?? 0,
    completionTokens: usage?.completionTokens ?? 0,
    cachedTokens: usage?.cachedTokens ?? 0,
  };
}
