/**
 * The simulator's `/metrics`: vLLM V1's Prometheus families, names, help texts,
 * labels (`engine="0"`, `model_name`) and histogram buckets, with values
 * counted from the traffic the engine actually served. It is the engine's
 * {@link EngineObserver}; gauges are read from the engine at scrape time.
 *
 * The engine calls it where vLLM stamps each value: TTFT and e2e latency when
 * the API server has processed the token (its queue included), counted from
 * the request's hand-over to the engine (intake excluded); inter-token
 * latency, queue, prefill and decode times on the engine's own clock.
 */
import type { EngineObserver, EngineSnapshot, FinishedRequestStats } from './engine.js';
import {
  buildOneTwoFiveBuckets,
  createExpositionWriter,
  createHistogram,
  type ExpositionWriter,
  type Histogram,
  type Labels,
} from './prometheus.js';

const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
  80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
  960.0, 1920.0, 7680.0,
];
const ITERATION_TOKENS_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];
const PARAMS_N_BUCKETS = [1, 2, 5, 10, 20];
const FINISHED_REASONS = ['stop', 'length', 'abort'] as const;

/** Options of {@link createVllmMetrics}. */
export interface VllmMetricsOptions {
  /** The served model name (`model_name` label). */
  modelName: string;
  maxModelLen: number;
  numGpuBlocks: number;
  /** Set when the block count was given (vLLM's `--num-gpu-blocks-override`). */
  numGpuBlocksOverride?: number | undefined;
  blockSize: number;
  enablePrefixCaching: boolean;
  gpuMemoryUtilization?: number;
  /** Unix time in seconds stamped into the `_created` series. */
  createdSeconds: number;
}

/** Counts engine events and renders them as vLLM does. */
export interface VllmMetrics {
  /** Pass to the engine. */
  readonly observer: EngineObserver;
  /** The exposition text, with gauges taken from `snapshot`. */
  render(snapshot: EngineSnapshot): string;
}

