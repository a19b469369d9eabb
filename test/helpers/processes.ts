/** Child processes of the `llmmesh` command for CLI tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Path of the `llmmesh` executable. */
export const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'llmmesh.js');

/** A running command with its output collected. */
export interface RunningCommand {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  exit: Promise<number | null>;
  /** Resolves once stdout contains `text`; rejects if the process exits first. */
  waitForOutput(text: string | RegExp): Promise<void>;
}

/** Starts `llmmesh ...args`. */
export function runCommand(args: string[], env: NodeJS.ProcessEnv = {}): RunningCommand {
  const proc = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, LLMMESH_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    for (const l of listeners) l();
  });
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exit = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exit,
    waitForOutput(text) {
      const seen = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      return new Promise((resolve, reject) => {
        if (seen()) return resolve();
        const check = () => {
          if (!seen()) return;
          listeners.delete(check);
          resolve();
        };
        listeners.add(check);
        void exit.then((code) => {
          if (seen()) return;
          listeners.delete(check);
          reject(
            new Error(
              `exited with ${code} before printing ${String(text)}\nstdout:\n${out}\nstderr:\n${err}`,
            ),
          );
        });
      });
    },
  };
}

/** Runs `llmmesh ...args` to completion. */
export async function runToEnd(args: string[], env: NodeJS.ProcessEnv = {}) {
  const c = runCommand(args, env);
  const code = await c.exit;
  return { code, stdout: c.stdout(), stderr: c.stderr() };
}

/** Distinct free loopback ports (bound together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = net.createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/**
 * Waits for `llmmesh <role>` started on ports 0 to say where it listens, and
 * returns its gRPC address and admin URL. Ports picked by the test and
 * released before the process binds them could be taken by a concurrent run.
 */
export async function listeningOn(
  cmd: RunningCommand,
  role: 'router' | 'sidecar',
): Promise<{ address: string; adminUrl: string | undefined }> {
  // The whole line: the admin URL comes last, and a process without one (`--admin off`) prints none.
  const line = new RegExp(`llmmesh ${role} listening on ([^,\\s]+)([^\\n]*)\\n`);
  await cmd.waitForOutput(line);
  const [, address, rest] = line.exec(cmd.stdout()) as RegExpExecArray;
  return { address: address as string, adminUrl: /, admin (\S+)/.exec(rest ?? '')?.[1] };
}

/** Waits for `llmmesh sim` started with `--port 0` to say where it serves; returns its URL. */
export async function simServingOn(cmd: RunningCommand): Promise<string> {
  const line = /llmmesh sim serving on (\S+)/;
  await cmd.waitForOutput(line);
  return (line.exec(cmd.stdout()) as RegExpExecArray)[1] as string;
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
