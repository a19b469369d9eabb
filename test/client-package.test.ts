/**
 * The typed client as another service gets it: `npm pack` (which builds
 * dist/ through `prepack`) makes a tarball; a fresh project installs it
 * (offline, dependencies from the npm cache), type-checks an import of
 * `llmmesh/client` and streams a request through a real mesh with it.
 * And in a fresh clone, without a build, `llmmesh/client` resolves to the
 * TypeScript source under the `llmmesh-source` condition.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startTestMesh, type TestMesh } from './helpers/mesh.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

describe('the llmmesh/client package', { timeout: 240_000 }, () => {
  let work = '';
  let mesh: TestMesh;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'llmmesh-client-'));
    mesh = await startTestMesh({ pods: [{ version: 'v1' }] });
  });
  after(async () => {
    await mesh?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('resolves to the TypeScript source in a clone that was never built', async () => {
    // A copy of the checkout without dist/ (the repository's own may have been built).
    const clone = join(work, 'clone');
    mkdirSync(clone);
    for (const f of ['package.json', 'client', 'common', 'proto'])
      cpSync(join(ROOT, f), join(clone, f), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'), 'dir');
    const { stdout } = await run(
      process.execPath,
      [
        '--conditions=llmmesh-source',
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        "const m = await import('llmmesh/client'); console.log(typeof m.createInferenceClient, m.Status.UNAVAILABLE);",
      ],
      { cwd: clone },
    );
    assert.equal(stdout.trim(), 'function 14');
  });

  it('npm pack makes a tarball with dist/, types and protos that installs and streams', async () => {
    // Pack from a copy, so the build that prepack runs never touches the checkout.
    const src = join(work, 'src');
    mkdirSync(src);
    for (const f of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'README.md',
      'bin',
      'proto',
      'common',
      'router',
      'sidecar',
      'sim',
      'cli',
      'client',
      'bench',
    ])
      cpSync(join(ROOT, f), join(src, f), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'), 'dir');
    const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: src });
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    assert.ok(info);
    const files = new Set(info.files.map((f) => f.path));
    for (const f of [
      'dist/client/index.js',
      'dist/client/index.d.ts',
      'proto/llmmesh/v1/inference.proto',
      'bin/llmmesh.js',
    ])
      assert.ok(files.has(f), `${f} in the tarball`);
    assert.ok(![...files].some((f) => f.startsWith('dist/test/') || f.endsWith('.spec.js')), 'no tests');

    const app = join(work, 'app');
    mkdirSync(app);
    // The service's lockfile pins llmmesh's dependencies as the checkout's lockfile
    // does, so `npm ci --offline` installs them from the npm cache.
    const tarball = `file:../${info.filename}`;
    const repoLock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; dependencies?: Record<string, string>; version?: string }>;
    };
    const ownPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
      dependencies: Record<string, string>;
    };
    const packages: Record<string, unknown> = {
      '': { name: 'app', version: '1.0.0', dependencies: { llmmesh: tarball } },
      'node_modules/llmmesh': {
        version: ownPkg.version,
        resolved: tarball,
        license: 'Apache-2.0',
        dependencies: ownPkg.dependencies,
        bin: { llmmesh: 'bin/llmmesh.js' },
        engines: { node: '>=20.6' },
      },
    };
    for (const [path, entry] of Object.entries(repoLock.packages))
      if (path.startsWith('node_modules/') && !entry.dev) packages[path] = entry;
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'app',
        version: '1.0.0',
        private: true,
        type: 'module',
        dependencies: { llmmesh: tarball },
      }),
    );
    writeFileSync(
      join(app, 'package-lock.json'),
      JSON.stringify({ name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages }),
    );
    await run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: app });
    writeFileSync(
      join(app, 'main.ts'),
      `import { createInferenceClient, type GenerateInput } from 'llmmesh/client';
const client = createInferenceClient(process.argv[2] as string);
const input: GenerateInput = { model: 'llama-3-8b-chat', prompt: 'hello', sampling: { maxTokens: 6 } };
let chunks = 0;
let text = '';
for await (const chunk of client.generateStream(input)) {
  chunks++;
  text += chunk.text;
}
void chunks;
void text;
client.close();
`,
    );
    // The published types are enough to type-check a consumer.
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'ES2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: [],
          typeRoots: [],
        },
        files: ['main.ts'],
      }),
    );
    await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app]).catch(
      (err: { stdout?: string }) => assert.fail(`tsc: ${err.stdout}`),
    );
    // The same as plain JavaScript, run by Node alone (no tsx in the service).
    writeFileSync(
      join(app, 'main.mjs'),
      `import { createInferenceClient } from 'llmmesh/client';
const client = createInferenceClient(process.argv[2]);
const input = { model: 'llama-3-8b-chat', prompt: 'hello', sampling: { maxTokens: 6 } };
let chunks = 0;
let text = '';
const call = client.generateStream(input);
for await (const chunk of call) {
  chunks++;
  text += chunk.text;
}
console.log(JSON.stringify({ chunks, text, servedBy: await call.servedBy }));
client.close();
`,
    );
    assert.ok(existsSync(join(app, 'node_modules', 'llmmesh', 'dist', 'client', 'index.js')));
    const { stdout } = await run(process.execPath, ['main.mjs', mesh.router.address], { cwd: app });
    const result = JSON.parse(stdout) as { chunks: number; text: string; servedBy: { version: string } };
    assert.equal(result.chunks, 6);
    assert.ok(result.text.length > 0);
    assert.equal(result.servedBy.version, 'v1');
  });
});
