// Original file: proto/llmmesh/v1/inference.proto

import type { Model as _llmmesh_v1_Model, Model__Output as _llmmesh_v1_Model__Output } from '../../llmmesh/v1/Model.js';

/**
 * ListModelsResponse lists every configured model.
 */
export interface ListModelsResponse {
  'models'?: (_llmmesh_v1_Model)[];
}

/**
 * ListModelsResponse lists every configured model.
 */
export interface ListModelsResponse__Output {
  'models': (_llmmesh_v1_Model__Output)[];
}
