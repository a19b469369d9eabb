/**
 * The router's configuration (DESIGN §3): one YAML file, validated by this
 * schema, which also holds every default and gives the TypeScript type.
 */
import { z } from 'zod';
import { parseHostPort } from '../../common/address.js';
import { DEFAULT_DISCOVERY_PREFIX } from '../../common/discovery-keys.js';
import {
  analysisSchema,
  canarySchema,
  checkCanary,
  DEFAULT_ANALYSIS,
  priceSchema,
} from '../canary/schema.js';

const hostPort = z.string().superRefine((value, ctx) => {
  try {
    parseHostPort(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^address: /, '') });
  }
});

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'must be letters, digits and . _ : / -');
const ms = (min = 1) =>
  z.number().int('must be a whole number of milliseconds').min(min, `must be >= ${min}`);

const versionSchema = z.strictObject({
  /** Relative weight of this version among the model's versions; 0 takes it out of new traffic. */
  weight: z.number().int('must be a whole number').min(0, 'must be >= 0').max(1_000_000),
  /** What a request of this version costs (router/canary/schema.ts); no cost is counted without it. */
  price: priceSchema.optional(),
});

const modelSchema = z
  .strictObject({
    versions: z
      .record(name, versionSchema)
      .refine((v) => Object.keys(v).length > 0, 'needs at least one version'),
    /** How sessions map to versions: by `routing.session_key`, or not at all. */
    sticky: z.enum(['session_key', 'none']).default('session_key'),
    profile: name.default('default'),
    /** Send to another version of the model when the chosen one has no usable endpoint. */
    fallback: z.boolean().default(true),
    /** Deadline of requests that carry none; defaults to `upstream.default_timeout_ms`. */
    deadline_ms: ms().optional(),
    /** Largest `max_tokens` a request may ask for; larger values are rejected (not clamped). */
    max_tokens_cap: z.number().int().min(1).optional(),
    /** Canary analysis and automatic progression (router/canary/schema.ts). */
    canary: canarySchema.optional(),
  })
  .superRefine(checkCanary)
  .refine((m) => Object.values(m.versions).some((v) => v.weight > 0), {
    message: 'at least one version needs a weight > 0',
    path: ['versions'],
  });

/**
 * A plugin type name. Which names exist is the plugin registry's business
 * (router/scheduling/registry.ts): `validateRouterConfig` checks them there,
 * so registering a plugin is all it takes for configs to use it.
 */
const pluginType = z.string().regex(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/, 'must be a kebab-case plugin type');

const scorerSchema = z.strictObject({
  type: pluginType,
  weight: z.number().min(0, 'must be >= 0').default(1),
});

const profileSchema = z.strictObject({
  // No `not-saturated`: taking a pod whose engine queues out of the running
  // sends its prefixes' requests to pods that must prefill them again, which
  // then queue in turn (measured: bench/scenarios/routing.ts). Load scorers
  // rank a queueing pod last instead, and admission waits when all queue.
  // `below-limit` drops only pods at a concurrency limit they are known to
  // have (published, or shown by their engine) while another has a free
  // slot, a request sent there would wait in the engine for one; it keeps
  // those holding the prompt's prefix (measured: the same routing figures).
  // Admission lets a request in when one pod has a slot; this sends it there.
  filters: z.array(pluginType).default(['ready', 'not-draining', 'circuit-closed', 'below-limit']),
  // Measured on the virtual mesh (`npm run bench:routing`): a cached prefix
  // (weight 6, more than the load scorers' 5 together) outweighs any load
  // difference until the prefix balance rule stops counting it; load decides
  // among the pods that hold it and for prompts no pod holds. With weight 2 a
  // learned knee's swing was enough to move a busy tenant's prefix to another
  // pod, whose prefill then slowed every request there. A prefix no pod holds
  // goes where fewer prefixes live and no other new one is in prefill
  // (prefix-spread), weighed as much as load (more sent new conversations
  // away from pods with room in their batch).
  scorers: z.array(scorerSchema).default([
    { type: 'prefix-cache', weight: 6 },
    { type: 'prefix-spread', weight: 2 },
    { type: 'session-affinity', weight: 2 },
    { type: 'least-request', weight: 2 },
    { type: 'queue-depth', weight: 2 },
    { type: 'kv-cache', weight: 1 },
  ]),
  picker: pluginType.default('max-score'),
});

