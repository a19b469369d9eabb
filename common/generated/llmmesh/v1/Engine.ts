// Original file: proto/llmmesh/v1/engine.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { GenerateChunk as _llmmesh_v1_GenerateChunk, GenerateChunk__Output as _llmmesh_v1_GenerateChunk__Output } from '../../llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest as _llmmesh_v1_GenerateRequest, GenerateRequest__Output as _llmmesh_v1_GenerateRequest__Output } from '../../llmmesh/v1/GenerateRequest.js';
import type { LoadReport as _llmmesh_v1_LoadReport, LoadReport__Output as _llmmesh_v1_LoadReport__Output } from '../../llmmesh/v1/LoadReport.js';
import type { WatchLoadRequest as _llmmesh_v1_WatchLoadRequest, WatchLoadRequest__Output as _llmmesh_v1_WatchLoadRequest__Output } from '../../llmmesh/v1/WatchLoadRequest.js';

/**
 * Engine is served by the sidecar in every inference pod.
 */
export interface EngineClient extends grpc.Client {
  /**
   * GenerateStream runs one request on this pod's engine. Routing context
   * (request id, trace context, deadline) travels in metadata.
   */
  GenerateStream(argument: _llmmesh_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_GenerateChunk__Output>;
  GenerateStream(argument: _llmmesh_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_GenerateChunk__Output>;
  /**
   * GenerateStream runs one request on this pod's engine. Routing context
   * (request id, trace context, deadline) travels in metadata.
   */
  generateStream(argument: _llmmesh_v1_GenerateRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_GenerateChunk__Output>;
  generateStream(argument: _llmmesh_v1_GenerateRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_GenerateChunk__Output>;
  
  /**
   * WatchLoad streams this pod's load: one report on every change and at least
   * every report interval.
   */
  WatchLoad(argument: _llmmesh_v1_WatchLoadRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_LoadReport__Output>;
  WatchLoad(argument: _llmmesh_v1_WatchLoadRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_LoadReport__Output>;
  /**
   * WatchLoad streams this pod's load: one report on every change and at least
   * every report interval.
   */
  watchLoad(argument: _llmmesh_v1_WatchLoadRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_LoadReport__Output>;
  watchLoad(argument: _llmmesh_v1_WatchLoadRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_llmmesh_v1_LoadReport__Output>;
  
}

/**
 * Engine is served by the sidecar in every inference pod.
 */
export interface EngineHandlers extends grpc.UntypedServiceImplementation {
  /**
   * GenerateStream runs one request on this pod's engine. Routing context
   * (request id, trace context, deadline) travels in metadata.
   */
  GenerateStream: grpc.handleServerStreamingCall<_llmmesh_v1_GenerateRequest__Output, _llmmesh_v1_GenerateChunk>;
  
  /**
   * WatchLoad streams this pod's load: one report on every change and at least
   * every report interval.
   */
  WatchLoad: grpc.handleServerStreamingCall<_llmmesh_v1_WatchLoadRequest__Output, _llmmesh_v1_LoadReport>;
  
}

export interface EngineDefinition extends grpc.ServiceDefinition {
  GenerateStream: MethodDefinition<_llmmesh_v1_GenerateRequest, _llmmesh_v1_GenerateChunk, _llmmesh_v1_GenerateRequest__Output, _llmmesh_v1_GenerateChunk__Output>
  WatchLoad: MethodDefinition<_llmmesh_v1_WatchLoadRequest, _llmmesh_v1_LoadReport, _llmmesh_v1_WatchLoadRequest__Output, _llmmesh_v1_LoadReport__Output>
}
