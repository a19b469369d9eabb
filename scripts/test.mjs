#!/usr/bin/env node
// Runs every unit spec (`*.spec.ts` beside its source) and integration test
// (`test/**/*.test.ts`) with node:test, TypeScript loaded through tsx.
// Extra arguments are passed to node's test runner (e.g. a file to run alone).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['common', 'router', 'sidecar', 'sim', 'cli', 'client', 'bench', 'test'];
const files = [];
function walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'generated') walk(p);
    } else if (/\.(spec|test)\.ts$/.test(e.name)) {
      files.push(p);
    }
  }
}
const explicit = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
if (explicit.length > 0) files.push(...explicit);
else for (const r of roots) walk(r);
files.sort();

const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', ...flags, ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
