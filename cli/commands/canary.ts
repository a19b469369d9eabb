/**
 * `llmmesh canary status|pause|resume|promote|rollback --model M`: shows and
 * steers a router's canary progression over its admin API (`/status.json`
 * and `POST /canary/<action>`), with the admin token when the router needs
 * one. With Redis, an action on any replica applies to all of them.
 */
import {
  ADMIN_CLIENT_OPTIONS,
  type CommandSpec,
  helpText,
  parseOptions,
  str,
  UsageError,
} from '../options.js';

export const canaryCommand: CommandSpec = {
  name: 'canary',
  summary: "Show or steer a model's canary progression: status, pause, resume, promote, rollback.",
  usage:
    'llmmesh canary status|pause|resume|promote|rollback [--model M] [--admin URL] [--admin-token TOKEN] [--json]',
  options: {
    model: {
      type: 'string',
      env: 'LLMMESH_MODEL',
      valueName: 'M',
      description: 'The model whose canary to act on (status: all models when absent)',
    },
    ...ADMIN_CLIENT_OPTIONS,
  },
};

const ACTIONS = ['status', 'pause', 'resume', 'promote', 'rollback'] as const;

/** A canary progression as this command reads it (every field optional: routers of other versions still print). */
export interface CanaryDocument {
  model: string;
  version?: string;
  baseline?: string;
  phase?: string;
  reason?: string;
  step?: number;
  steps?: number[];
  share?: number;
  weights?: Record<string, number>;
  fileWeights?: Record<string, number>;
  intervalMs?: number;
  nextJudgementInMs?: number | null;
  sharing?: string;
  judge?: boolean;
  current?: { canary?: { requests?: number }; baseline?: { requests?: number } };
  timeline?: Array<{
    at: number;
    decision: string;
    reason: string;
    detail?: string;
    share: number;
    count?: number;
  }>;
}

/** Formats progressions for people (exported for tests). */
export function formatCanary(models: CanaryDocument[], now = Date.now()): string {
  if (models.length === 0) return 'no model has a canary section\n';
  const out: string[] = [];
  for (const c of models) {
    const steps = (c.steps ?? []).map((s, i) => (i === c.step ? `[${s}]` : String(s))).join(' → ');
    out.push(
      `model ${c.model}: canary ${c.version ?? '?'} vs baseline ${c.baseline ?? '?'}`,
      `  phase     ${c.phase ?? '?'}   share ${c.share ?? '?'} %   steps ${steps}`,
      `  weights   ${Object.entries(c.weights ?? {})
        .map(([v, w]) => `${v} ${Number(w.toFixed(2))}`)
        .join(', ')} (file: ${Object.entries(c.fileWeights ?? {})
        .map(([v, w]) => `${v} ${w}`)
        .join(', ')})`,
      `  judging   ${c.sharing === 'local' ? 'this replica alone (no Redis)' : c.sharing === 'redis' ? `shared through Redis; this replica ${c.judge ? 'holds the lease' : 'follows'}` : 'paused: Redis unreachable'}${
        typeof c.nextJudgementInMs === 'number'
          ? `; next judgement in ${(c.nextJudgementInMs / 1000).toFixed(1)} s`
          : ''
      }; this step: canary ${c.current?.canary?.requests ?? 0}, baseline ${c.current?.baseline?.requests ?? 0} requests`,
      `  reason    ${c.reason ?? ''}`,
      '  timeline',
    );
    for (const e of c.timeline ?? []) {
      const ago = Math.max(0, Math.round((now - e.at) / 1000));
      out.push(
        `    ${new Date(e.at).toISOString()} (${ago} s ago)  ${e.decision.padEnd(8)} → ${String(e.share).padStart(3)} %  ${e.reason}${(e.count ?? 1) > 1 ? ` ×${e.count}` : ''}${e.detail ? `: ${e.detail}` : ''}`,
      );
    }
    out.push('');
  }
  return `${out.join('\n')}`;
}

/** Runs the command; returns the exit code. */
export async function runCanary(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions(canaryCommand, argv);
  if (values.help) {
    process.stdout.write(helpText(canaryCommand));
    return 0;
  }
  const action = positionals[0] ?? 'status';
  if (!(ACTIONS as readonly string[]).includes(action) || positionals.length > 1) {
    throw new UsageError(`canary: expected one of ${ACTIONS.join(', ')}, got "${positionals.join(' ')}"`);
  }
  const model = str(values, 'model', canaryCommand);
  if (action !== 'status' && !model) throw new UsageError(`canary ${action}: --model is required`);
  const base = (str(values, 'admin', canaryCommand, true) as string).replace(/\/$/, '');
  const token = str(values, 'admin-token', canaryCommand);
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const url = action === 'status' ? `${base}/status.json` : `${base}/canary/${action}`;
  let res: Response;
  try {
    res =
      action === 'status'
        ? await fetch(url, { headers, signal: AbortSignal.timeout(5000) })
        : await fetch(url, {
            method: 'POST',
            headers: { ...headers, 'content-type': 'application/json' },
            body: JSON.stringify({ model }),
            signal: AbortSignal.timeout(5000),
          });
  } catch (err) {
    const e = err as Error & { cause?: { message?: string } };
    process.stderr.write(
      `llmmesh canary: no router at ${url} (${e.cause?.message ?? e.message}); point --admin (env LLMMESH_ADMIN_URL) at a router's admin address\n`,
    );
    return 1;
  }
  if (res.status === 401 || res.status === 403) {
    process.stderr.write(
      `llmmesh canary: ${url} refused (HTTP ${res.status}): give the admin token with --admin-token (env LLMMESH_ADMIN_TOKEN)\n`,
    );
    return 1;
  }
  if (!res.ok) {
    process.stderr.write(`llmmesh canary ${action}: ${(await res.text()).trim()} (HTTP ${res.status})\n`);
    return 1;
  }
  const body = (await res.json()) as { canary?: { models?: CanaryDocument[] } } | CanaryDocument;
  let models: CanaryDocument[];
  if (action === 'status') {
    models = ((body as { canary?: { models?: CanaryDocument[] } }).canary?.models ?? []).filter(
      (c) => !model || c.model === model,
    );
    if (model && models.length === 0) {
      process.stderr.write(`llmmesh canary: model "${model}" has no canary section on this router\n`);
      return 1;
    }
  } else {
    models = [body as CanaryDocument];
  }
  process.stdout.write(values.json ? `${JSON.stringify(models, null, 2)}\n` : formatCanary(models));
  return 0;
}
