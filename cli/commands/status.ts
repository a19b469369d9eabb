/** `llmmesh status`: prints a router's models, versions and endpoints from its admin port. */
import type { RouterStatus } from '../../router/server.js';
import { type CommandSpec, helpText, parseOptions, str } from '../options.js';

export const statusCommand: CommandSpec = {
  name: 'status',
  summary: "Show a router's models, canary weights and endpoints with their load.",
  usage: 'llmmesh status [--admin URL] [--json]',
  options: {
    admin: {
      type: 'string',
      env: 'LLMMESH_ADMIN_URL',
      default: 'http://127.0.0.1:9090',
      valueName: 'URL',
      description: "The router's admin base URL",
    },
    json: { type: 'boolean', description: 'Print the raw JSON' },
  },
};

/** Runs the command; returns the exit code. */
export async function runStatus(argv: string[]): Promise<number> {
  const { values } = parseOptions(statusCommand, argv);
  if (values.help) {
    process.stdout.write(helpText(statusCommand));
    return 0;
  }
  const base = (str(values, 'admin', statusCommand, true) as string).replace(/\/$/, '');
  let status: RouterStatus;
  try {
    const res = await fetch(`${base}/status`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    status = (await res.json()) as RouterStatus;
  } catch (err) {
    process.stderr.write(`llmmesh status: cannot read ${base}/status: ${(err as Error).message}\n`);
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return 0;
  }
  const out: string[] = [`router ${status.listen}`, ''];
  for (const m of status.models) {
    const total = m.versions.reduce((s, v) => s + v.weight, 0) || 1;
    out.push(`model ${m.name}`);
    for (const v of m.versions) {
      out.push(
        `  ${v.name.padEnd(10)} weight ${String(v.weight).padStart(4)} (${((100 * v.weight) / total).toFixed(0).padStart(3)}%)  endpoints ${v.readyEndpoints}/${v.endpoints} ready`,
      );
    }
  }
  out.push('', 'endpoints');
  for (const e of status.endpoints) {
    const state = e.ready ? 'ready' : e.draining ? 'draining' : `NOT READY (${e.reason})`;
    out.push(
      `  ${e.address.padEnd(22)} ${`${e.model}/${e.version}`.padEnd(26)} ${state.padEnd(10)} breaker ${(e.breaker ?? 'closed').padEnd(9)} in-flight ${e.inFlight} queued ${e.queued} engine running ${e.engineRunning} waiting ${e.engineWaiting} kv ${(e.kvCacheUsage * 100).toFixed(0)}%`,
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
