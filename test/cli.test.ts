/**
 * The `llmmesh` command as a user runs it: the local mesh launcher, generate,
 * and config checking, each as a real process.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadMeshConfig } from '../cli/mesh-config.js';
import { createInferenceClient } from '../client/index.js';
import {
  explicitPorts,
  isListening,
  PortTakenError,
  type RunningCommand,
  retryOnPortTaken,
  runCommand,
  runToEnd,
} from './helpers/processes.js';

const execFileAsync = promisify(execFile);
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Resolves once the router's status lists `n` ready endpoints (it changes as pods come and go). */
async function waitForEndpoints(adminUrl: string, n: number): Promise<void> {
  for (;;) {
    const res = await fetch(`${adminUrl}/status.json`).catch(() => undefined);
    if (res?.ok) {
      const status = (await res.json()) as { endpoints: Array<{ ready: boolean }> };
      if (status.endpoints.filter((e) => e.ready).length >= n) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

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

/**
 * Starts `llmmesh start` on a mesh file of its own and waits until it serves.
 * Its ports have to be written in that file: the launcher wires each sidecar
 * to its engine's port and the router to the sidecars' ports before they
 * start, and brings a crashed component back on the same port (port 0 is no
 * mesh port). So they are picked here, and a start that finds one taken (by
 * another run that picks its own ports) is retried on fresh ones.
 */
function startMesh(): Promise<{ start: RunningCommand; ports: number[] }> {
  return retryOnPortTaken(async () => {
    const ports = await explicitPorts(6);
    const start = runCommand(['start', '--mesh', writeMesh(ports)]);
    try {
      await start.waitForOutput('stop: Ctrl-C');
    } catch (err) {
      // Taken before the launcher's check, or between its check and a component's bind.
      const said = start.stdout() + start.stderr();
      if (/already in use|Another process holds that address/.test(said)) throw new PortTakenError(said);
      throw err;
    }
    return { start, ports };
  });
}

describe('llmmesh start', () => {
  it('brings up a mesh that serves, and stops every process on SIGTERM', async () => {
    const { start, ports } = await startMesh();
    try {
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
      assert.match(status.stdout, /v2\s+weight\s+10\s+10%\s+\d+%\s+endpoints 1\/1 ready/);
      assert.match(status.stdout, /^config +\d+ reloads, \d+ rejected/m);
      assert.match(status.stdout, /^breakers all 2 closed$/m);

      // With no router there, it says what it tried and what to do. A port found free
      // outside the range port 0 binds draw from: no other run listens there meanwhile.
      const [nothing] = await explicitPorts(1);
      const none = await runToEnd(['status', '--admin', `http://127.0.0.1:${nothing}`]);
      assert.equal(none.code, 1);
      assert.match(
        none.stderr,
        new RegExp(`http://127\\.0\\.0\\.1:${nothing}/status\\.json \\(connection refused`),
      );
      assert.match(none.stderr, /npm start/);
    } finally {
      start.proc.kill('SIGTERM');
    }
    assert.equal(await start.exit, 0, start.stderr());
    assert.match(start.stdout(), /stopped/);
    for (const port of ports) assert.equal(await isListening(port), false, `port ${port} still open`);
  });

  it('restarts a crashed pod with backoff and keeps serving', { timeout: 120_000 }, async () => {
    const { start, ports } = await startMesh();
    const client = createInferenceClient(`127.0.0.1:${ports[0]}`);
    try {
      // The launcher's children: pod 1's simulator is the one serving ports[2].
      const { stdout: ps } = await execFileAsync('ps', [
        '-o',
        'pid=,args=',
        '--ppid',
        String(start.proc.pid),
      ]);
      const sim1 = ps
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .find((f) => f.includes('sim') && f.includes(String(ports[2])));
      assert.ok(sim1, ps);
      process.kill(Number(sim1[0]), 'SIGKILL');

      await start.waitForOutput(/sim-1 exited with signal SIGKILL; restarting in 1\.0 s \(restart 1\)/);
      // Meanwhile the other pod still serves.
      const during = await client.generate({
        model: 'llama-3-8b-chat',
        prompt: 'hi',
        routing: { version: 'v2' },
      });
      assert.equal(during.modelVersion, 'v2');
      await start.waitForOutput(/sim-1 restarted \(pid \d+\)/);
      // Pod 1 serves again once its sidecar sees the engine back.
      await waitForEndpoints(`http://127.0.0.1:${ports[1]}`, 2);
      const after = await client.generate({
        model: 'llama-3-8b-chat',
        prompt: 'hi',
        routing: { version: 'v1' },
      });
      assert.equal(after.modelVersion, 'v1');
      assert.doesNotMatch(start.stdout() + start.stderr(), /stopping the mesh/);
    } finally {
      client.close();
      start.proc.kill('SIGTERM');
    }
    assert.equal(await start.exit, 0, start.stderr());
    for (const port of ports) assert.equal(await isListening(port), false, `port ${port} still open`);
  });

  // The one test on the fixed ports of deploy/local/mesh.yaml: it runs `npm start`
  // exactly as a user does, in a real terminal (tmux), and presses Ctrl-C there.
  it('npm start in a terminal: Ctrl-C lets a running stream finish and leaves no process', {
    timeout: 120_000,
  }, async () => {
    const mesh = loadMeshConfig(join(ROOT, 'deploy', 'local', 'mesh.yaml'));
    const meshPorts = [
      Number(mesh.router.listen.split(':')[1]),
      Number(mesh.router.admin.split(':')[1]),
      ...mesh.pods.flatMap((p) => [p.engine_port, p.sidecar_port]),
    ];
    for (const port of meshPorts) assert.equal(await isListening(port), false, `port ${port} is taken`);
    const socket = `llmmesh-test-${process.pid}`;
    const tmux = (...args: string[]) => execFileAsync('tmux', ['-L', socket, ...args]);
    const pane = async () => (await tmux('capture-pane', '-p', '-J', '-S', '-500')).stdout;
    const waitForPane = async (re: RegExp) => {
      for (;;) {
        const text = await pane();
        if (re.test(text)) return text;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const childrenOf = async (pid: number) => {
      const r = await execFileAsync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)]).catch(() => ({
        stdout: '',
      }));
      return r.stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => {
          const [p, ...args] = l.trim().split(/\s+/);
          return { pid: Number(p), args: args.join(' ') };
        });
    };

    await tmux('new-session', '-d', '-x', '200', '-y', '50', '-c', ROOT, 'bash', '--norc', '--noprofile');
    const client = createInferenceClient(mesh.router.listen);
    try {
      await tmux('send-keys', 'npm start', 'Enter');
      await waitForPane(/stop: Ctrl-C/);
      // bash → npm → the launcher itself (`exec`: no sh in between) → the mesh.
      const shellPid = Number((await tmux('display-message', '-p', '#{pane_pid}')).stdout.trim());
      const [npm] = await childrenOf(shellPid);
      assert.ok(npm, 'npm runs in the terminal');
      const [launcher] = await childrenOf(npm.pid);
      assert.ok(launcher, 'npm runs the launcher');
      assert.match(launcher.args, /^node bin\/llmmesh\.js start/, 'npm execs the launcher directly');
      const meshProcs = await childrenOf(launcher.pid);
      assert.equal(meshProcs.length, mesh.pods.length * 2 + 1, meshProcs.map((c) => c.args).join('\n'));

      // A stream of ~300 tokens (about 2 s at the preset's speed) is running when Ctrl-C comes.
      const call = client.generateStream({
        model: 'llama-3-8b-chat',
        prompt: 'tell me a story',
        sampling: { maxTokens: 300 },
      });
      const chunks: string[] = [];
      let finish = '';
      let completion = 0;
      let firstChunk: () => void = () => {};
      const started = new Promise<void>((r) => {
        firstChunk = r;
      });
      const done = (async () => {
        for await (const chunk of call) {
          chunks.push(chunk.text);
          firstChunk();
          if (chunk.finishReason && chunk.finishReason !== 'FINISH_REASON_UNSPECIFIED')
            finish = chunk.finishReason;
          if (chunk.usage) completion = chunk.usage.completionTokens;
        }
      })();
      await started;
      await tmux('send-keys', 'C-c');
      await done; // throws if the stream was cut
      assert.equal(finish, 'FINISH_REASON_LENGTH');
      assert.equal(completion, 300);

      const text = await waitForPane(/^stopped$/m);
      assert.match(text, /stopping the mesh/);
      assert.doesNotMatch(text, /forced exit|RST_STREAM|exited with/);
      for (const p of [npm, launcher, ...meshProcs]) {
        while (alive(p.pid)) await new Promise((r) => setTimeout(r, 50));
      }
      for (const port of meshPorts) assert.equal(await isListening(port), false, `port ${port} still open`);
    } finally {
      client.close();
      await tmux('kill-server').catch(() => {});
    }
  });

  it('refuses to start when a port is taken, naming the address', async () => {
    // The taken port is held by this test (on port 0), the others are the launcher's to check.
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as net.AddressInfo).port;
    const others = await explicitPorts(5);
    const ports = [...others.slice(0, 3), taken, ...others.slice(3)];
    try {
      const r = await runToEnd(['start', '--mesh', writeMesh(ports)]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${taken} \\(pod 1 sidecar\\): in use`));
      assert.equal(r.stdout, '', 'no component started');
    } finally {
      blocker.close();
    }
    for (const port of others) assert.equal(await isListening(port), false);
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

describe('address in use', () => {
  it('names the flag and environment variable that move the server', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const taken = `127.0.0.1:${port}`;
      const [router, sidecar, sim] = await Promise.all([
        runToEnd([
          'router',
          '--listen',
          '127.0.0.1:0',
          '--admin',
          taken,
          '--endpoints',
          '127.0.0.1:1',
          '--config',
          join(ROOT, 'deploy', 'local', 'routes.yaml'),
        ]),
        runToEnd([
          'sidecar',
          '--listen',
          taken,
          '--engine-url',
          'http://127.0.0.1:1',
          '--model',
          'm',
          '--version',
          'v1',
        ]),
        runToEnd(['sim', '--host', '127.0.0.1', '--port', String(port)]),
      ]);
      assert.equal(router.code, 1);
      assert.match(router.stderr, /admin server with --admin HOST:PORT \(env LLMMESH_ADMIN/);
      assert.equal(sidecar.code, 1);
      assert.match(sidecar.stderr, /with --listen HOST:PORT \(env LLMMESH_LISTEN\)/);
      assert.equal(sim.code, 1);
      assert.match(sim.stderr, /with --port PORT \(env LLMMESH_SIM_PORT\)/);
    } finally {
      blocker.close();
    }
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
