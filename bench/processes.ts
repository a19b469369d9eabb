/**
 * The benchmark scenarios' processes: `llmmesh` components and the helper
 * processes of `child.ts`, each in its own process, pinned to a core with
 * `taskset` when it is available, and all stopped together.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const fromSource = import.meta.url.endsWith('.ts');

/** Path of the `llmmesh` executable. */
export const LLMMESH_BIN = join(here, '..', fromSource ? '' : '..', 'bin', 'llmmesh.js');

/** True when `taskset` (util-linux) can pin processes to cores here. */
export function tasksetAvailable(): boolean {
  try {
    return spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
}

/** CPU time (user + system, seconds) a process has used, from /proc; undefined where /proc is absent. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100;
  } catch {
    return undefined;
  }
}

/** Resident memory of a process in bytes, from /proc; undefined where /proc is absent. */
export function processRssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The address a process started on port 0 printed after `prefix` (and an
 * optional `on`), once that line is complete: e.g. `127.0.0.1:PORT` after
 * `llmmesh sidecar listening`, `http://127.0.0.1:PORT` after `llmmesh sim
 * serving on` or after `, admin`, a trailing comma dropped; undefined until
 * `output` holds the whole line. A process told a port picked and released
 * beforehand could find it taken by another process in between; one on port
 * 0 cannot.
 */
export function reportedAddress(output: string, prefix: string): string | undefined {
  const at = output.indexOf(prefix);
  if (at < 0) return undefined;
  const end = output.indexOf('\n', at);
  if (end < 0) return undefined;
  return /^\s*(?:on\s+)?(\S+?)(?=,|\s|$)/.exec(output.slice(at + prefix.length, end))?.[1];
}

/** The port of `host:port`, `[v6]:port` or a URL, as {@link reportedAddress} returns it. */
export function portOf(address: string): number {
  const port = Number(/:(\d+)\/?$/.exec(address)?.[1]);
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in "${address}"`);
  return port;
}

/** Where to run a process. */
export interface SpawnOptions {
  /** `taskset -c` CPU list, e.g. `0`; ignored when taskset is unavailable. */
  cpus?: string;
  /** Extra node flags, e.g. `--cpu-prof`. */
  nodeFlags?: string[];
  env?: NodeJS.ProcessEnv;
  /** Working directory (e.g. where `--cpu-prof` writes). */
  cwd?: string;
  /**
   * Another checkout of this repository whose `bench/child.ts` a helper runs
   * (with that checkout's own dependencies), e.g. an earlier commit to compare
   * against; default this one.
   */
  root?: string;
  /**
   * Run the helper from that checkout's compiled `dist/` (what a deployment
   * runs) rather than its sources through tsx, whose transform adds work
   * of its own (a name-keeping helper call for every function created).
   * Default: `LLMMESH_BENCH_COMPILED=1` in the environment (the npm scripts
   * of the cost benchmarks build first and set it).
   */
  compiled?: boolean;
}

/** A running process. */
export interface BenchProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Output so far (stdout and stderr, last 64 KiB). */
  output(): string;
  /** Resolves once the output matches `pattern`; rejects when the process exits first or on timeout. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** CPU seconds used so far. */
  cpuSeconds(): number | undefined;
  stop(): Promise<void>;
}

/** A helper process of `child.ts`. */
export interface HelperProcess extends BenchProcess {
  /** What the helper sent with `ready`. */
  readonly info: Record<string, unknown>;
  /** Sends a command and waits for its answer. */
  request<T = unknown>(cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
}

/** Processes started together and stopped together. */
export interface ProcessGroup {
  readonly pinning: boolean;
  /** Starts `llmmesh ...args`. */
  llmmesh(name: string, args: string[], options?: SpawnOptions): BenchProcess;
  /** Starts a `child.ts` helper and waits until it is ready. */
  helper(
    role: 'router' | 'fake-engine' | 'passthrough',
    config: unknown,
    options?: SpawnOptions,
  ): Promise<HelperProcess>;
  /** Stops every process, newest first. */
  stopAll(): Promise<void>;
}

/** Creates an empty group; `pin` false never uses taskset. */
export function createProcessGroup(pin = true): ProcessGroup {
  const pinning = pin && tasksetAvailable();
  const all: BenchProcess[] = [];

  const start = (name: string, nodeArgs: string[], options: SpawnOptions, ipc: boolean): BenchProcess => {
    const args = [...(options.nodeFlags ?? []), ...nodeArgs];
    const [cmd, argv] =
      pinning && options.cpus
        ? ['taskset', ['-c', options.cpus, process.execPath, ...args]]
        : [process.execPath, args];
    const proc = spawn(cmd, argv, {
      stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LLMMESH_LOG_LEVEL: 'warn', ...options.env },
      cwd: options.cwd,
    });
    let out = '';
    const listeners = new Set<() => void>();
    const onData = (d: Buffer) => {
      out = (out + d.toString('utf8')).slice(-65_536);
      for (const l of listeners) l();
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', onData);
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const p: BenchProcess = {
      name,
      proc,
      pid: proc.pid ?? -1,
      output: () => out,
      waitForOutput(pattern, timeoutMs = 30_000) {
        return new Promise((resolve, reject) => {
          const check = () => {
            const m = pattern.exec(out);
            if (!m) return;
            cleanup();
            resolve(m);
          };
          const timer = setTimeout(() => {
            cleanup();
            reject(new Error(`${name}: no ${String(pattern)} after ${timeoutMs} ms; output:\n${out}`));
          }, timeoutMs);
          const onExit = () => {
            cleanup();
            reject(new Error(`${name} exited (${proc.exitCode}) before ${String(pattern)}; output:\n${out}`));
          };
          function cleanup() {
            clearTimeout(timer);
            listeners.delete(check);
            proc.off('exit', onExit);
          }
          listeners.add(check);
          proc.once('exit', onExit);
          check();
        });
      },
      cpuSeconds: () => (proc.pid ? processCpuSeconds(proc.pid) : undefined),
      async stop() {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      },
    };
    all.push(p);
    return p;
  };

  return {
    pinning,
    llmmesh(name, args, options = {}) {
      return start(name, [LLMMESH_BIN, ...args], options, true);
    },
    async helper(role, config, options = {}) {
      // `--import tsx` resolves from the working directory, so another checkout runs on its own tsx.
      const tree = options.root ?? join(here, fromSource ? '..' : join('..', '..'));
      const compiled = options.compiled ?? process.env.LLMMESH_BENCH_COMPILED === '1';
      const entry = compiled
        ? join(tree, 'dist', 'bench', 'child.js')
        : options.root
          ? join(options.root, 'bench', 'child.ts')
          : join(here, fromSource ? 'child.ts' : 'child.js');
      if (compiled && !existsSync(entry))
        throw new Error(
          `${tree}: no ${join('dist', 'bench', 'child.js')}; build it with \`npm run build\` (a commit too old has none)`,
        );
      const loader = !compiled && (fromSource || options.root) ? ['--import', 'tsx'] : [];
      const spawnOptions = options.root ? { cwd: options.root, ...options } : options;
      const base = start(`${role}`, [...loader, entry, role, JSON.stringify(config)], spawnOptions, true);
      let nextId = 1;
      const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
      const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const onMessage = (m: unknown) => {
          const msg = m as { type?: string; id?: number; result?: unknown; error?: string };
          if (msg.type === 'ready') {
            base.proc.off('exit', onExit);
            resolve(msg as Record<string, unknown>);
            return;
          }
          const p = msg.id === undefined ? undefined : pending.get(msg.id);
          if (!p) return;
          pending.delete(msg.id as number);
          if (msg.error !== undefined) p.reject(new Error(`${role}: ${msg.error}`));
          else p.resolve(msg.result);
        };
        const onExit = () => reject(new Error(`${role} helper exited before ready:\n${base.output()}`));
        base.proc.on('message', onMessage);
        base.proc.once('exit', onExit);
      });
      return {
        ...base,
        info,
        request<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
          const id = nextId++;
          return new Promise<T>((resolve, reject) => {
            const timer = setTimeout(() => {
              pending.delete(id);
              reject(new Error(`${role}: no answer to ${cmd} after ${timeoutMs} ms`));
            }, timeoutMs);
            pending.set(id, {
              resolve: (v) => {
                clearTimeout(timer);
                resolve(v as T);
              },
              reject: (e) => {
                clearTimeout(timer);
                reject(e);
              },
            });
            base.proc.send({ id, cmd, args });
          });
        },
      };
    },
    async stopAll() {
      for (const p of [...all].reverse()) await p.stop();
      all.length = 0;
    },
  };
}

/** Pins this process's threads to `cpus`; returns a function that restores the old mask. */
export function pinSelf(cpus: string): () => void {
  const before = spawnSync('taskset', ['-p', String(process.pid)], { encoding: 'utf8' });
  const mask = /:\s*([0-9a-f]+)\s*$/i.exec(before.stdout ?? '')?.[1];
  spawnSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
  return () => {
    if (mask) spawnSync('taskset', ['-a', '-p', mask, String(process.pid)], { stdio: 'ignore' });
  };
}
