/** A private redis-server on a free loopback port, for tests that kill Redis. */
import { type ChildProcess, spawn } from 'node:child_process';
import { freePorts } from './processes.js';

/** A running private Redis. */
export interface PrivateRedis {
  port: number;
  url: string;
  /** Kills the server (SIGKILL) and waits for it to exit. */
  kill(): Promise<void>;
}

/**
 * Starts `redis-server` without persistence and resolves once it accepts
 * connections; on a free port, or on `port` (e.g. to restart a killed one empty).
 */
export async function spawnRedis(port?: number): Promise<PrivateRedis> {
  port ??= (await freePorts(1))[0] as number;
  const proc: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('Ready to accept connections')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
  });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}
