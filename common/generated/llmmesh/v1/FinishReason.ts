// Original file: proto/llmmesh/v1/inference.proto

/**
 * FinishReason says why generation stopped.
 */
export const FinishReason = {
  FINISH_REASON_UNSPECIFIED: 'FINISH_REASON_UNSPECIFIED',
  /**
   * A stop string or the end-of-sequence token was produced.
   */
  FINISH_REASON_STOP: 'FINISH_REASON_STOP',
  /**
   * max_tokens (or the context length) was reached.
   */
  FINISH_REASON_LENGTH: 'FINISH_REASON_LENGTH',
} as const;

/**
 * FinishReason says why generation stopped.
 */
export type FinishReason =
  | 'FINISH_REASON_UNSPECIFIED'
  | 0
  /**
   * A stop string or the end-of-sequence token was produced.
   */
  | 'FINISH_REASON_STOP'
  | 1
  /**
   * max_tokens (or the context length) was reached.
   */
  | 'FINISH_REASON_LENGTH'
  | 2

/**
 * FinishReason says why generation stopped.
 */
export type FinishReason__Output = typeof FinishReason[keyof typeof FinishReason]
