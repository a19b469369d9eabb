// Original file: proto/llmmesh/v1/inference.proto


/**
 * Continuation is the output a generation already delivered to the client,
 * so that another endpoint can go on from where it stopped: the engine is
 * given the original prompt followed by this output, and `max_tokens` less
 * `completion_tokens`.
 */
export interface Continuation {
  /**
   * Token ids of the delivered output, when every chunk carried them: the
   * continuation is then exact. Empty when the engine gave no ids.
   */
  'tokenIds'?: (number)[];
  /**
   * Text of the delivered output (used when `token_ids` is empty).
   */
  'text'?: (string);
  /**
   * Output tokens delivered so far.
   */
  'completionTokens'?: (number);
}

/**
 * Continuation is the output a generation already delivered to the client,
 * so that another endpoint can go on from where it stopped: the engine is
 * given the original prompt followed by this output, and `max_tokens` less
 * `completion_tokens`.
 */
export interface Continuation__Output {
  /**
   * Token ids of the delivered output, when every chunk carried them: the
   * continuation is then exact. Empty when the engine gave no ids.
   */
  'tokenIds': (number)[];
  /**
   * Text of the delivered output (used when `token_ids` is empty).
   */
  'text': (string);
  /**
   * Output tokens delivered so far.
   */
  'completionTokens': (number);
}
