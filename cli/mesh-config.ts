/** The local mesh file of `llmmesh start` (`deploy/local/mesh.yaml`), validated like the router config. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { DEFAULT_PRESET_NAME, SIM_PRESETS } from '../sim/presets.js';

const port = z.number().int('must be a whole number').min(1, 'must be 1-65535').max(65535, 'must be 1-65535');

// Options of each simulated engine, named as `llmmesh sim` flags (snake_case); see sim/README.md.
const simFields = {
  preset: z.enum(Object.keys(SIM_PRESETS) as [string, ...string[]]),
  time_scale: z.number().min(0),
  max_model_len: z.number().int().min(16),
  max_num_seqs: z.number().int().min(1),
  max_num_batched_tokens: z.number().int().min(1),
  block_size: z.number().int().min(1),
  num_gpu_blocks_override: z.number().int().min(1),
  load_delay_ms: z.number().min(0),
  // Fixed latencies replace the preset's fitted step model.
  inter_token_latency_ms: z.number().min(0),
  time_to_first_token_ms: z.number().min(0),
  faults: z.strictObject({
    error_rate: z.number().min(0).max(1).optional(),
    error_status: z.union([z.literal(429), z.literal(500), z.literal(503)]).optional(),
    stall_after_tokens: z.number().int().min(0).optional(),
    crash_after_tokens: z.number().int().min(0).optional(),
    slow_factor: z.number().positive().optional(),
    health_status: z.union([z.literal(200), z.literal(503)]).optional(),
  }),
};
// Per pod: only what the pod sets, so the mesh-wide values fill the rest.
const simOverridesSchema = z.strictObject(simFields).partial();
const simSchema = simOverridesSchema.extend({
  preset: simFields.preset.default(DEFAULT_PRESET_NAME),
  time_scale: simFields.time_scale.default(1),
  max_model_len: simFields.max_model_len.default(8192),
  max_num_seqs: simFields.max_num_seqs.default(256),
  load_delay_ms: simFields.load_delay_ms.default(0),
});

const meshSchema = z
  .strictObject({
    host: z.string().default('127.0.0.1'),
    router: z.strictObject({
      listen: z.string().default('127.0.0.1:50051'),
      admin: z.string().default('127.0.0.1:9090'),
      routes: z.string(),
    }),
    sim: simSchema.default(simSchema.parse({})),
    pods: z
      .array(
        z.strictObject({
          model: z.string().min(1),
          version: z.string().min(1),
          engine_port: port,
          sidecar_port: port,
          sim: simOverridesSchema.optional(),
        }),
      )
      .min(1, 'needs at least one pod'),
  })
  .superRefine((mesh, ctx) => {
    const seen = new Map<number, string>();
    mesh.pods.forEach((p, i) => {
      for (const key of ['engine_port', 'sidecar_port'] as const) {
        const other = seen.get(p[key]);
        if (other)
          ctx.addIssue({
            code: 'custom',
            path: ['pods', i, key],
            message: `port ${p[key]} is also ${other}`,
          });
        seen.set(p[key], `pods[${i}].${key}`);
      }
    });
  });

/** A validated mesh with the routes path made absolute. */
export type MeshConfig = z.infer<typeof meshSchema>;

/** Reads and validates a mesh file; errors name the field. */
export function loadMeshConfig(path: string): MeshConfig {
  const doc = parseDocument(readFileSync(path, 'utf8'));
  if (doc.errors.length > 0)
    throw new Error(`invalid mesh file ${path}: ${doc.errors[0]?.message.split('\n')[0]}`);
  const result = meshSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    const lines = result.error.issues.map(
      (i) =>
        `${
          i.path
            .map((s) => (typeof s === 'number' ? `[${s}]` : `.${String(s)}`))
            .join('')
            .replace(/^\./, '') || '(top level)'
        }: ${i.message}`,
    );
    throw new Error(`invalid mesh file ${path}:\n  ${lines.join('\n  ')}`);
  }
  const mesh = result.data;
  mesh.router.routes = resolve(dirname(path), mesh.router.routes);
  return mesh;
}
