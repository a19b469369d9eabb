/** Child processes of the `llmmesh` command for CLI tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
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

/** Lowest port of the kernel's ephemeral range (port 0 binds and outgoing connections), Linux's default otherwise. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 1024) return low;
  } catch {
    // Not Linux: assume its default range.
  }
  return 32_768;
}

/** Ports below this carry the fixed ports of deploy/local/mesh.yaml, Redis and the like. */
const EXPLICIT_PORTS_FROM = 20_000;

/**
 * Distinct loopback ports, free when picked, for a process that must be told
 * its port before it starts: a redis-server, or the launcher of
 * `llmmesh start`, whose mesh file names every port. Everything that can
 * listen on port 0 and print its address should (see {@link listeningOn}).
 *
 * A port picked, released and bound later can be taken in between. These are
 * drawn at random below the kernel's ephemeral range, where no port 0 bind and
 * no outgoing connection is ever placed, so only another process that also
 * picks its ports itself can take one; the caller still runs its start under
 * {@link retryOnPortTaken}.
 */
export async function explicitPorts(n: number): Promise<number[]> {
  const high = ephemeralLow();
  const low = Math.min(EXPLICIT_PORTS_FROM, high - 1_000);
  const ports: number[] = [];
  while (ports.length < n) {
    const port = randomInt(low, high);
    if (!ports.includes(port) && (await canBind(port))) ports.push(port);
  }
  return ports;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Thrown by a start that failed because one of its ports was taken before it bound it. */
export class PortTakenError extends Error {
  override name = 'PortTakenError';
}

/** How often a start is retried on fresh ports before the test fails. */
const PORT_ATTEMPTS = 5;

/**
 * Runs `start` until it does not fail with {@link PortTakenError} (each call
 * picks fresh ports), at most a few times; any other failure fails at once.
 */
export async function retryOnPortTaken<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt === PORT_ATTEMPTS) throw err;
    }
  }
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
