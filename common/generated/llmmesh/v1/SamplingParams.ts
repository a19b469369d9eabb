// Original file: proto/llmmesh/v1/inference.proto

import type { Long } from '@grpc/proto-loader';

/**
 * SamplingParams are passed to the engine as OpenAI sampling fields.
 */
export interface SamplingParams {
  /**
   * Maximum tokens to generate; 0 means the engine default (16 for vLLM).
   */
  'maxTokens'?: (number);
  'temperature'?: (number | string);
  'topP'?: (number | string);
  'seed'?: (number | string | Long);
  'stop'?: (string)[];
  '_temperature'?: "temperature";
  '_topP'?: "topP";
  '_seed'?: "seed";
}

/**
 * SamplingParams are passed to the engine as OpenAI sampling fields.
 */
export interface SamplingParams__Output {
  /**
   * Maximum tokens to generate; 0 means the engine default (16 for vLLM).
   */
  'maxTokens': (number);
  'temperature'?: (number);
  'topP'?: (number);
  'seed'?: (number);
  'stop': (string)[];
  '_temperature'?: "temperature";
  '_topP'?: "topP";
  '_seed'?: "seed";
}
