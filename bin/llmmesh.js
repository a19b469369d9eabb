#!/usr/bin/env node
// The `llmmesh` command. In a source checkout (TypeScript sources and tsx
// present) it runs the sources directly, so there is nothing to build first;
// in an installed package or container image it runs the compiled `dist/`.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'cli', 'main.ts');
const built = join(root, 'dist', 'cli', 'main.js');

let entry = built;
if (existsSync(source)) {
  let tsx;
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    tsx = undefined; // not a development install: fall back to dist/
  }
  if (tsx) {
    tsx.register();
    entry = source;
  }
}
if (!existsSync(entry)) {
  process.stderr.write('llmmesh: no build found; run `npm ci` (development) or `npm run build` first\n');
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
const code = await main(process.argv.slice(2));
// Every command has stopped its servers (and flushed its spans) by now: exit
// once stdout and stderr are flushed, so a stray handle (a pooled socket, a
// reconnect timer) never holds a stopping mesh up.
process.exitCode = code;
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
