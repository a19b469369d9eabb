import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { Capacity as _llmmesh_v1_Capacity, Capacity__Output as _llmmesh_v1_Capacity__Output } from './llmmesh/v1/Capacity.js';
import type { ChatMessage as _llmmesh_v1_ChatMessage, ChatMessage__Output as _llmmesh_v1_ChatMessage__Output } from './llmmesh/v1/ChatMessage.js';
import type { Continuation as _llmmesh_v1_Continuation, Continuation__Output as _llmmesh_v1_Continuation__Output } from './llmmesh/v1/Continuation.js';
import type { EngineClient as _llmmesh_v1_EngineClient, EngineDefinition as _llmmesh_v1_EngineDefinition } from './llmmesh/v1/Engine.js';
import type { EngineMetrics as _llmmesh_v1_EngineMetrics, EngineMetrics__Output as _llmmesh_v1_EngineMetrics__Output } from './llmmesh/v1/EngineMetrics.js';
import type { GenerateChunk as _llmmesh_v1_GenerateChunk, GenerateChunk__Output as _llmmesh_v1_GenerateChunk__Output } from './llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest as _llmmesh_v1_GenerateRequest, GenerateRequest__Output as _llmmesh_v1_GenerateRequest__Output } from './llmmesh/v1/GenerateRequest.js';
import type { GenerateResponse as _llmmesh_v1_GenerateResponse, GenerateResponse__Output as _llmmesh_v1_GenerateResponse__Output } from './llmmesh/v1/GenerateResponse.js';
import type { InferenceClient as _llmmesh_v1_InferenceClient, InferenceDefinition as _llmmesh_v1_InferenceDefinition } from './llmmesh/v1/Inference.js';
import type { ListModelsRequest as _llmmesh_v1_ListModelsRequest, ListModelsRequest__Output as _llmmesh_v1_ListModelsRequest__Output } from './llmmesh/v1/ListModelsRequest.js';
import type { ListModelsResponse as _llmmesh_v1_ListModelsResponse, ListModelsResponse__Output as _llmmesh_v1_ListModelsResponse__Output } from './llmmesh/v1/ListModelsResponse.js';
import type { LoadReport as _llmmesh_v1_LoadReport, LoadReport__Output as _llmmesh_v1_LoadReport__Output } from './llmmesh/v1/LoadReport.js';
import type { Model as _llmmesh_v1_Model, Model__Output as _llmmesh_v1_Model__Output } from './llmmesh/v1/Model.js';
import type { ModelVersion as _llmmesh_v1_ModelVersion, ModelVersion__Output as _llmmesh_v1_ModelVersion__Output } from './llmmesh/v1/ModelVersion.js';
import type { PrefixIndexUpdate as _llmmesh_v1_PrefixIndexUpdate, PrefixIndexUpdate__Output as _llmmesh_v1_PrefixIndexUpdate__Output } from './llmmesh/v1/PrefixIndexUpdate.js';
import type { RoutingHints as _llmmesh_v1_RoutingHints, RoutingHints__Output as _llmmesh_v1_RoutingHints__Output } from './llmmesh/v1/RoutingHints.js';
import type { SamplingParams as _llmmesh_v1_SamplingParams, SamplingParams__Output as _llmmesh_v1_SamplingParams__Output } from './llmmesh/v1/SamplingParams.js';
import type { Usage as _llmmesh_v1_Usage, Usage__Output as _llmmesh_v1_Usage__Output } from './llmmesh/v1/Usage.js';
import type { WatchLoadRequest as _llmmesh_v1_WatchLoadRequest, WatchLoadRequest__Output as _llmmesh_v1_WatchLoadRequest__Output } from './llmmesh/v1/WatchLoadRequest.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  llmmesh: {
    v1: {
      Capacity: MessageTypeDefinition<_llmmesh_v1_Capacity, _llmmesh_v1_Capacity__Output>
      ChatMessage: MessageTypeDefinition<_llmmesh_v1_ChatMessage, _llmmesh_v1_ChatMessage__Output>
      Continuation: MessageTypeDefinition<_llmmesh_v1_Continuation, _llmmesh_v1_Continuation__Output>
      /**
       * Engine is served by the sidecar in every inference pod.
       */
      Engine: SubtypeConstructor<typeof grpc.Client, _llmmesh_v1_EngineClient> & { service: _llmmesh_v1_EngineDefinition }
      EngineMetrics: MessageTypeDefinition<_llmmesh_v1_EngineMetrics, _llmmesh_v1_EngineMetrics__Output>
      FinishReason: EnumTypeDefinition
      GenerateChunk: MessageTypeDefinition<_llmmesh_v1_GenerateChunk, _llmmesh_v1_GenerateChunk__Output>
      GenerateRequest: MessageTypeDefinition<_llmmesh_v1_GenerateRequest, _llmmesh_v1_GenerateRequest__Output>
      GenerateResponse: MessageTypeDefinition<_llmmesh_v1_GenerateResponse, _llmmesh_v1_GenerateResponse__Output>
      /**
       * Inference is what internal services call. The router serves it.
       */
      Inference: SubtypeConstructor<typeof grpc.Client, _llmmesh_v1_InferenceClient> & { service: _llmmesh_v1_InferenceDefinition }
      ListModelsRequest: MessageTypeDefinition<_llmmesh_v1_ListModelsRequest, _llmmesh_v1_ListModelsRequest__Output>
      ListModelsResponse: MessageTypeDefinition<_llmmesh_v1_ListModelsResponse, _llmmesh_v1_ListModelsResponse__Output>
      LoadReport: MessageTypeDefinition<_llmmesh_v1_LoadReport, _llmmesh_v1_LoadReport__Output>
      Model: MessageTypeDefinition<_llmmesh_v1_Model, _llmmesh_v1_Model__Output>
      ModelVersion: MessageTypeDefinition<_llmmesh_v1_ModelVersion, _llmmesh_v1_ModelVersion__Output>
      PrefixIndexUpdate: MessageTypeDefinition<_llmmesh_v1_PrefixIndexUpdate, _llmmesh_v1_PrefixIndexUpdate__Output>
      Priority: EnumTypeDefinition
      RoutingHints: MessageTypeDefinition<_llmmesh_v1_RoutingHints, _llmmesh_v1_RoutingHints__Output>
      SamplingParams: MessageTypeDefinition<_llmmesh_v1_SamplingParams, _llmmesh_v1_SamplingParams__Output>
      Usage: MessageTypeDefinition<_llmmesh_v1_Usage, _llmmesh_v1_Usage__Output>
      WatchLoadRequest: MessageTypeDefinition<_llmmesh_v1_WatchLoadRequest, _llmmesh_v1_WatchLoadRequest__Output>
    }
  }
}

