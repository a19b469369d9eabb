// Original file: proto/llmmesh/v1/engine.proto


/**
 * WatchLoadRequest opens a load stream.
 */
export interface WatchLoadRequest {
  /**
   * Identifies the watching router in the sidecar's logs.
   */
  'watcherId'?: (string);
}

/**
 * WatchLoadRequest opens a load stream.
 */
export interface WatchLoadRequest__Output {
  /**
   * Identifies the watching router in the sidecar's logs.
   */
  'watcherId': (string);
}
