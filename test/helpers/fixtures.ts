/** Recorded output of real engines (see test/fixtures/engine/README.md for sources). */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The fixtures directory. */
export const FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'engine');

/** Reads a fixture as text. */
export function fixture(name: string): string {
  return readFileSync(join(FIXTURES_DIR, name), 'utf8');
}
