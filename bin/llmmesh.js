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
process.exitCode = await main(process.argv.slice(2));
// Every command has stopped its servers by now; do not let a stray handle
// (a closing socket, a resolver timer) keep the process alive.
setTimeout(() => process.exit(process.exitCode), 2000).unref();
