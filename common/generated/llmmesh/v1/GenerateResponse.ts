// Original file: proto/llmmesh/v1/inference.proto

import type { FinishReason as _llmmesh_v1_FinishReason, FinishReason__Output as _llmmesh_v1_FinishReason__Output } from '../../llmmesh/v1/FinishReason.js';
import type { Usage as _llmmesh_v1_Usage, Usage__Output as _llmmesh_v1_Usage__Output } from '../../llmmesh/v1/Usage.js';

/**
 * GenerateResponse is a whole completion.
 */
export interface GenerateResponse {
  'text'?: (string);
  'finishReason'?: (_llmmesh_v1_FinishReason);
  'usage'?: (_llmmesh_v1_Usage | null);
  'modelVersion'?: (string);
  'requestId'?: (string);
}

/**
 * GenerateResponse is a whole completion.
 */
export interface GenerateResponse__Output {
  'text': (string);
  'finishReason': (_llmmesh_v1_FinishReason__Output);
  'usage': (_llmmesh_v1_Usage__Output | null);
  'modelVersion': (string);
  'requestId': (string);
}
