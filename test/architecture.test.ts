/**
 * Structural rules of the codebase: no import cycles, router and sidecar
 * never import each other, and the generated proto types match the protos.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import madge from 'madge';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = ['common', 'router', 'sidecar', 'sim', 'cli', 'client'];

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else out.push(p);
  }
  return out;
}

describe('architecture', () => {
  it('has no import cycles', async () => {
    const result = await madge(
      SOURCE_DIRS.map((d) => join(ROOT, d)),
      {
        fileExtensions: ['ts'],
        tsConfig: join(ROOT, 'tsconfig.json'),
        detectiveOptions: { ts: { skipTypeImports: true }, es6: { skipTypeImports: true } },
      },
    );
    assert.deepEqual(result.circular(), []);
    assert.ok(Object.keys(result.obj()).length > 30, 'madge saw the sources');
  });

  it('keeps router/ and sidecar/ apart, and common/ free of both', () => {
    const rules: Array<[string, RegExp]> = [
      ['router', /from '(\.\.\/)+sidecar\//],
      ['sidecar', /from '(\.\.\/)+router\//],
      ['common', /from '(\.\.\/)+(router|sidecar|sim|cli)\//],
      ['client', /from '(\.\.\/)+(router|sidecar|sim|cli)\//],
    ];
    const offenders: string[] = [];
    for (const [dir, forbidden] of rules) {
      for (const f of files(join(ROOT, dir))) {
        if (!f.endsWith('.ts') || f.endsWith('.spec.ts')) continue;
        if (forbidden.test(readFileSync(f, 'utf8'))) offenders.push(relative(ROOT, f));
      }
    }
    assert.deepEqual(offenders, []);
  });

  it('generated proto types are up to date with proto/', () => {
    const out = mkdtempSync(join(tmpdir(), 'llmmesh-gen-'));
    execFileSync(
      process.execPath,
      [
        join(ROOT, 'node_modules/@grpc/proto-loader/build/bin/proto-loader-gen-types.js'),
        '--longs=Number',
        '--enums=String',
        '--defaults',
        '--oneofs',
        '--grpcLib=@grpc/grpc-js',
        '--includeComments',
        '--importFileExtension=.js',
        '-I',
        join(ROOT, 'proto'),
        '-O',
        out,
        'llmmesh/v1/inference.proto',
        'llmmesh/v1/engine.proto',
      ],
      { stdio: 'pipe' },
    );
    const committed = join(ROOT, 'common/generated');
    const fresh = files(out)
      .map((f) => relative(out, f))
      .sort();
    assert.deepEqual(
      files(committed)
        .map((f) => relative(committed, f))
        .sort(),
      fresh,
    );
    for (const f of fresh) {
      assert.equal(
        readFileSync(join(committed, f), 'utf8').replace(/^\/\/ Original file: .*$/m, ''),
        readFileSync(join(out, f), 'utf8').replace(/^\/\/ Original file: .*$/m, ''),
        `common/generated/${f} is stale: run npm run gen:proto`,
      );
    }
  });
});
