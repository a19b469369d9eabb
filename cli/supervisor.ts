/**
 * The process supervisor behind `llmmesh start`: runs each component of the
 * local mesh as a child process in its own process group, restarts one that
 * crashes with exponential backoff (as a kubelet restarts a container), and
 * stops them in dependency order.
 *
 * Own process groups matter for Ctrl-C: a terminal sends SIGINT to its whole
 * foreground group, so children sharing the launcher's group would start
 * stopping on their own, out of order, and take the launcher's SIGTERM as a
 * second, forcing signal. Detached, only the launcher hears the terminal.
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** Restart delays: 1 s doubling to 30 s (a kubelet uses 10 s to 5 min; a laptop mesh wants faster). */
export const RESTART_BASE_DELAY_MS = 1_000;
/** Longest delay between restarts. */
export const RESTART_MAX_DELAY_MS = 30_000;
/** A process that ran this long before crashing starts its backoff afresh. */
export const RESTART_RESET_AFTER_MS = 60_000;

/** Delay before restart number `restarts + 1` of a process that keeps crashing. */
export function restartDelayMs(restarts: number): number {
  return Math.min(RESTART_MAX_DELAY_MS, RESTART_BASE_DELAY_MS * 2 ** Math.max(0, restarts));
}

/** One supervised process. */
export interface SupervisedChild {
  readonly name: string;
  /** The current process (replaced on restart). */
  readonly proc: ChildProcess;
  /** Restarts so far. */
  readonly restarts: number;
  /** The last output lines, for error messages. */
  readonly tail: string[];
  /** Resolves when the current process exits. */
  exited(): Promise<number | null>;
}

/** Options of {@link createSupervisor}. */
export interface SupervisorOptions {
  /** The `llmmesh` executable. */
  bin: string;
  /** Environment of every child. */
  env: NodeJS.ProcessEnv;
  /** Prints one line of the launcher's own output (and each child's, prefixed with its name). */
  out(line: string): void;
  /** Called when a child exits unexpectedly while restarts are off (before the mesh is up). */
  onUnexpectedExit(child: SupervisedChild, code: string): void;
  /** Timers; injectable so tests can drive backoff. */
  setTimer?: (fn: () => void, ms: number) => { unref?: () => void };
  now?: () => number;
}

/** A group of supervised children. */
export interface Supervisor {
  children: SupervisedChild[];
  /** Starts `llmmesh ...args` as `name`. */
  spawn(name: string, args: string[]): SupervisedChild;
  /** From now on, restart a child that exits (after the mesh is up). */
  enableRestarts(): void;
  /** Stops groups in order (each group concurrently): SIGTERM, then SIGKILL of its process group after `killAfterMs`. */
  stop(groups: SupervisedChild[][], killAfterMs: number): Promise<void>;
  /** SIGKILLs every child's process group at once (a forced stop). */
  kill(): void;
}

interface ChildState {
  name: string;
  args: string[];
  proc: ChildProcess;
  restarts: number;
  startedAt: number;
  tail: string[];
  exit: Promise<number | null>;
}

/** Creates a supervisor; see the module comment. */
export function createSupervisor(options: SupervisorOptions): Supervisor {
  const setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
  const now = options.now ?? Date.now;
  const states: ChildState[] = [];
  const children: SupervisedChild[] = [];
  let restartsOn = false;
  let stopping = false;

  const launch = (state: ChildState) => {
    const proc = spawn(process.execPath, [options.bin, ...state.args], {
      // The IPC channel lets a child notice when the launcher dies, however it dies.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: options.env,
      detached: true,
    });
    const pipe = (stream: NodeJS.ReadableStream | null) => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (d: string) => {
        buf += d;
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          state.tail.push(line);
          if (state.tail.length > 20) state.tail.shift();
          options.out(`[${state.name}] ${line}`);
          nl = buf.indexOf('\n');
        }
      });
    };
    pipe(proc.stdout);
    pipe(proc.stderr);
    state.proc = proc;
    state.startedAt = now();
    state.exit = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        resolve(code);
        if (stopping) return;
        const how = signal ? `signal ${signal}` : `code ${code}`;
        if (!restartsOn) {
          options.onUnexpectedExit(view(state), how);
          return;
        }
        // Ran long enough: this crash is news, not a crash loop.
        if (now() - state.startedAt >= RESTART_RESET_AFTER_MS) state.restarts = 0;
        const delay = restartDelayMs(state.restarts);
        options.out(
          `llmmesh start: ${state.name} exited with ${how}; restarting in ${(delay / 1000).toFixed(1)} s (restart ${state.restarts + 1}); the mesh keeps serving`,
        );
        setTimer(() => {
          if (stopping) return;
          state.restarts += 1;
          launch(state);
          options.out(`llmmesh start: ${state.name} restarted (pid ${state.proc.pid})`);
        }, delay).unref?.();
      }),
    );
  };

  const view = (state: ChildState): SupervisedChild => ({
    name: state.name,
    get proc() {
      return state.proc;
    },
    get restarts() {
      return state.restarts;
    },
    tail: state.tail,
    exited: () => state.exit,
  });

  const alive = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;
  const killGroup = (p: ChildProcess, signal: NodeJS.Signals) => {
    if (p.pid === undefined) return;
    try {
      process.kill(-p.pid, signal);
    } catch {
      // Already gone.
    }
  };

  return {
    children,
    spawn(name, args) {
      const state: ChildState = {
        name,
        args,
        proc: undefined as unknown as ChildProcess,
        restarts: 0,
        startedAt: 0,
        tail: [],
        exit: Promise.resolve(null),
      };
      launch(state);
      states.push(state);
      const child = view(state);
      children.push(child);
      return child;
    },
    enableRestarts() {
      restartsOn = true;
    },
    async stop(groups, killAfterMs) {
      stopping = true;
      for (const group of groups) {
        await Promise.all(
          group.map(async (c) => {
            const p = c.proc;
            if (!alive(p)) return;
            p.kill('SIGTERM');
            const timer = setTimeout(() => killGroup(p, 'SIGKILL'), killAfterMs);
            await c.exited();
            clearTimeout(timer);
          }),
        );
      }
    },
    kill() {
      stopping = true;
      // Only live leaders: a dead one's group id may belong to a new process by now.
      for (const s of states) if (alive(s.proc)) killGroup(s.proc, 'SIGKILL');
    },
  };
}
