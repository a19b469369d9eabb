/**
 * `llmmesh start`: brings up a local mesh (simulated engines, a sidecar per
 * engine, a router) as child processes, waits until it serves, prints where
 * everything is, and stops every child on Ctrl-C / SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseHostPort } from '../../common/address.js';
import { loadMeshConfig, type MeshConfig } from '../mesh-config.js';
import { type CommandSpec, helpText, parseOptions, str } from '../options.js';
import { simArgsFromMesh } from './sim.js';

export const startCommand: CommandSpec = {
  name: 'start',
  summary: 'Start a local mesh: simulated vLLM pods with sidecars, and a router in front.',
  usage: 'llmmesh start [--mesh FILE]',
  options: {
    mesh: {
      type: 'string',
      env: 'LLMMESH_MESH',
      default: 'deploy/local/mesh.yaml',
      valueName: 'FILE',
      description: 'Mesh description (pods, ports, router)',
    },
    'ready-timeout-ms': {
      type: 'string',
      env: 'LLMMESH_READY_TIMEOUT_MS',
      default: '60000',
      valueName: 'MS',
      description: 'Give up if the mesh is not serving by then',
    },
  },
};

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
  tail: string[];
}

/** Runs the command; returns the exit code. */
export async function runStart(argv: string[]): Promise<number> {
  const { values } = parseOptions(startCommand, argv);
  if (values.help) {
    process.stdout.write(helpText(startCommand));
    return 0;
  }
  const meshPath = str(values, 'mesh', startCommand, true) as string;
  const readyTimeoutMs = Number(str(values, 'ready-timeout-ms', startCommand)) || 60_000;
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const started = Date.now();

  let mesh: MeshConfig;
  try {
    mesh = loadMeshConfig(meshPath);
  } catch (err) {
    process.stderr.write(`llmmesh start: ${(err as Error).message}\n`);
    return 1;
  }
  if (!existsSync(mesh.router.routes)) {
    process.stderr.write(`llmmesh start: router.routes: ${mesh.router.routes} does not exist\n`);
    return 1;
  }

  const busy = await busyPorts(mesh);
  if (busy.length > 0) {
    process.stderr.write(
      `llmmesh start: cannot start the mesh, ${busy.length === 1 ? 'this address is' : 'these addresses are'} already in use:\n` +
        busy.map((b) => `  ${b}\n`).join('') +
        `Is another mesh running? Stop it, or change the ports in ${meshPath}.\n`,
    );
    return 1;
  }

  const children: Child[] = [];
  const bin = findBin();
  const spawnChild = (name: string, args: string[]): Child => {
    const proc = spawn(process.execPath, [bin, ...args], {
      // The IPC channel lets a child notice when the launcher dies, however it dies.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, LLMMESH_LOG_LEVEL: process.env.LLMMESH_LOG_LEVEL ?? 'warn' },
    });
    const tail: string[] = [];
    const pipe = (stream: NodeJS.ReadableStream | null) => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (d: string) => {
        buf += d;
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          tail.push(line);
          if (tail.length > 20) tail.shift();
          out(`[${name}] ${line}`);
          nl = buf.indexOf('\n');
        }
      });
    };
    pipe(proc.stdout);
    pipe(proc.stderr);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const child = { name, proc, exited, tail };
    children.push(child);
    return child;
  };

  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    // Router first (it stops taking requests), then sidecars (drain), then engines.
    const order = [
      children.filter((c) => c.name === 'router'),
      children.filter((c) => c.name.startsWith('sidecar')),
      children.filter((c) => c.name.startsWith('sim')),
    ];
    for (const group of order) {
      await Promise.all(
        group.map(async (c) => {
          if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
          c.proc.kill('SIGTERM');
          const timer = setTimeout(() => c.proc.kill('SIGKILL'), 10_000);
          await c.exited;
          clearTimeout(timer);
        }),
      );
    }
  };

  const host = mesh.host;
  const sim = mesh.sim;
  mesh.pods.forEach((pod, i) => {
    const s = { ...sim, ...pod.sim };
    spawnChild(`sim-${i + 1}`, [
      'sim',
      '--host',
      host,
      '--port',
      String(pod.engine_port),
      '--served-model-name',
      pod.model,
      ...simArgsFromMesh(s),
    ]);
    spawnChild(`sidecar-${i + 1}`, [
      'sidecar',
      '--engine-url',
      `http://${host}:${pod.engine_port}`,
      '--listen',
      `${host}:${pod.sidecar_port}`,
      '--model',
      pod.model,
      '--version',
      pod.version,
      '--max-in-flight',
      String(s.max_num_seqs),
      // Each sidecar's admin server on a free port (printed in its log line), so pods never collide.
      '--admin',
      `${host}:0`,
      // Finish draining before the launcher's 10 s SIGKILL.
      '--drain-grace-ms',
      '8000',
    ]);
  });
  const sidecars = mesh.pods.map((p) => `${host}:${p.sidecar_port}`);
  spawnChild('router', [
    'router',
    '--config',
    mesh.router.routes,
    '--listen',
    mesh.router.listen,
    '--admin',
    mesh.router.admin,
    '--endpoints',
    sidecars.join(','),
  ]);

  const signals = new AbortController();
  const onSignal = () => signals.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  // The mesh is up when the router reports every endpoint ready.
  const adminUrl = `http://${mesh.router.admin}`;
  const anyExit = Promise.race(children.map((c) => c.exited.then(() => c)));
  const ready = waitReady(adminUrl, sidecars.length, readyTimeoutMs, signals.signal);
  const first = await Promise.race([ready.then((ok) => ({ ok })), anyExit.then((c) => ({ exited: c }))]);
  if ('exited' in first || !first.ok) {
    if (!signals.signal.aborted) {
      const why =
        'exited' in first
          ? `${first.exited.name} exited with code ${first.exited.proc.exitCode ?? first.exited.proc.signalCode}`
          : `the mesh was not serving after ${readyTimeoutMs} ms`;
      process.stderr.write(`llmmesh start: ${why}\n`);
    }
    await stopAll();
    return signals.signal.aborted ? 0 : 1;
  }

  const secs = ((Date.now() - started) / 1000).toFixed(1);
  out('');
  out(`llmmesh local mesh is up (${secs} s)`);
  out(`  router   ${mesh.router.listen}   gRPC llmmesh.v1.Inference (reflection on)`);
  out(`  admin    ${adminUrl}   status page /, /status.json, /metrics`);
  out(`  routes   ${mesh.router.routes}   edit the weights; the router reloads it`);
  mesh.pods.forEach((p, i) => {
    out(
      `  pod ${i + 1}    ${p.model} ${p.version}   sidecar ${host}:${p.sidecar_port} -> sim http://${host}:${p.engine_port}`,
    );
  });
  out('');
  out(`try:  npx llmmesh generate --model ${mesh.pods[0]?.model} --prompt hello --stream`);
  out('stop: Ctrl-C');

  const reason = await Promise.race([
    new Promise<string>((resolve) =>
      signals.signal.addEventListener('abort', () => resolve('signal'), { once: true }),
    ),
    anyExit.then((c) => `${c.name} exited with code ${c.proc.exitCode ?? c.proc.signalCode}`),
  ]);
  const failed = reason !== 'signal' && !stopping;
  if (failed) process.stderr.write(`llmmesh start: ${reason}; stopping the mesh\n`);
  out('stopping the mesh...');
  await stopAll();
  out('stopped');
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return failed ? 1 : 0;
}

