/**
 * Redis for tests: the shared server (127.0.0.1:6379, or
 * `LLMMESH_TEST_REDIS_URL`) with a unique key prefix per test, and private
 * `redis-server` processes a test may kill, pause and restart.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { explicitPorts, PortTakenError, retryOnPortTaken } from './processes.js';

/** The shared Redis of the test environment. */
export const SHARED_REDIS_URL = process.env.LLMMESH_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix no other test (or run) uses. */
export function uniquePrefix(name: string): string {
  return `llmmesh-test:${name}:${process.pid}:${randomBytes(4).toString('hex')}:`;
}

/** A plain client for assertions and cleanup (the caller quits it). */
export function redisClient(url = SHARED_REDIS_URL): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false });
}

/** Deletes every key under `prefix`. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/** A `redis-server` of the test's own. */
export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  /** SIGKILL: the server vanishes mid-conversation. */
  kill(): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing (a slow Redis). */
  pause(): void;
  /** SIGCONT after {@link pause}. */
  resume(): void;
  /** Starts a fresh, empty server on the same port (after {@link kill}). */
  restart(): Promise<void>;
  /** Stops the server for good. */
  close(): Promise<void>;
}

/**
 * Starts `redis-server` on a loopback port without persistence; resolves once
 * it accepts connections. It cannot be started on port 0 and asked for its
 * port (`--port 0` turns TCP off, and the mesh takes only redis:// URLs), and a
 * killed server must come back on the same address, so the port is picked
 * before it starts ({@link explicitPorts}): a start that finds it taken is
 * retried on another, a restart that finds it taken fails saying so.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  let proc: ChildProcess | undefined;

  const launch = (port: number) =>
    new Promise<void>((resolve, reject) => {
      const p = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      proc = p;
      let out = '';
      const onData = (d: Buffer) => {
        out += d.toString('utf8');
        if (out.includes('Ready to accept connections')) {
          p.stdout?.off('data', onData);
          p.stdout?.resume();
          resolve();
        }
      };
      p.stdout?.on('data', onData);
      p.stderr?.resume();
      p.once('error', reject);
      // 'close', not 'exit': the reason may still be in the pipe when it exits.
      p.once('close', (code) => {
        const why = `redis-server on port ${port} exited with ${code} before it was ready:\n${out}`;
        reject(out.includes('Address already in use') ? new PortTakenError(why) : new Error(why));
      });
    });

  const port = await retryOnPortTaken(async () => {
    const [port] = (await explicitPorts(1)) as [number];
    await launch(port);
    return port;
  });

  const stop = async (signal: NodeJS.Signals) => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGCONT');
    p.kill(signal);
    await exited;
  };

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: () => stop('SIGKILL'),
    pause: () => proc?.kill('SIGSTOP'),
    resume: () => proc?.kill('SIGCONT'),
    restart: () => launch(port),
    close: () => stop('SIGKILL'),
  };
}
