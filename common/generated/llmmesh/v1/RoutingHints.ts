// Original file: proto/llmmesh/v1/inference.proto

import type { Priority as _llmmesh_v1_Priority, Priority__Output as _llmmesh_v1_Priority__Output } from '../../llmmesh/v1/Priority.js';

/**
 * RoutingHints steer version and pod choice.
 */
export interface RoutingHints {
  /**
   * Pin a version (bypasses weights), e.g. for canary tests.
   */
  'version'?: (string);
  /**
   * Sticky: the same key maps to the same version, and the same pod while it is healthy.
   */
  'sessionKey'?: (string);
  'priority'?: (_llmmesh_v1_Priority);
}

/**
 * RoutingHints steer version and pod choice.
 */
export interface RoutingHints__Output {
  /**
   * Pin a version (bypasses weights), e.g. for canary tests.
   */
  'version': (string);
  /**
   * Sticky: the same key maps to the same version, and the same pod while it is healthy.
   */
  'sessionKey': (string);
  'priority': (_llmmesh_v1_Priority__Output);
}