async function waitReady(
  adminUrl: string,
  expected: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !signal.aborted) {
    try {
      const res = await fetch(`${adminUrl}/status`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) {
        const status = (await res.json()) as { endpoints: Array<{ ready: boolean }> };
        if (status.endpoints.filter((e) => e.ready).length >= expected) return true;
      }
    } catch {
      // Not up yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function busyPorts(mesh: MeshConfig): Promise<string[]> {
  const wanted: Array<[string, number, string]> = [];
  const r = parseHostPort(mesh.router.listen, 'router.listen');
  const a = parseHostPort(mesh.router.admin, 'router.admin');
  wanted.push([r.host, r.port, 'router gRPC'], [a.host, a.port, 'router admin']);
  mesh.pods.forEach((p, i) => {
    wanted.push(
      [mesh.host, p.engine_port, `pod ${i + 1} engine`],
      [mesh.host, p.sidecar_port, `pod ${i + 1} sidecar`],
    );
  });
  const busy: string[] = [];
  for (const [host, port, what] of wanted) {
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const s = net.createServer();
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e));
      s.listen(port, host, () => s.close(() => resolve(undefined)));
    });
    if (err) busy.push(`${host}:${port} (${what}): ${err.code === 'EADDRINUSE' ? 'in use' : err.message}`);
  }
  return busy;
}

function findBin(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'bin', 'llmmesh.js');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('cannot find bin/llmmesh.js');
}
