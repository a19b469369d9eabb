// Original file: proto/llmmesh/v1/inference.proto

import type { ModelVersion as _llmmesh_v1_ModelVersion, ModelVersion__Output as _llmmesh_v1_ModelVersion__Output } from '../../llmmesh/v1/ModelVersion.js';

/**
 * Model is a logical model and its versions.
 */
export interface Model {
  'name'?: (string);
  'versions'?: (_llmmesh_v1_ModelVersion)[];
}

/**
 * Model is a logical model and its versions.
 */
export interface Model__Output {
  'name': (string);
  'versions': (_llmmesh_v1_ModelVersion__Output)[];
}
