// Original file: proto/llmmesh/v1/engine.proto


/**
 * EngineMetrics are the vLLM gauges a scheduler needs.
 */
export interface EngineMetrics {
  /**
   * vllm:num_requests_running
   */
  'numRequestsRunning'?: (number | string);
  /**
   * vllm:num_requests_waiting
   */
  'numRequestsWaiting'?: (number | string);
  /**
   * vllm:kv_cache_usage_perc (0..1)
   */
  'kvCacheUsagePerc'?: (number | string);
}

/**
 * EngineMetrics are the vLLM gauges a scheduler needs.
 */
export interface EngineMetrics__Output {
  /**
   * vllm:num_requests_running
   */
  'numRequestsRunning': (number);
  /**
   * vllm:num_requests_waiting
   */
  'numRequestsWaiting': (number);
  /**
   * vllm:kv_cache_usage_perc (0..1)
   */
  'kvCacheUsagePerc': (number);
}
