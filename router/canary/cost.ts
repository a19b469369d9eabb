/**
 * What one request costs, from its version's price (router/canary/schema.ts):
 * by tokens, the usage times the per-1K prices; by GPU time, the request's
 * duration on one of a pod's sequence slots (a pod-hour divided by
 * `slots_per_pod`), which is what the request costs when the pods are full
 * and a lower bound otherwise. The fleet's cost per hour, the upper bound,
 * is {@link fleetCostPerHour}.
 */
import type { PriceConfig } from './schema.js';

/** The cost of one request. */
export function requestCost(
  price: PriceConfig,
  usage: { promptTokens: number; completionTokens: number },
  durationSeconds: number,
): number {
  if ('input_per_1k' in price) {
    return (usage.promptTokens * price.input_per_1k + usage.completionTokens * price.output_per_1k) / 1000;
  }
  return (price.gpu_hour * price.gpus_per_pod * Math.max(0, durationSeconds)) / 3600 / price.slots_per_pod;
}

/** What the version's pods cost per hour (GPU-hour prices only). */
export function fleetCostPerHour(price: PriceConfig | undefined): number | null {
  if (!price || 'input_per_1k' in price) return null;
  return price.gpu_hour * price.gpus_per_pod * price.pods;
}
