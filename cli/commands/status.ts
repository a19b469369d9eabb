/**
 * `llmmesh status`: prints a router's models (configured and observed split),
 * its config state (reloads, last rejection) and its endpoints with their
 * load and breaker state, from the admin port's `/status.json`.
 */
import { ADMIN_CLIENT_OPTIONS, type CommandSpec, helpText, parseOptions, str } from '../options.js';

export const statusCommand: CommandSpec = {
  name: 'status',
  summary:
    "Show a router's models, configured and observed split, config state, and endpoints with load and breakers.",
  usage: 'llmmesh status [--admin URL] [--admin-token TOKEN] [--json]',
  options: {
    ...ADMIN_CLIENT_OPTIONS,
  },
};

/**
 * `/status.json` as this command reads it: every field optional, so a router
 * of another version (with fewer or more fields) still prints.
 */
export interface StatusDocument {
  listen?: string;
  discovery?: string;
  models?: Array<{
    name: string;
    versions?: Array<{
      name: string;
      weight?: number;
      configuredShare?: number;
      observedShare?: number;
      readyEndpoints?: number;
      endpoints?: number;
    }>;
  }>;
  endpoints?: Array<{
    address: string;
    model?: string;
    version?: string;
    ready?: boolean;
    draining?: boolean;
    reason?: string;
    breaker?: string;
    inFlight?: number;
    queued?: number;
    engineRunning?: number;
    engineWaiting?: number;
    kvCacheUsage?: number;
  }>;
  /** Canary progressions (see `llmmesh canary status` for their timelines). */
  canary?: {
    models?: Array<{ model: string; version?: string; phase?: string; share?: number; reason?: string }>;
  };
  config?: {
    reloads?: number;
    rejected?: number;
    lastError?: string;
    /** ms since the epoch; 0 if never reloaded. */
    lastReloadAt?: number;
    lastRejection?: { at: number; error: string } | null;
  };
}

const pct = (x: number | undefined) => (x === undefined ? '  -' : `${(100 * x).toFixed(0).padStart(3)}%`);

function when(ms: number, now: number): string {
  const ago = Math.max(0, Math.round((now - ms) / 1000));
  const span =
    ago < 120 ? `${ago} s` : ago < 7200 ? `${Math.round(ago / 60)} min` : `${Math.round(ago / 3600)} h`;
  return `${new Date(ms).toISOString()} (${span} ago)`;
}

/** Formats a status document for people (exported for tests). */
export function formatStatus(status: StatusDocument, adminUrl: string, now = Date.now()): string {
  const out: string[] = [`router ${status.listen ?? '?'}   admin ${adminUrl}`];
  const c = status.config;
  if (c) {
    const lastReload =
      c.lastReloadAt === undefined ? undefined : c.lastReloadAt > 0 ? when(c.lastReloadAt, now) : 'never';
    out.push(
      `config   ${c.reloads ?? 0} reloads, ${c.rejected ?? 0} rejected${lastReload ? `; last reload ${lastReload}` : ''}`,
    );
    if (c.lastRejection)
      out.push(`         last rejection ${when(c.lastRejection.at, now)}: ${c.lastRejection.error}`);
    else if (c.lastRejection === undefined && c.lastError) out.push(`         last error: ${c.lastError}`);
  }
  for (const m of status.models ?? []) {
    const versions = m.versions ?? [];
    const total = versions.reduce((s, v) => s + (v.weight ?? 0), 0) || 1;
    out.push('', `model ${m.name}                configured  observed (last minute)`);
    for (const v of versions) {
      const configured = v.configuredShare ?? (v.weight ?? 0) / total;
      out.push(
        `  ${v.name.padEnd(10)} weight ${String(v.weight === undefined ? '?' : Number(v.weight.toFixed(2))).padStart(4)}  ${pct(configured)}        ${pct(v.observedShare)}     endpoints ${v.readyEndpoints ?? '?'}/${v.endpoints ?? '?'} ready`,
      );
    }
    const c = status.canary?.models?.find((x) => x.model === m.name);
    if (c)
      out.push(`  canary ${c.version ?? '?'}: ${c.phase ?? '?'} at ${c.share ?? '?'} % (${c.reason ?? ''})`);
  }
  const endpoints = status.endpoints ?? [];
  out.push('', 'endpoints');
  for (const e of endpoints) {
    const state = e.ready ? 'ready' : e.draining ? 'draining' : `NOT READY (${e.reason ?? '?'})`;
    out.push(
      `  ${e.address.padEnd(22)} ${`${e.model ?? '?'}/${e.version ?? '?'}`.padEnd(26)} ${state.padEnd(10)} breaker ${(e.breaker ?? 'closed').padEnd(9)} in-flight ${e.inFlight ?? 0} queued ${e.queued ?? 0} engine running ${e.engineRunning ?? 0} waiting ${e.engineWaiting ?? 0} kv ${((e.kvCacheUsage ?? 0) * 100).toFixed(0)}%`,
    );
  }
  const notClosed = endpoints.filter((e) => e.breaker && e.breaker !== 'closed');
  out.push(
    '',
    notClosed.length === 0
      ? `breakers all ${endpoints.length} closed`
      : `breakers ${notClosed.map((e) => `${e.address} ${e.breaker}`).join(', ')}; ${endpoints.length - notClosed.length} closed`,
  );
  return `${out.join('\n')}\n`;
}

/** Why a fetch failed, in words (undici hides the socket error in `cause`). */
function reason(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return 'no answer within 5 s';
  const code = e.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused: nothing listens there';
  if (code === 'ENOTFOUND') return 'unknown host';
  return e.cause?.message ?? e.message;
}

/** Runs the command; returns the exit code. */
export async function runStatus(argv: string[]): Promise<number> {
  const { values } = parseOptions(statusCommand, argv);
  if (values.help) {
    process.stdout.write(helpText(statusCommand));
    return 0;
  }
  const base = (str(values, 'admin', statusCommand, true) as string).replace(/\/$/, '');
  const url = `${base}/status.json`;
  let status: StatusDocument;
  try {
    const token = str(values, 'admin-token', statusCommand);
    const res = await fetch(url, {
      signal: AbortSignal.timeout(5000),
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    if (res.status === 401 || res.status === 403) {
      process.stderr.write(
        `llmmesh status: ${url} refused (HTTP ${res.status}): give the admin token with --admin-token (env LLMMESH_ADMIN_TOKEN)\n`,
      );
      return 1;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    status = (await res.json()) as StatusDocument;
  } catch (err) {
    process.stderr.write(
      `llmmesh status: no router status at ${url} (${reason(err)}).\n` +
        "Start a local mesh with `npm start`, or point --admin (env LLMMESH_ADMIN_URL) at a router's admin address.\n",
    );
    return 1;
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(formatStatus(status, base));
  return 0;
}