/** Creates the metric registry of one simulated engine. */
export function createVllmMetrics(options: VllmMetricsOptions): VllmMetrics {
  const base: Labels = { engine: '0', model_name: options.modelName };
  const created = options.createdSeconds;
  const tokenBuckets = buildOneTwoFiveBuckets(options.maxModelLen);

  const counters = {
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    preemptions: 0,
    promptTokens: 0,
    generationTokens: 0,
  };
  const success: Record<(typeof FINISHED_REASONS)[number], number> = { stop: 0, length: 0, abort: 0 };
  const h = {
    promptTokens: createHistogram(tokenBuckets),
    generationTokens: createHistogram(tokenBuckets),
    iterationTokens: createHistogram(ITERATION_TOKENS_BUCKETS),
    maxGenerationTokens: createHistogram(tokenBuckets),
    paramsN: createHistogram(PARAMS_N_BUCKETS),
    paramsMaxTokens: createHistogram(tokenBuckets),
    ttft: createHistogram(TTFT_BUCKETS),
    tpot: createHistogram(ITL_BUCKETS),
    itl: createHistogram(ITL_BUCKETS),
    requestTpot: createHistogram(ITL_BUCKETS),
    e2e: createHistogram(REQUEST_LATENCY_BUCKETS),
    queue: createHistogram(REQUEST_LATENCY_BUCKETS),
    inference: createHistogram(REQUEST_LATENCY_BUCKETS),
    prefill: createHistogram(REQUEST_LATENCY_BUCKETS),
    decode: createHistogram(REQUEST_LATENCY_BUCKETS),
  };

  const onRequestFinished = (stats: FinishedRequestStats) => {
    success[stats.finishReason]++;
    // Latency histograms describe completed requests only.
    if (stats.finishReason === 'abort') return;
    const seconds = (from: number | undefined, to: number | undefined) =>
      from === undefined || to === undefined ? 0 : Math.max(0, to - from) / 1000;
    h.promptTokens.observe(stats.promptTokens);
    h.generationTokens.observe(stats.generationTokens);
    h.maxGenerationTokens.observe(stats.maxTokens);
    h.paramsN.observe(1);
    h.paramsMaxTokens.observe(stats.maxTokens);
    h.e2e.observe(seconds(stats.arrivalMs, stats.finishedMs));
    h.queue.observe(seconds(stats.arrivalMs, stats.scheduledMs));
    h.prefill.observe(seconds(stats.scheduledMs, stats.firstTokenMs));
    const decode = seconds(stats.firstTokenMs, stats.lastTokenMs);
    h.decode.observe(decode);
    h.inference.observe(seconds(stats.scheduledMs, stats.lastTokenMs));
    h.requestTpot.observe(stats.generationTokens > 1 ? decode / (stats.generationTokens - 1) : 0);
  };

  const observer: EngineObserver = {
    onPrefixCacheQuery(queried, hits) {
      counters.prefixCacheQueries += queried;
      counters.prefixCacheHits += hits;
    },
    onPreemption() {
      counters.preemptions++;
    },
    onStep(scheduledTokens) {
      h.iterationTokens.observe(scheduledTokens);
    },
    onFirstToken(promptTokens, ttftMs) {
      counters.promptTokens += promptTokens;
      counters.generationTokens++;
      h.ttft.observe(ttftMs / 1000);
    },
    onNextToken(itlMs) {
      counters.generationTokens++;
      h.tpot.observe(itlMs / 1000);
      h.itl.observe(itlMs / 1000);
    },
    onRequestFinished,
  };

  const counter = (w: ExpositionWriter, name: string, help: string, value: number) => {
    w.family(`${name}_total`, 'counter', help);
    w.sample(`${name}_total`, base, value);
    w.family(`${name}_created`, 'gauge', help);
    w.sample(`${name}_created`, base, created);
  };
  const histogram = (w: ExpositionWriter, name: string, help: string, hist: Histogram) => {
    w.family(name, 'histogram', help);
    w.histogram(name, base, hist);
    w.family(`${name}_created`, 'gauge', help);
    w.sample(`${name}_created`, base, created);
  };

  const render = (snapshot: EngineSnapshot): string => {
    const w = createExpositionWriter();
    w.family('vllm:num_requests_running', 'gauge', 'Number of requests in model execution batches.');
    w.sample('vllm:num_requests_running', base, snapshot.running);
    w.family('vllm:num_requests_waiting', 'gauge', 'Number of requests waiting to be processed.');
    w.sample('vllm:num_requests_waiting', base, snapshot.waiting);
    w.family('vllm:kv_cache_usage_perc', 'gauge', 'KV-cache usage. 1 means 100 percent usage.');
    w.sample('vllm:kv_cache_usage_perc', base, snapshot.kvCacheUsage);
    counter(
      w,
      'vllm:prefix_cache_queries',
      'Prefix cache queries, in terms of number of queried tokens.',
      counters.prefixCacheQueries,
    );
    counter(
      w,
      'vllm:prefix_cache_hits',
      'Prefix cache hits, in terms of number of cached tokens.',
      counters.prefixCacheHits,
    );
    counter(
      w,
      'vllm:num_preemptions',
      'Cumulative number of preemption from the engine.',
      counters.preemptions,
    );
    counter(w, 'vllm:prompt_tokens', 'Number of prefill tokens processed.', counters.promptTokens);
    counter(w, 'vllm:generation_tokens', 'Number of generation tokens processed.', counters.generationTokens);

    const successHelp = 'Count of successfully processed requests.';
    w.family('vllm:request_success_total', 'counter', successHelp);
    for (const reason of FINISHED_REASONS) {
      w.sample('vllm:request_success_total', { ...base, finished_reason: reason }, success[reason]);
    }
    w.family('vllm:request_success_created', 'gauge', successHelp);
    for (const reason of FINISHED_REASONS) {
      w.sample('vllm:request_success_created', { ...base, finished_reason: reason }, created);
    }

    histogram(w, 'vllm:request_prompt_tokens', 'Number of prefill tokens processed.', h.promptTokens);
    histogram(
      w,
      'vllm:request_generation_tokens',
      'Number of generation tokens processed.',
      h.generationTokens,
    );
    histogram(
      w,
      'vllm:iteration_tokens_total',
      'Histogram of number of tokens per engine_step.',
      h.iterationTokens,
    );
    histogram(
      w,
      'vllm:request_max_num_generation_tokens',
      'Histogram of maximum number of requested generation tokens.',
      h.maxGenerationTokens,
    );
    histogram(w, 'vllm:request_params_n', 'Histogram of the n request parameter.', h.paramsN);
    histogram(
      w,
      'vllm:request_params_max_tokens',
      'Histogram of the max_tokens request parameter.',
      h.paramsMaxTokens,
    );
    histogram(w, 'vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', h.ttft);
    histogram(
      w,
      'vllm:time_per_output_token_seconds',
      'Histogram of time per output token in seconds.DEPRECATED: Use vllm:inter_token_latency_seconds instead.',
      h.tpot,
    );
    histogram(w, 'vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', h.itl);
    histogram(
      w,
      'vllm:request_time_per_output_token_seconds',
      'Histogram of time_per_output_token_seconds per request.',
      h.requestTpot,
    );
    histogram(w, 'vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', h.e2e);
    histogram(
      w,
      'vllm:request_queue_time_seconds',
      'Histogram of time spent in WAITING phase for request.',
      h.queue,
    );
    histogram(
      w,
      'vllm:request_inference_time_seconds',
      'Histogram of time spent in RUNNING phase for request.',
      h.inference,
    );
    histogram(
      w,
      'vllm:request_prefill_time_seconds',
      'Histogram of time spent in PREFILL phase for request.',
      h.prefill,
    );
    histogram(
      w,
      'vllm:request_decode_time_seconds',
      'Histogram of time spent in DECODE phase for request.',
      h.decode,
    );

    w.family('vllm:cache_config_info', 'gauge', 'Information of the LLMEngine CacheConfig');
    w.sample('vllm:cache_config_info', cacheConfigLabels(options), 1);
    return w.text();
  };

  return { observer, render };
}

// The label set vLLM V1 reports for its cache config, with this simulator's values.
function cacheConfigLabels(options: VllmMetricsOptions): Labels {
  return {
    block_size: String(options.blockSize),
    cache_dtype: 'auto',
    calculate_kv_scales: 'False',
    cpu_kvcache_space_bytes: 'None',
    cpu_offload_gb: '0.0',
    enable_prefix_caching: options.enablePrefixCaching ? 'True' : 'False',
    engine: '0',
    gpu_memory_utilization: String(options.gpuMemoryUtilization ?? 0.9),
    is_attention_free: 'False',
    kv_cache_memory_bytes: 'None',
    kv_sharing_fast_prefill: 'False',
    mamba_cache_dtype: 'auto',
    mamba_page_size_padded: 'None',
    mamba_ssm_cache_dtype: 'auto',
    num_cpu_blocks: 'None',
    num_gpu_blocks: String(options.numGpuBlocks),
    num_gpu_blocks_override:
      options.numGpuBlocksOverride === undefined ? 'None' : String(options.numGpuBlocksOverride),
    prefix_caching_hash_algo: 'sha256',
    sliding_window: 'None',
    swap_space: '4.0',
    swap_space_bytes: '4294967296.0',
  };
}
