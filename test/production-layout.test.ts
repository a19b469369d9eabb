/**
 * The container image's runtime stage, rebuilt without Docker: `npm run build`
 * output, production-only `node_modules` (`npm ci --omit=dev`, offline from the
 * npm cache), `bin/` and `proto/` in a temp dir, with no TypeScript sources and
 * no dev tools. Every command must load there, and a sim, a sidecar and a
 * router started from it must stream a request.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

interface Proc {
  proc: ChildProcess;
  output(): string;
  /** Resolves with the first match of `re` in the output; rejects if the process exits first. */
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
  exit: Promise<number | null>;
}

describe('the production image layout (npm ci --omit=dev + dist/)', { timeout: 240_000 }, () => {
  let app = '';
  const procs: Proc[] = [];

  const llmmesh = (args: string[]): Proc => {
    const proc = spawn(process.execPath, [join(app, 'bin', 'llmmesh.js'), ...args], {
      cwd: app,
      env: { ...process.env, NODE_ENV: 'production', LLMMESH_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const listeners = new Set<() => void>();
    const collect = (d: string) => {
      out += d;
      for (const l of listeners) l();
    };
    proc.stdout?.setEncoding('utf8').on('data', collect);
    proc.stderr?.setEncoding('utf8').on('data', collect);
    const exit = new Promise<number | null>((resolve) => proc.once('close', resolve));
    const p: Proc = {
      proc,
      output: () => out,
      exit,
      waitFor: (re) =>
        new Promise((resolve, reject) => {
          const check = () => {
            const m = out.match(re);
            if (!m) return false;
            listeners.delete(check);
            resolve(m);
            return true;
          };
          if (check()) return;
          listeners.add(check);
          void exit.then((code) => {
            if (!check()) reject(new Error(`exited with ${code} before ${re}:\n${out}`));
          });
        }),
    };
    procs.push(p);
    return p;
  };

  before(async () => {
    app = mkdtempSync(join(tmpdir(), 'llmmesh-image-'));
    // What the Dockerfile's deps and runtime stages copy.
    for (const f of ['package.json', 'package-lock.json', 'bin', 'proto'])
      cpSync(join(ROOT, f), join(app, f), { recursive: true });
    cpSync(join(ROOT, 'deploy', 'local', 'routes.yaml'), join(app, 'routes.yaml'));
    await Promise.all([
      run('npm', ['ci', '--omit=dev', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], {
        cwd: app,
      }),
      // The build stage's `npm run build`, written straight into the layout.
      run('npm', ['run', 'build', '--', '--outDir', join(app, 'dist')], { cwd: ROOT }),
    ]);
  });

  after(async () => {
    for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exit));
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it('holds no tests, no TypeScript sources and no dev dependencies', () => {
    assert.ok(existsSync(join(app, 'dist', 'cli', 'main.js')));
    assert.ok(!existsSync(join(app, 'dist', 'test')), 'dist/test is not built');
    assert.ok(!existsSync(join(app, 'dist', 'router', 'config', 'load.spec.js')), 'no specs');
    assert.ok(!existsSync(join(app, 'cli')), 'no sources: bin/llmmesh.js runs dist/');
    for (const dev of ['tsx', 'typescript', '@biomejs/biome'])
      assert.ok(!existsSync(join(app, 'node_modules', dev)), `${dev} is a dev dependency`);
  });

  it('loads every command, including bench, and checks a config', async () => {
    const help = llmmesh(['--help']);
    assert.equal(await help.exit, 0, help.output());
    for (const name of ['start', 'router', 'sidecar', 'sim', 'generate', 'status', 'bench'])
      assert.match(help.output(), new RegExp(`^  ${name} +[A-Z]`, 'm'), help.output());
    assert.doesNotMatch(help.output(), /cannot load/);
    const bench = llmmesh(['bench', '--help']);
    assert.equal(await bench.exit, 0, bench.output());
    const check = llmmesh(['router', '--check', '--config', 'routes.yaml']);
    assert.equal(await check.exit, 0, check.output());
    assert.match(check.output(), /routes\.yaml: ok/);
  });

  it('runs a sim, a sidecar and a router that stream a request', async () => {
    const sim = llmmesh([
      'sim',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--served-model-name',
      'llama-3-8b-chat',
      '--time-to-first-token-ms',
      '1',
      '--inter-token-latency-ms',
      '1',
    ]);
    const [, simUrl] = await sim.waitFor(/serving on (http:\/\/127\.0\.0\.1:\d+)/);
    const sidecar = llmmesh([
      'sidecar',
      '--engine-url',
      simUrl as string,
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--model',
      'llama-3-8b-chat',
      '--version',
      'v1',
    ]);
    const [, sidecarAddr] = await sidecar.waitFor(/sidecar listening on (127\.0\.0\.1:\d+)/);
    const router = llmmesh([
      'router',
      '--config',
      'routes.yaml',
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--endpoints',
      sidecarAddr as string,
    ]);
    const [, routerAddr, adminUrl] = await router.waitFor(
      /router listening on (127\.0\.0\.1:\d+), admin (http:\/\/127\.0\.0\.1:\d+)/,
    );
    // Wait until the router has the endpoint ready (its readiness follows the sidecar's).
    for (;;) {
      const res = await fetch(`${adminUrl}/readyz`);
      if (res.ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const gen = llmmesh([
      'generate',
      '--target',
      routerAddr as string,
      '--model',
      'llama-3-8b-chat',
      '--version',
      'v1',
      '--prompt',
      'hello',
      '--stream',
      '--max-tokens',
      '8',
    ]);
    assert.equal(await gen.exit, 0, gen.output());
    assert.match(gen.output(), /finish length · tokens prompt \d+ \/ completion 8/);
    for (const p of [router, sidecar, sim]) {
      p.proc.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.output());
    }
  });
});