/** The built-in `default` profile, used by models that name none (a config may redefine it). */
export const DEFAULT_PROFILE = profileSchema.parse({});

const discoverySchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('static'),
    endpoints: z.array(hostPort).default([]),
  }),
  z.strictObject({
    kind: z.literal('dns'),
    /** A name resolving to every sidecar, e.g. a Kubernetes headless Service. */
    name: z.string().min(1, 'must not be empty'),
    /** The sidecars' gRPC port. */
    port: z.number().int().min(1, 'must be 1-65535').max(65535, 'must be 1-65535'),
    interval_ms: ms(100).default(5_000),
  }),
  z.strictObject({
    kind: z.literal('redis'),
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .default('redis://127.0.0.1:6379'),
    prefix: z.string().min(1).default(DEFAULT_DISCOVERY_PREFIX),
    interval_ms: ms(100).default(2_000),
  }),
]);

const retryBudgetSchema = z.strictObject({
  /** Retries allowed as a share of requests over the window. */
  ratio: z.number().min(0, 'must be >= 0').max(1, 'must be <= 1').default(0.2),
  /** Retries always allowed per window, however few requests there were. */
  min_retries: z.number().int().min(0).default(10),
  window_ms: ms(100).default(10_000),
});

const upstreamSchema = z.strictObject({
  /** Endpoints tried per request before the first token (1 = no retry). */
  max_attempts: z.number().int().min(1).max(10).default(3),
  /** Deadline of requests that carry none (and whose model sets no `deadline_ms`). */
  default_timeout_ms: ms().default(600_000),
  /**
   * An endpoint that sends no first chunk within this is a failed attempt: an
   * endpoint fault that counts against its breaker, retried on another one.
   */
  first_token_timeout_ms: ms().default(60_000),
  /**
   * Share of the time left before the request's deadline that one attempt may
   * wait for its first chunk (when that is sooner than `first_token_timeout_ms`):
   * a hung pod then costs half of a 5 s deadline, not all of it, and the rest
   * goes to another endpoint. 1 waits until the deadline.
   */
  first_token_deadline_share: z.number().gt(0, 'must be > 0').max(1, 'must be <= 1').default(0.5),
  /**
   * Longest silence between two chunks of a stream before the endpoint is
   * taken for hung: an endpoint fault, and the stream migrates.
   */
  idle_timeout_ms: ms(1).default(15_000),
  /** How many times one stream may move to another endpoint after its first chunk (0: never). */
  migration_limit: z.number().int().min(0).max(10).default(2),
  retry_budget: retryBudgetSchema.default(retryBudgetSchema.parse({})),
});

const breakerSchema = z.strictObject({
  /**
   * Share of endpoint faults among the attempts of the window, in percent,
   * above which an endpoint's breaker opens. Only endpoint faults and
   * successes count: cancellations, the client's own deadline, 429s and
   * client faults are not attempts here.
   */
  error_threshold_percentage: z.number().min(0).max(100).default(50),
  /** Attempts in the window before the error-rate rule may open the breaker. */
  volume_threshold: z.number().int().min(0).default(5),
  /**
   * Endpoint faults in a row (before or after the first chunk) that open the
   * breaker at once, whatever the window holds (Envoy's consecutive-5xx
   * ejection); 0 disables the rule.
   */
  consecutive_failures: z.number().int().min(0).default(5),
  /** Time an open breaker waits before letting one probe through (half-open). */
  reset_timeout_ms: ms().default(10_000),
  /**
   * Rolling window of the failure counts (and of the health that scheduling
   * reads). 5 s: a pod that turns bad stands out twice as fast as in 10 s of
   * history, and one that recovers stops being avoided as fast.
   */
  window_ms: ms(10).default(5_000),
  /** Most endpoints of a pool that open breakers may take out of scheduling, in percent. */
  max_ejection_percent: z.number().min(0).max(100).default(50),
});

