/**
 * The `llmmesh` command as a user runs it: the local mesh launcher, generate,
 * and config checking, each as a real process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createInferenceClient } from '../client/index.js';
import { freePorts, isListening, runCommand, runToEnd } from './helpers/processes.js';

function writeMesh(ports: number[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'llmmesh-mesh-'));
  writeFileSync(
    join(dir, 'routes.yaml'),
    'models:\n  llama-3-8b-chat:\n    versions:\n      v1: { weight: 90 }\n      v2: { weight: 10 }\n',
  );
  const [router, admin, e1, s1, e2, s2] = ports;
  writeFileSync(
    join(dir, 'mesh.yaml'),
    `router:
  listen: 127.0.0.1:${router}
  admin: 127.0.0.1:${admin}
  routes: routes.yaml
sim:
  inter_token_latency_ms: 1
  time_to_first_token_ms: 1
pods:
  - { model: llama-3-8b-chat, version: v1, engine_port: ${e1}, sidecar_port: ${s1} }
  - { model: llama-3-8b-chat, version: v2, engine_port: ${e2}, sidecar_port: ${s2} }
`,
  );
  return join(dir, 'mesh.yaml');
}

describe('llmmesh start', () => {
  it('brings up a mesh that serves, and stops every process on SIGTERM', async () => {
    const ports = await freePorts(6);
    const start = runCommand(['start', '--mesh', writeMesh(ports)]);
    try {
      await start.waitForOutput('stop: Ctrl-C');
      assert.match(start.stdout(), new RegExp(`router\\s+127\\.0\\.0\\.1:${ports[0]}`));

      const client = createInferenceClient(`127.0.0.1:${ports[0]}`);
      try {
        const r = await client.generate({
          model: 'llama-3-8b-chat',
          prompt: 'hello',
          routing: { version: 'v2' },
        });
        assert.equal(r.modelVersion, 'v2');
        assert.equal(r.endpoint, `127.0.0.1:${ports[5]}`);
      } finally {
        client.close();
      }

      const gen = await runToEnd([
        'generate',
        '--model',
        'llama-3-8b-chat',
        '--prompt',
        'hello',
        '--stream',
        '--max-tokens',
        '12',
        '--target',
        `127.0.0.1:${ports[0]}`,
      ]);
      assert.equal(gen.code, 0, gen.stderr);
      assert.ok(gen.stdout.trim().length > 0, 'tokens printed');
      assert.match(
        gen.stderr,
        /version v[12] · endpoint 127\.0\.0\.1:\d+ · finish length · tokens prompt \d+ \/ completion 12/,
      );
      assert.match(gen.stderr, /12 chunks · cache uncacheable · trace [0-9a-f]{32}/);

      const status = await runToEnd(['status', '--admin', `http://127.0.0.1:${ports[1]}`]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /v2\s+weight\s+10 \(\s*10%\)\s+endpoints 1\/1 ready/);
    } finally {
      start.proc.kill('SIGTERM');
    }
    assert.equal(await start.exit, 0, start.stderr());
    assert.match(start.stdout(), /stopped/);
    for (const port of ports) assert.equal(await isListening(port), false, `port ${port} still open`);
  });

  it('refuses to start when a port is taken, naming the address', async () => {
    const ports = await freePorts(6);
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(ports[3], '127.0.0.1', r));
    try {
      const r = await runToEnd(['start', '--mesh', writeMesh(ports)]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${ports[3]} \\(pod 1 sidecar\\): in use`));
    } finally {
      blocker.close();
    }
    for (const port of ports) assert.equal(await isListening(port), false);
  });

  it('reports a bad mesh file with the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-mesh-'));
    writeFileSync(
      join(dir, 'mesh.yaml'),
      'router: { routes: r.yaml }\npods:\n  - { model: m, version: v1, engine_port: 0, sidecar_port: 7001 }\n',
    );
    const r = await runToEnd(['start', '--mesh', join(dir, 'mesh.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /pods\[0\]\.engine_port: must be 1-65535/);
  });
});

describe('llmmesh router --check', () => {
  it('exits 0 for a valid config and 1 naming the bad field otherwise', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmmesh-check-'));
    const good = join(dir, 'good.yaml');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(good, 'models: { m: { versions: { v1: { weight: 90 }, v2: { weight: 10 } } } }\n');
    writeFileSync(bad, 'models: { m: { versions: { v1: { weight: 90 }, v2: { weight: "ten" } } } }\n');
    const ok = await runToEnd(['router', '--config', good, '--check']);
    assert.equal(ok.code, 0, ok.stderr);
    const ko = await runToEnd(['router', '--config', bad, '--check']);
    assert.equal(ko.code, 1);
    assert.match(ko.stderr, /models\.m\.versions\.v2\.weight: /);
    assert.ok(ko.stderr.includes(bad));
  });

  it('documents flags with their environment variables, and rejects unknown flags', async () => {
    const help = await runToEnd(['router', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--config FILE .*env LLMMESH_CONFIG/);
    const unknown = await runToEnd(['router', '--confg', 'x']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--confg/);
  });
});
