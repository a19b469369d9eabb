// Original file: proto/llmmesh/v1/inference.proto


/**
 * Usage counts tokens of one request.
 */
export interface Usage {
  'promptTokens'?: (number);
  'completionTokens'?: (number);
  /**
   * Prompt tokens served from the engine's prefix cache.
   */
  'cachedTokens'?: (number);
}

/**
 * Usage counts tokens of one request.
 */
export interface Usage__Output {
  'promptTokens': (number);
  'completionTokens': (number);
  /**
   * Prompt tokens served from the engine's prefix cache.
   */
  'cachedTokens': (number);
}
