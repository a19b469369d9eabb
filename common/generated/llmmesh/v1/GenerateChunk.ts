// Original file: proto/llmmesh/v1/inference.proto

import type { FinishReason as _llmmesh_v1_FinishReason, FinishReason__Output as _llmmesh_v1_FinishReason__Output } from '../../llmmesh/v1/FinishReason.js';
import type { Usage as _llmmesh_v1_Usage, Usage__Output as _llmmesh_v1_Usage__Output } from '../../llmmesh/v1/Usage.js';

/**
 * GenerateChunk is one piece of a streamed completion.
 */
export interface GenerateChunk {
  'text'?: (string);
  /**
   * Set on the last chunk only.
   */
  'finishReason'?: (_llmmesh_v1_FinishReason);
  /**
   * Set on the last chunk only.
   */
  'usage'?: (_llmmesh_v1_Usage | null);
  /**
   * Set on the first chunk.
   */
  'modelVersion'?: (string);
  /**
   * Token ids of this chunk's text, where the engine gives them, on both hops.
   * A chunk is one token, except for a reader that fell behind: the chunks
   * waiting for it are merged into one (text and ids in order, the finish
   * reason and usage of the last), so token_ids.length is the chunk's token
   * count. The first chunk is always one token.
   */
  'tokenIds'?: (number)[];
}

/**
 * GenerateChunk is one piece of a streamed completion.
 */
export interface GenerateChunk__Output {
  'text': (string);
  /**
   * Set on the last chunk only.
   */
  'finishReason': (_llmmesh_v1_FinishReason__Output);
  /**
   * Set on the last chunk only.
   */
  'usage': (_llmmesh_v1_Usage__Output | null);
  /**
   * Set on the first chunk.
   */
  'modelVersion': (string);
  /**
   * Token ids of this chunk's text, where the engine gives them, on both hops.
   * A chunk is one token, except for a reader that fell behind: the chunks
   * waiting for it are merged into one (text and ids in order, the finish
   * reason and usage of the last), so token_ids.length is the chunk's token
   * count. The first chunk is always one token.
   */
  'tokenIds': (number)[];
}
