/**
 * The config keys of canary analysis and cost (validated as part of the
 * router's config in router/config/schema.ts):
 *
 * - `models.<m>.canary`: the progression policy (steps, interval, bounds);
 * - `models.<m>.versions.<v>.price`: what a request of that version costs;
 * - `analysis`: the comparison windows, the chart history, and the Redis that
 *   router replicas share the progression through.
 */
import { z } from 'zod';

/** Default comparison windows: one and five minutes. */
export const DEFAULT_WINDOWS_MS = [60_000, 300_000];

/** The canary policy of one model. */
export const canarySchema = z.strictObject({
  /** The version being rolled out. */
  version: z.string().min(1, 'must name a version'),
  /** The version it is compared with (and takes traffic from). */
  baseline: z.string().min(1, 'must name a version'),
  /** Canary share, in percent, at each step; increasing, each in (0, 100]. */
  steps: z
    .array(z.number().gt(0, 'each step must be > 0').max(100, 'each step must be <= 100'))
    .min(1, 'list at least one step')
    .default([5, 25, 50, 100]),
  /** Time at each step before it is judged. */
  interval_ms: z
    .number()
    .int('must be a whole number of milliseconds')
    .min(10, 'must be >= 10')
    .default(300_000),
  /** Requests each of canary and baseline must have served in the interval before judging. */
  min_requests: z.number().int().min(1, 'must be >= 1').default(200),
  /** Largest allowed canary error rate minus baseline error rate (absolute, 0..1). */
  max_error_rate_increase: z.number().min(0, 'must be >= 0').max(1, 'must be <= 1').default(0.01),
  /** Largest allowed canary / baseline TTFT p90. */
  max_ttft_p90_ratio: z.number().gt(0, 'must be > 0').default(1.25),
  /** Largest allowed canary / baseline inter-token latency p90. */
  max_itl_p90_ratio: z.number().gt(0, 'must be > 0').default(1.25),
  /** What a failed judgement does: canary share to 0, or stay at the step until resumed. */
  on_failure: z.enum(['rollback', 'pause']).default('rollback'),
});

/** A model's canary policy with defaults applied. */
export type CanaryConfig = z.infer<typeof canarySchema>;

/**
 * What a request of one version costs: by tokens (per 1K input and output
 * tokens), or by GPU time (per GPU-hour, with the pods the version runs on).
 */
export const priceSchema = z.union([
  z.strictObject({
    /** Currency units per 1,000 prompt tokens. */
    input_per_1k: z.number().min(0, 'must be >= 0'),
    /** Currency units per 1,000 completion tokens. */
    output_per_1k: z.number().min(0, 'must be >= 0'),
  }),
  z.strictObject({
    /** Currency units per GPU-hour. */
    gpu_hour: z.number().min(0, 'must be >= 0'),
    gpus_per_pod: z.number().int().min(1, 'must be >= 1').default(1),
    /** Pods serving the version (the fleet cost per hour is gpu_hour × gpus_per_pod × pods). */
    pods: z.number().int().min(1, 'must be >= 1'),
    /**
     * Sequences one pod serves at once (vLLM `max_num_seqs`): a request is
     * charged its duration on one of them, a pod's hour divided by its slots.
     */
    slots_per_pod: z.number().int().min(1, 'must be >= 1').default(256),
  }),
]);

/** A version's price. */
export type PriceConfig = z.infer<typeof priceSchema>;

/** Live comparison and shared progression settings. */
export const analysisSchema = z.strictObject({
  /** Sliding windows of the per-version comparison. */
  windows_ms: z
    .array(z.number().int().min(1_000, 'must be >= 1000'))
    .min(1, 'list at least one window')
    .default(DEFAULT_WINDOWS_MS),
  /** Granularity of the windows and the charts. */
  bucket_ms: z.number().int().min(10, 'must be >= 10').default(10_000),
  /** How far back the status page's charts go. */
  history_ms: z.number().int().min(60_000, 'must be >= 60000').default(1_800_000),
  /** Redis shared by router replicas for the canary lease, step and window data; each replica judges alone without it. */
  redis: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .optional(),
  /** Key prefix in that Redis. */
  redis_prefix: z.string().min(1).default('llmmesh:canary'),
});

/** Analysis settings with defaults applied. */
export type AnalysisConfig = z.infer<typeof analysisSchema>;

/** The default analysis settings. */
export const DEFAULT_ANALYSIS: AnalysisConfig = analysisSchema.parse({});

/**
 * Cross-field checks of a model's canary section: both versions exist and
 * differ, steps increase. Issues are reported under `canary.<field>`.
 */
export function checkCanary(
  model: { versions: Record<string, unknown>; canary?: CanaryConfig },
  ctx: z.RefinementCtx,
): void {
  const c = model.canary;
  if (!c) return;
  const known = Object.keys(model.versions);
  const list = known.join(', ');
  if (!known.includes(c.version)) {
    ctx.addIssue({
      code: 'custom',
      path: ['canary', 'version'],
      message: `unknown version "${c.version}" (versions: ${list})`,
    });
  }
  if (!known.includes(c.baseline)) {
    ctx.addIssue({
      code: 'custom',
      path: ['canary', 'baseline'],
      message: `unknown version "${c.baseline}" (versions: ${list})`,
    });
  }
  if (c.baseline === c.version) {
    ctx.addIssue({
      code: 'custom',
      path: ['canary', 'baseline'],
      message: `must differ from canary.version ("${c.version}")`,
    });
  }
  c.steps.forEach((s, i) => {
    const prev = c.steps[i - 1];
    if (prev !== undefined && s <= prev) {
      ctx.addIssue({
        code: 'custom',
        path: ['canary', 'steps', i],
        message: `steps must increase (${s} after ${prev})`,
      });
    }
  });
}
