/**
 * Reading and validating router config files. Errors name the file and the
 * path of every bad field, e.g. `models.llama.versions.v2.weight: must be >= 0`.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { createBuiltinRegistry, type PluginRegistry, profileProblems } from '../scheduling/registry.js';
import { type RouterConfig, routerConfigSchema } from './schema.js';

/** A config that failed to load; `problems` lists one line per bad field. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`invalid config ${source}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Parses and validates YAML text. Throws {@link ConfigError}. */
export function parseRouterConfig(
  text: string,
  source = '<config>',
  overrides: Record<string, unknown> = {},
): RouterConfig {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = text.split('\n');
    throw new ConfigError(
      source,
      doc.errors.map((e) => {
        // prettyErrors ends the first line with ":" before a code frame; name the line instead.
        const message = (e.message.split('\n')[0] ?? '').replace(/:\s*$/, '');
        const line = e.linePos?.[0]?.line;
        const at = line === undefined ? undefined : lines[line - 1]?.trim();
        return at ? `YAML: ${message}: ${JSON.stringify(at)}` : `YAML: ${message}`;
      }),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(source, ['the file must be a YAML mapping (key: value)']);
  }
  return validateRouterConfig({ ...(raw as Record<string, unknown>), ...overrides }, source);
}

let builtins: PluginRegistry | undefined;
const builtinRegistry = (): PluginRegistry => {
  builtins ??= createBuiltinRegistry();
  return builtins;
};

/**
 * Validates an already parsed object; profile plugin types are checked
 * against `registry` (default: the built-in plugins). Throws {@link ConfigError}.
 */
export function validateRouterConfig(
  raw: unknown,
  source = '<config>',
  registry: PluginRegistry = builtinRegistry(),
): RouterConfig {
  const result = routerConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, formatIssues(result.error.issues));
  const problems = Object.entries(result.data.profiles).flatMap(([name, profile]) =>
    profileProblems(registry, `profiles.${name}`, profile),
  );
  if (problems.length > 0) throw new ConfigError(source, problems);
  return result.data;
}

/** Reads, parses and validates a config file. Throws {@link ConfigError}. */
export function loadRouterConfigFile(path: string, overrides: Record<string, unknown> = {}): RouterConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read file: ${(err as Error).message}`]);
  }
  return parseRouterConfig(text, path, overrides);
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path =
      issue.path
        .map((seg, i) => (typeof seg === 'number' ? `[${seg}]` : i === 0 ? String(seg) : `.${String(seg)}`))
        .join('') || '(top level)';
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    } else if (issue.code === 'invalid_type' && /received undefined/.test(message)) {
      message = 'is required';
    }
    return `${path}: ${message}`;
  });
}
