/**
 * The router a benchmark measures: one model with one version over static
 * endpoints, on free ports, with admission limits out of the way (what is
 * measured is the router's own cost, not its shedding).
 */
export function benchRouterConfig(
  model: string,
  endpoints: string[],
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    listen: '127.0.0.1:0',
    admin: '127.0.0.1:0',
    discovery: { kind: 'static', endpoints },
    models: { [model]: { versions: { v1: { weight: 1 } } } },
    admission: { max_concurrency: 100_000, max_queue_length: 100_000 },
    ...extra,
  };
}
