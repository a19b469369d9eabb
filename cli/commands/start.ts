/**
 * `llmmesh start`: brings up a local mesh (simulated engines, a sidecar per
 * engine, a router) as child processes, waits until it serves, prints where
 * everything is, restarts a component that crashes (with backoff), and on
 * Ctrl-C / SIGTERM stops them in order, letting streams in flight finish.
 */
import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseHostPort } from '../../common/address.js';
import { loadMeshConfig, type MeshConfig } from '../mesh-config.js';
import { type CommandSpec, helpText, parseOptions, str } from '../options.js';
import { createSupervisor, type Supervisor } from '../supervisor.js';
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

/** The router and sidecars get this long to finish their streams when the mesh stops. */
const STOP_GRACE_MS = 8_000;
/** After this, a component that has not stopped is killed. */
const STOP_KILL_AFTER_MS = STOP_GRACE_MS + 2_000;
/**
 * Repeats of the stop signal within this window are the same request: a
 * Ctrl-C under `npm start` reaches the launcher twice, from the terminal and
 * forwarded by npm. A later one forces the stop.
 */
const REPEAT_SIGNAL_WINDOW_MS = 1_000;

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

  // Before the mesh is up, a child that exits is a start-up error to report (a
  // restart would fail the same way); after, it is restarted with backoff.
  let earlyExit: (why: string) => void = () => {};
  const failedEarly = new Promise<string>((resolve) => {
    earlyExit = resolve;
  });
  const supervisor = createSupervisor({
    bin: findBin(),
    env: { ...process.env, LLMMESH_LOG_LEVEL: process.env.LLMMESH_LOG_LEVEL ?? 'warn' },
    out,
    onUnexpectedExit: (child, how) => earlyExit(`${child.name} exited with ${how}`),
  });

  const { sidecarAdmins } = spawnMesh(supervisor, mesh);
  const sidecars = mesh.pods.map((p) => `${mesh.host}:${p.sidecar_port}`);

  // Router first (it stops taking requests and finishes its streams), then
  // sidecars (drain), engines last: a stream in flight keeps its whole path.
  const stopMesh = () =>
    supervisor.stop(
      [
        supervisor.children.filter((c) => c.name === 'router'),
        supervisor.children.filter((c) => c.name.startsWith('sidecar')),
        supervisor.children.filter((c) => c.name.startsWith('sim')),
      ],
      STOP_KILL_AFTER_MS,
    );

  const signals = new AbortController();
  let firstSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!signals.signal.aborted) {
      firstSignalAt = Date.now();
      signals.abort();
      return;
    }
    if (Date.now() - firstSignalAt < REPEAT_SIGNAL_WINDOW_MS) return;
    process.stderr.write(`llmmesh start: ${signal} again; killing the mesh without draining\n`);
    supervisor.kill();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const aborted = new Promise<void>((resolve) =>
    signals.signal.addEventListener('abort', () => resolve(), { once: true }),
  );

  // The mesh is up when the router reports every endpoint ready.
  const adminUrl = `http://${mesh.router.admin}`;
  const ready = waitReady(adminUrl, sidecars.length, readyTimeoutMs, signals.signal);
  const first = await Promise.race([
    ready.then((ok) => (ok ? undefined : `the mesh was not serving after ${readyTimeoutMs} ms`)),
    failedEarly,
  ]);
  if (first !== undefined || signals.signal.aborted) {
    if (!signals.signal.aborted) process.stderr.write(`llmmesh start: ${first}\n`);
    await stopMesh();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    return signals.signal.aborted ? 0 : 1;
  }
  supervisor.enableRestarts();

  printBanner(out, mesh, sidecarAdmins, (Date.now() - started) / 1000);

  await aborted;
  out('stopping the mesh: router, then sidecars (draining), then engines...');
  await stopMesh();
  out('stopped');
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return 0;
}

/** Starts every pod (engine and sidecar) and the router; returns the sidecars' admin URLs as they are printed. */
function spawnMesh(supervisor: Supervisor, mesh: MeshConfig): { sidecarAdmins: string[] } {
  const host = mesh.host;
  const sim = mesh.sim;
  const sidecarAdmins: string[] = [];
  mesh.pods.forEach((pod, i) => {
    const s = { ...sim, ...pod.sim };
    supervisor.spawn(`sim-${i + 1}`, [
      'sim',
      '--host',
      host,
      '--port',
      String(pod.engine_port),
      '--served-model-name',
      pod.model,
      ...simArgsFromMesh(s),
    ]);
    const sidecar = supervisor.spawn(`sidecar-${i + 1}`, [
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
      // Finish draining before the launcher's SIGKILL.
      '--drain-grace-ms',
      String(STOP_GRACE_MS),
    ]);
    sidecarAdmins[i] = '';
    sidecar.proc.stdout?.on('data', (d: string) => {
      const m = /admin (http:\/\/\S+)/.exec(String(d));
      if (m?.[1]) sidecarAdmins[i] = m[1];
    });
  });
  const sidecars = mesh.pods.map((p) => `${host}:${p.sidecar_port}`);
  supervisor.spawn('router', [
    'router',
    '--config',
    mesh.router.routes,
    '--listen',
    mesh.router.listen,
    '--admin',
    mesh.router.admin,
    '--endpoints',
    sidecars.join(','),
    '--shutdown-grace-ms',
    String(STOP_GRACE_MS),
  ]);

  return { sidecarAdmins };
}

/** Prints where everything listens. */
function printBanner(
  out: (line: string) => void,
  mesh: MeshConfig,
  sidecarAdmins: string[],
  seconds: number,
) {
  const host = mesh.host;
  const adminUrl = `http://${mesh.router.admin}`;
  const secs = seconds.toFixed(1);
  out('');
  out(`llmmesh local mesh is up (${secs} s)`);
  out(`  router   ${mesh.router.listen}   gRPC llmmesh.v1.Inference (reflection on)`);
  out(`  admin    ${adminUrl}   status page /, /status.json, /metrics`);
  out(`  routes   ${mesh.router.routes}   edit the weights; the router reloads it`);
  mesh.pods.forEach((p, i) => {
    const admin = sidecarAdmins[i] ? `, admin ${sidecarAdmins[i]}` : '';
    out(
      `  pod ${i + 1}    ${p.model} ${p.version}   sidecar ${host}:${p.sidecar_port}${admin} -> sim http://${host}:${p.engine_port}`,
    );
  });
  out('');
  out(`try:  npx llmmesh generate --model ${mesh.pods[0]?.model} --prompt hello --stream`);
  out('a crashed pod is restarted with backoff; stop: Ctrl-C (streams in flight finish first)');
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
