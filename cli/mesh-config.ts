/** The local mesh file of `llmmesh start` (`deploy/local/mesh.yaml`), validated like the router config. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';

const port = z.number().int('must be a whole number').min(1, 'must be 1-65535').max(65535, 'must be 1-65535');

const simSchema = z.strictObject({
  inter_token_latency_ms: z.number().min(0).default(10),
  time_to_first_token_ms: z.number().min(0).default(20),
  max_model_len: z.number().int().min(16).default(8192),
  max_num_seqs: z.number().int().min(1).default(256),
  load_delay_ms: z.number().min(0).default(0),
  time_scale: z.number().min(0).default(1),
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
          sim: simSchema.partial().optional(),
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
