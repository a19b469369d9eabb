/**
 * The router's configuration (DESIGN §3): one YAML file, validated by this
 * schema, which also holds every default and gives the TypeScript type.
 */
import { z } from 'zod';
import { parseHostPort } from '../../common/address.js';

const hostPort = z.string().superRefine((value, ctx) => {
  try {
    parseHostPort(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message.replace(/^address: /, '') });
  }
});

/** Filter plugins by type name. */
export const FILTER_TYPES = ['ready', 'not-draining', 'circuit-closed'] as const;
/** Scorer plugins by type name. */
export const SCORER_TYPES = [
  'round-robin',
  'least-request',
  'queue-depth',
  'kv-cache',
  'prefix-cache',
  'session-affinity',
] as const;
/** Picker plugins by type name. */
export const PICKER_TYPES = ['max-score', 'p2c', 'random', 'round-robin'] as const;

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'must be letters, digits and . _ : / -');

const versionSchema = z.strictObject({
  /** Relative weight of this version among the model's versions; 0 takes it out of new traffic. */
  weight: z.number().int('must be a whole number').min(0, 'must be >= 0').max(1_000_000),
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
  })
  .refine((m) => Object.values(m.versions).some((v) => v.weight > 0), {
    message: 'at least one version needs a weight > 0',
    path: ['versions'],
  });

const scorerSchema = z.strictObject({
  type: z.enum(SCORER_TYPES),
  weight: z.number().min(0, 'must be >= 0').default(1),
});

const profileSchema = z.strictObject({
  filters: z.array(z.enum(FILTER_TYPES)).default(['ready', 'not-draining', 'circuit-closed']),
  scorers: z.array(scorerSchema).default([
    { type: 'prefix-cache', weight: 3 },
    { type: 'queue-depth', weight: 1 },
    { type: 'kv-cache', weight: 1 },
  ]),
  picker: z.enum(PICKER_TYPES).default('max-score'),
});

/** The built-in `default` profile, used by models that name none. */
export const DEFAULT_PROFILE = profileSchema.parse({});

const discoverySchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('static'),
    endpoints: z.array(hostPort).default([]),
  }),
]);

/** The whole router config. */
export const routerConfigSchema = z
  .strictObject({
    listen: hostPort.default('127.0.0.1:50051'),
    admin: hostPort.default('127.0.0.1:9090'),
    discovery: discoverySchema.default({ kind: 'static', endpoints: [] }),
    models: z.record(name, modelSchema).refine((m) => Object.keys(m).length > 0, 'needs at least one model'),
    profiles: z.record(name, profileSchema).default({}),
    upstream: z
      .strictObject({
        /** Endpoints tried per request before the first token (1 = no retry). */
        max_attempts: z.number().int().min(1).max(10).default(3),
        /** Time allowed to get the first chunk from an endpoint when the client set no deadline. */
        default_timeout_ms: z.number().int().min(1).default(600_000),
      })
      .default({ max_attempts: 3, default_timeout_ms: 600_000 }),
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
