// Original file: proto/llmmesh/v1/inference.proto


/**
 * ChatMessage is one turn of a chat.
 */
export interface ChatMessage {
  /**
   * "system", "user", "assistant" or "tool".
   */
  'role'?: (string);
  'content'?: (string);
}

/**
 * ChatMessage is one turn of a chat.
 */
export interface ChatMessage__Output {
  /**
   * "system", "user", "assistant" or "tool".
   */
  'role': (string);
  'content': (string);
}