const admissionSchema = z.strictObject({
  /** Requests this router serves at once; more wait in the queue. */
  max_concurrency: z.number().int().min(1).default(4096),
  /**
   * Requests this router lets wait at a pod: one whose streams from this
   * router are this many past its published `max_num_seqs` is saturated, and
   * so is one whose sidecar queues any (at least this many when above 0),
   * whose engine queue lasts a second, or whose KV cache is full. An engine
   * that does not publish `max_num_seqs` and showed its limit (the same
   * count running at two scrapes while requests waited) counts as if it had
   * published it; past a knee learned otherwise, at least one waits, so a
   * pod that can run more shows it.
   * 0: the router holds every request a pod cannot start at once, and sends
   * it to the first pod where a slot frees.
   */
  saturation_queue_depth: z.number().int().min(0).default(0),
  /** Requests waiting for admission at most; beyond, new ones are shed. */
  max_queue_length: z.number().int().min(0).default(1024),
  /** A queued request waits at most this long, then is shed. */
  max_queue_wait_ms: ms(0).default(2_000),
  /**
   * A pool's queue that has not emptied for `max_queue_wait_ms` stands
   * (sustained overload, not a burst): its requests then wait at most this
   * long (or two finishes' worth, if longer), and the rest are shed, until
   * the queue has stayed empty for a mean service time.
   */
  standing_queue_wait_ms: ms(0).default(100),
  /** `grpc-retry-pushback-ms` sent with shed requests. */
  pushback_ms: ms(0).default(1_000),
  /**
   * Lower bound of the pushback sent when a request is shed early (its
   * expected wait behind the pool's drain exceeds its budget); the upper
   * bound is `max_queue_wait_ms`.
   */
  min_pushback_ms: ms(0).default(50),
});

/**
 * When a hot prefix spreads to another pod (the `prefix-cache` scorer): its
 * pod's cache stops counting once that pod is busier than the least-loaded
 * candidate by more than `abs` (in knees: the concurrency at which a pod
 * starts to queue), more than `rel` times, more than `requests` requests,
 * and by more requests than prefilling the prefix elsewhere costs.
 */
const prefixBalanceSchema = z.strictObject({
  abs: z.number().min(0).default(0.3),
  rel: z.number().min(1, 'must be >= 1').default(2),
  requests: z.number().min(0).default(2),
  /**
   * Prompt tokens whose prefill costs a pod about as much as one more
   * request: a prefix also needs its pod busier by the prefill a move costs
   * (cached tokens / this × (1 + half the requests at the least-loaded pod)).
   * 0: moving costs nothing.
   */
  prefill_tokens_per_request: z.number().min(0).default(1_000),
});

const tenantSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, 'must be letters, digits and . _ -'),
  /** Lowercase or uppercase hex SHA-256 of the API key (never the key itself). */
  key_sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be the 64-hex-digit SHA-256 of the key'),
  /** Models the tenant may use; `*` allows every model. */
  models: z.array(z.string().min(1)).min(1, 'list at least one model, or "*"'),
  limits: z
    .strictObject({
      requests_per_second: z.number().positive('must be > 0').optional(),
      tokens_per_minute: z.number().int().positive('must be > 0').optional(),
    })
    .default({}),
});

const authSchema = z
  .strictObject({
    tenants: z.array(tenantSchema).min(1, 'list at least one tenant (or remove auth)'),
    /** Redis shared by router replicas for rate-limit counters; limits are per replica without it. */
    redis: z.string().url('must be a redis:// URL').optional(),
    /** Router replicas sharing the limits: each enforces limit / replicas while Redis is unreachable. */
    replicas: z.number().int().min(1).default(1),
    /**
     * How long a shared rate-limit decision may wait for Redis, counting only
     * time the router's event loop was responsive (its own lag does not count),
     * before this replica decides alone from its share of the last shared state.
     */
    redis_timeout_ms: z.number().int().min(1, 'must be >= 1').max(10_000, 'must be <= 10000').default(100),
  })
  .superRefine((a, ctx) => {
    const names = new Set<string>();
    const hashes = new Set<string>();
    a.tenants.forEach((t, i) => {
      if (names.has(t.name))
        ctx.addIssue({
          code: 'custom',
          path: ['tenants', i, 'name'],
          message: `duplicate tenant "${t.name}"`,
        });
      if (hashes.has(t.key_sha256.toLowerCase())) {
        ctx.addIssue({
          code: 'custom',
          path: ['tenants', i, 'key_sha256'],
          message: 'two tenants share one key',
        });
      }
      names.add(t.name);
      hashes.add(t.key_sha256.toLowerCase());
    });
  });

const serverTlsSchema = z.strictObject({
  cert_file: z.string().min(1),
  key_file: z.string().min(1),
  /** Require client certificates signed by this CA (mutual TLS). */
  client_ca_file: z.string().min(1).optional(),
});

