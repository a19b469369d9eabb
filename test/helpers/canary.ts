/** Helpers of the canary tests: the routing file, a traffic driver, the canary events. */
import type { GenerateResult } from '../../client/index.js';
import type { CanaryEvent } from '../../router/canary/controller.js';
import { MODEL } from './mesh.js';
import type { RouterHarness } from './router-harness.js';

/** Prices of the test versions (per 1K tokens). */
export const PRICES = {
  v1: { input: 0.5, output: 1.5 },
  v2: { input: 0.25, output: 0.75 },
};

/** The routing file: v1 at 100, v2 at 0, a canary of v2 with short intervals. */
export const canaryRoutes = (canary: string, extra = '') => `models:
  ${MODEL}:
    versions:
      v1: { weight: 100, price: { input_per_1k: ${PRICES.v1.input}, output_per_1k: ${PRICES.v1.output} } }
      v2: { weight: 0, price: { input_per_1k: ${PRICES.v2.input}, output_per_1k: ${PRICES.v2.output} } }
    canary: { version: v2, baseline: v1, ${canary} }
# Breakers stay closed: a failing canary pod must show in the canary's error
# rate, not be ejected before the judge sees it.
breaker: { volume_threshold: 1000000, consecutive_failures: 0 }
# Admission waits instead of shedding: a slowed canary's engine keeps
# arrivals waiting for its long steps, its pool counts as saturated, and a
# shed request would be an error a client saw. Admission is not under test here.
admission: { max_queue_wait_ms: 60000 }
${extra}`;

/** Sends requests, `concurrency` at a time, until stopped. */
export function drive(h: RouterHarness, concurrency = 12) {
  let stopped = false;
  const results: GenerateResult[] = [];
  const errors: unknown[] = [];
  let i = 0;
  const done = Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!stopped) {
        const n = i++;
        try {
          results.push(
            await h.client.generate({
              model: MODEL,
              prompt: `canary request ${n}`,
              sampling: { maxTokens: 4, temperature: 1 },
            }),
          );
        } catch (err) {
          errors.push(err);
        }
      }
    }),
  );
  return {
    results,
    errors,
    async stop() {
      stopped = true;
      await done;
      return { results, errors };
    },
  };
}

/** Collects canary events in order. */
export function recordCanary(h: RouterHarness): CanaryEvent[] {
  const seen: CanaryEvent[] = [];
  h.router.events.on('canary', (e: CanaryEvent) => seen.push(e));
  return seen;
}

/**
 * Engine-probe interval of the canary tests' pods (the probe timeout follows
 * it): generous, so a busy machine's slow `/health` answer does not take a pod
 * out mid-test (at load 25, answers took over 3 s; the pod's refusals then
 * counted as canary faults). These tests are about the canary, not about probes.
 */
export const PROBE_MS = 10_000;
