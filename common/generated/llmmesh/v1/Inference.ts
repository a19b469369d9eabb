// Original file: proto/llmmesh/v1/inference.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { GenerateChunk as _llmmesh_v1_GenerateChunk, GenerateChunk__Output as _llmmesh_v1_GenerateChunk__Output } from '../../llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest as _llmmesh_v1_GenerateRequest, GenerateRequest__Output as _llmmesh_v1_GenerateRequest__Output } from '../../llmmesh/v1/GenerateRequest.js';
import type { GenerateResponse as _llmmesh_v1_GenerateResponse, GenerateResponse__Output as _llmmesh_v1_GenerateResponse__Output } from '../../llmmesh/v1/GenerateResponse.js';
import type { ListModelsRequest as _llmmesh_v1_ListModelsRequest, ListModelsRequest__Output as _llmmesh_v1_ListModelsRequest__Output } from '../../llmmesh/v1/ListModelsRequest.js';
import type { ListModelsResponse as _llmmesh_v1_ListModelsResponse, ListModelsResponse__Output as _llmmesh_v1_ListModelsResponse__Output } from '../../llmmesh/v1/ListModelsResponse.js';

/**
 * Inference is what internal services call. The router serves it.
 */
export interface InferenceClient extends grpc.Client {
  /**
   * Generate returns the whole completion at once.
   */
  Generate(argument: _llmmesh_v1_GenerateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_llmmesh_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  Generate(argument: _llmmesh_v1_GenerateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_llmmesh_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  Generate(argument: _llmmesh_v1_GenerateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_llmmesh_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  Generate(argument: _llmmesh_v1_GenerateRequest, callback: grpc.requestCallback<_llmmesh_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Generate returns the whole completion at once.
   */
  generate(argument: _llmmesh_v1_GenerateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_llmmesh_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  generate(argument: _llmmesh_v1_GenerateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_llmmesh_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  generate(argument: _llmmesh_v1_GenerateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_llmmesh_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  generate(argument: _llmmesh_v1_GenerateRequest, callback: grpc.requestCallback<_llmmesh_v1_GenerateResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * GenerateStream streams generated text as it is produced. The first chunk
   * carries model_version; the last carries finish_reason and usage.
   */
  GenerateStream(argument: _llmmesh_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_GenerateChunk__Output>;
  GenerateStream(argument: _llmmesh_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_GenerateChunk__Output>;
  /**
   * GenerateStream streams generated text as it is produced. The first chunk
   * carries model_version; the last carries finish_reason and usage.
   */
  generateStream(argument: _llmmesh_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_GenerateChunk__Output>;
  generateStream(argument: _llmmesh_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_GenerateChunk__Output>;
  
  /**
   * ListModels lists the logical models, their versions and canary weights.
   */
  ListModels(argument: _llmmesh_v1_ListModelsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_llmmesh_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  ListModels(argument: _llmmesh_v1_ListModelsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_llmmesh_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  ListModels(argument: _llmmesh_v1_ListModelsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_llmmesh_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  ListModels(argument: _llmmesh_v1_ListModelsRequest, callback: grpc.requestCallback<_llmmesh_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  /**
   * ListModels lists the logical models, their versions and canary weights.
   */
  listModels(argument: _llmmesh_v1_ListModelsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_llmmesh_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  listModels(argument: _llmmesh_v1_ListModelsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_llmmesh_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  listModels(argument: _llmmesh_v1_ListModelsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_llmmesh_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  listModels(argument: _llmmesh_v1_ListModelsRequest, callback: grpc.requestCallback<_llmmesh_v1_ListModelsResponse__Output>): grpc.ClientUnaryCall;
  
}

/**
 * Inference is what internal services call. The router serves it.
 */
export interface InferenceHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Generate returns the whole completion at once.
   */
  Generate: grpc.handleUnaryCall<_llmmesh_v1_GenerateRequest__Output, _llmmesh_v1_GenerateResponse>;
  
  /**
   * GenerateStream streams generated text as it is produced. The first chunk
   * carries model_version; the last carries finish_reason and usage.
   */
  GenerateStream: grpc.handleServerStreamingCall<_llmmesh_v1_GenerateRequest__Output, _llmmesh_v1_GenerateChunk>;
  
  /**
   * ListModels lists the logical models, their versions and canary weights.
   */
  ListModels: grpc.handleUnaryCall<_llmmesh_v1_ListModelsRequest__Output, _llmmesh_v1_ListModelsResponse>;
  
}

export interface InferenceDefinition extends grpc.ServiceDefinition {
  Generate: MethodDefinition<_llmmesh_v1_GenerateRequest, _llmmesh_v1_GenerateResponse, _llmmesh_v1_GenerateRequest__Output, _llmmesh_v1_GenerateResponse__Output>
  GenerateStream: MethodDefinition<_llmmesh_v1_GenerateRequest, _llmmesh_v1_GenerateChunk, _llmmesh_v1_GenerateRequest__Output, _llmmesh_v1_GenerateChunk__Output>
  ListModels: MethodDefinition<_llmmesh_v1_ListModelsRequest, _llmmesh_v1_ListModelsResponse, _llmmesh_v1_ListModelsRequest__Output, _llmmesh_v1_ListModelsResponse__Output>
}