const upstreamTlsSchema = z
  .strictObject({
    /** CA that sidecar certificates chain to (system roots when absent). */
    ca_file: z.string().min(1).optional(),
    /** This router's client certificate and key, for sidecars that require mTLS. */
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
    /** Name the sidecar certificates carry when it differs from the dialled host. */
    server_name: z.string().min(1).optional(),
  })
  .refine((t) => Boolean(t.cert_file) === Boolean(t.key_file), {
    message: 'cert_file and key_file go together',
    path: ['cert_file'],
  });

const limitsSchema = z.strictObject({
  /** Largest request message accepted (gRPC max receive size), bytes. */
  max_request_bytes: z
    .number()
    .int()
    .min(1024)
    .default(4 * 1024 * 1024),
  max_prompt_chars: z.number().int().min(1).default(2_000_000),
  max_messages: z.number().int().min(1).default(2048),
  max_stop_strings: z.number().int().min(0).default(16),
});

/** The whole router config. */
export const routerConfigSchema = z
  .strictObject({
    listen: hostPort.default('127.0.0.1:50051'),
    admin: hostPort.default('127.0.0.1:9090'),
    discovery: discoverySchema.default({ kind: 'static', endpoints: [] }),
    models: z.record(name, modelSchema).refine((m) => Object.keys(m).length > 0, 'needs at least one model'),
    profiles: z.record(name, profileSchema).default({}),
    upstream: upstreamSchema.default(upstreamSchema.parse({})),
    breaker: breakerSchema.default(breakerSchema.parse({})),
    admission: admissionSchema.default(admissionSchema.parse({})),
    prefix_balance: prefixBalanceSchema.default(prefixBalanceSchema.parse({})),
    /** Tenants, API keys and rate limits; without it the API is open (the local default). */
    auth: authSchema.optional(),
    /** TLS for the public API; plaintext without it. */
    tls: serverTlsSchema.optional(),
    /** TLS (and mTLS) from the router to sidecars; plaintext without it. */
    upstream_tls: upstreamTlsSchema.optional(),
    limits: limitsSchema.default(limitsSchema.parse({})),
    /** Per-version comparison windows and the Redis replicas share canary progressions through. */
    analysis: analysisSchema.default(DEFAULT_ANALYSIS),
    /** Admin HTTP: require `Authorization: Bearer <token>` whose SHA-256 is this (for a non-loopback admin address). */
    admin_token_sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be a 64-hex-digit SHA-256')
      .optional(),
  })
  .superRefine((cfg, ctx) => {
    for (const [model, m] of Object.entries(cfg.models)) {
      if (m.profile !== 'default' && !(m.profile in cfg.profiles)) {
        ctx.addIssue({
          code: 'custom',
          path: ['models', model, 'profile'],
          message: `unknown profile "${m.profile}" (defined: ${['default', ...Object.keys(cfg.profiles)].join(', ')})`,
        });
      }
    }
  });

/** A validated config with all defaults applied. */
export type RouterConfig = z.infer<typeof routerConfigSchema>;
/** One model's config. */
export type ModelConfig = RouterConfig['models'][string];
/** One scheduling profile. */
export type ProfileConfig = z.infer<typeof profileSchema>;
/** Discovery settings (a discriminated union on `kind`). */
export type DiscoveryConfig = RouterConfig['discovery'];
/** Circuit breaker settings. */
export type BreakerConfig = RouterConfig['breaker'];
/** Admission settings. */
export type AdmissionConfig = RouterConfig['admission'];
/** Tenants and rate limits. */
export type AuthConfig = NonNullable<RouterConfig['auth']>;
/** Input limits. */
export type LimitsConfig = RouterConfig['limits'];
/** Upstream attempt settings. */
export type UpstreamConfig = RouterConfig['upstream'];

/** The profile a model uses: its named profile, else the built-in default. */
export function profileFor(config: RouterConfig, model: string): { name: string; profile: ProfileConfig } {
  const n = config.models[model]?.profile ?? 'default';
  return { name: n, profile: config.profiles[n] ?? DEFAULT_PROFILE };
}

/** The deadline, in ms from now, of a request for `model` that carries none. */
export function defaultDeadlineMs(config: RouterConfig, model: string): number {
  return config.models[model]?.deadline_ms ?? config.upstream.default_timeout_ms;
}
