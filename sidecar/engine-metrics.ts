/**
 * Reads the scheduler gauges a router needs from an engine's Prometheus text:
 * vLLM V1 names (`vllm:kv_cache_usage_perc`), the older V0 name
 * (`vllm:gpu_cache_usage_perc`) and SGLang's (`sglang:num_running_reqs`, ...).
 */

/** Gauges and capacity read from one scrape; undefined where the engine does not say. */
export interface ScrapedEngineMetrics {
  numRequestsRunning?: number;
  numRequestsWaiting?: number;
  /** 0..1 */
  kvCacheUsagePerc?: number;
  blockSize?: number;
  numGpuBlocks?: number;
}

const GAUGES: Record<string, keyof ScrapedEngineMetrics> = {
  'vllm:num_requests_running': 'numRequestsRunning',
  'vllm:num_requests_waiting': 'numRequestsWaiting',
  'vllm:kv_cache_usage_perc': 'kvCacheUsagePerc',
  'vllm:gpu_cache_usage_perc': 'kvCacheUsagePerc',
  'sglang:num_running_reqs': 'numRequestsRunning',
  'sglang:num_queue_reqs': 'numRequestsWaiting',
  'sglang:token_usage': 'kvCacheUsagePerc',
};

/**
 * Parses Prometheus exposition text. Samples of the same gauge with several
 * label sets (one per engine core) are summed; usage is averaged.
 */
export function parseEngineMetrics(text: string): ScrapedEngineMetrics {
  const out: ScrapedEngineMetrics = {};
  const sums = new Map<keyof ScrapedEngineMetrics, { sum: number; n: number }>();
  for (const raw of text.split('\n')) {
    if (raw.length === 0 || raw.charCodeAt(0) === 35 /* # */) continue;
    const brace = raw.indexOf('{');
    const space = raw.indexOf(' ');
    const nameEnd = brace >= 0 && brace < space ? brace : space;
    if (nameEnd <= 0) continue;
    const name = raw.slice(0, nameEnd);
    if (name === 'vllm:cache_config_info') {
      const labels = raw.slice(brace + 1, raw.lastIndexOf('}'));
      const bs = /(?:^|,)block_size="(\d+)"/.exec(labels);
      const nb = /(?:^|,)num_gpu_blocks="(\d+)"/.exec(labels);
      if (bs) out.blockSize = Number(bs[1]);
      if (nb) out.numGpuBlocks = Number(nb[1]);
      continue;
    }
    const key = GAUGES[name];
    if (!key) continue;
    const valueStart = raw.indexOf(' ', brace >= 0 ? raw.lastIndexOf('}') : nameEnd);
    const value = Number.parseFloat(
      raw
        .slice(valueStart + 1)
        .trim()
        .split(' ')[0] ?? '',
    );
    if (!Number.isFinite(value)) continue;
    const acc = sums.get(key) ?? { sum: 0, n: 0 };
    acc.sum += value;
    acc.n += 1;
    sums.set(key, acc);
  }
  for (const [key, { sum, n }] of sums) {
    out[key] = key === 'kvCacheUsagePerc' ? sum / n : sum;
  }
  return out;
}
