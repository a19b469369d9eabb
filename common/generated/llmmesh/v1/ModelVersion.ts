// Original file: proto/llmmesh/v1/inference.proto


/**
 * ModelVersion is one version of a model with its canary weight and pool.
 */
export interface ModelVersion {
  'name'?: (string);
  /**
   * Configured weight (relative to the model's other versions).
   */
  'weight'?: (number);
  /**
   * Endpoints serving this version that are ready now.
   */
  'readyEndpoints'?: (number);
  /**
   * Endpoints known for this version, ready or not.
   */
  'endpoints'?: (number);
  /**
   * Context length reported by the engine, 0 when unknown.
   */
  'maxModelLen'?: (number);
}

/**
 * ModelVersion is one version of a model with its canary weight and pool.
 */
export interface ModelVersion__Output {
  'name': (string);
  /**
   * Configured weight (relative to the model's other versions).
   */
  'weight': (number);
  /**
   * Endpoints serving this version that are ready now.
   */
  'readyEndpoints': (number);
  /**
   * Endpoints known for this version, ready or not.
   */
  'endpoints': (number);
  /**
   * Context length reported by the engine, 0 when unknown.
   */
  'maxModelLen': (number);
}
