/**
 * Command-line options with an environment variable for each (`LLMMESH_...`),
 * for containers: flag > environment > default. `--help` documents both.
 */
import { parseArgs } from 'node:util';

/** One option of a command. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  /** Environment variable that sets it when the flag is absent. */
  env?: string;
  default?: string | boolean;
  /** Shown in --help, e.g. `ADDR`. */
  valueName?: string;
  description: string;
  short?: string;
}

/** A subcommand's usage. */
export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
}

/** A usage error: printed with a hint to --help, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parsed values: strings and booleans by option name. */
export type ParsedOptions = Record<string, string | boolean | undefined> & { help?: boolean };

/** Parses `argv` for `spec`, applying environment variables and defaults. */
export function parseOptions(
  spec: CommandSpec,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { values: ParsedOptions; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, o] of Object.entries(spec.options)) {
    options[name] = o.short ? { type: o.type, short: o.short } : { type: o.type };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${spec.name}: ${(err as Error).message.replace(/\. To specify .*$/, '')}`);
  }
  const values: ParsedOptions = { ...(parsed.values as ParsedOptions) };
  for (const [name, o] of Object.entries(spec.options)) {
    if (values[name] !== undefined) continue;
    const fromEnv = o.env ? env[o.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== '') {
      values[name] = o.type === 'boolean' ? /^(1|true|yes|on)$/i.test(fromEnv) : fromEnv;
    } else if (o.default !== undefined) {
      values[name] = o.default;
    }
  }
  return { values, positionals: parsed.positionals };
}

/** Formats `--help` for a command. */
export function helpText(spec: CommandSpec): string {
  const lines = [`${spec.summary}`, '', `Usage: ${spec.usage}`, '', 'Options:'];
  for (const [name, o] of Object.entries(spec.options)) {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.valueName ?? 'VALUE'}` : ''}`;
    const extras = [
      o.env ? `env ${o.env}` : '',
      o.default !== undefined ? `default ${String(o.default)}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    lines.push(`  ${flag.padEnd(34)} ${o.description}${extras ? ` (${extras})` : ''}`);
  }
  lines.push(`  ${'-h, --help'.padEnd(34)} Show this help`);
  return `${lines.join('\n')}\n`;
}

/** Reads a string option; throws a UsageError naming the flag when it is required and missing. */
export function str(
  values: ParsedOptions,
  name: string,
  spec: CommandSpec,
  required = false,
): string | undefined {
  const v = values[name];
  if (typeof v === 'string' && v !== '') return v;
  if (required) {
    const env = spec.options[name]?.env;
    throw new UsageError(`${spec.name}: --${name} is required${env ? ` (or set ${env})` : ''}`);
  }
  return undefined;
}

/** Reads a numeric option; throws a UsageError naming the flag when it is not a number in range. */
export function num(
  values: ParsedOptions,
  name: string,
  spec: CommandSpec,
  range: { min?: number; max?: number; integer?: boolean } = {},
): number | undefined {
  const raw = str(values, name, spec);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  const bad =
    !Number.isFinite(n) ||
    (range.integer && !Number.isInteger(n)) ||
    (range.min !== undefined && n < range.min) ||
    (range.max !== undefined && n > range.max);
  if (bad) {
    const bounds = [
      range.min !== undefined ? `>= ${range.min}` : '',
      range.max !== undefined ? `<= ${range.max}` : '',
    ]
      .filter(Boolean)
      .join(' and ');
    throw new UsageError(
      `${spec.name}: --${name} must be ${range.integer ? 'an integer' : 'a number'}${bounds ? ` ${bounds}` : ''}, got "${raw}"`,
    );
  }
  return n;
}

/** The options of a command that talks to a router's admin API (`status`, `canary`). */
export const ADMIN_CLIENT_OPTIONS: Record<string, OptionSpec> = {
  admin: {
    type: 'string',
    env: 'LLMMESH_ADMIN_URL',
    default: 'http://127.0.0.1:9090',
    valueName: 'URL',
    description: "The router's admin base URL",
  },
  'admin-token': {
    type: 'string',
    env: 'LLMMESH_ADMIN_TOKEN',
    valueName: 'TOKEN',
    description: "The router's admin token, when its config sets admin_token_sha256",
  },
  json: { type: 'boolean', description: 'Print the raw JSON' },
};
