/**
 * The `llmmesh` command: one executable, one subcommand per component.
 * Commands load lazily: running `llmmesh router` loads the router and nothing
 * of the simulator or the benchmarks, so one command's dependencies never
 * stop another from starting.
 */
import { ConfigError } from '../router/config/load.js';
import { addressInUseHint } from './address-in-use.js';
import { type CommandSpec, UsageError } from './options.js';

interface Command {
  spec: CommandSpec;
  run: (argv: string[]) => Promise<number>;
}

const COMMANDS: Array<[string, () => Promise<Command>]> = [
  [
    'start',
    async () => {
      const m = await import('./commands/start.js');
      return { spec: m.startCommand, run: m.runStart };
    },
  ],
  [
    'router',
    async () => {
      const m = await import('./commands/router.js');
      return { spec: m.routerCommand, run: m.runRouter };
    },
  ],
  [
    'sidecar',
    async () => {
      const m = await import('./commands/sidecar.js');
      return { spec: m.sidecarCommand, run: m.runSidecar };
    },
  ],
  [
    'sim',
    async () => {
      const m = await import('./commands/sim.js');
      return { spec: m.simCommand, run: m.runSim };
    },
  ],
  [
    'generate',
    async () => {
      const m = await import('./commands/generate.js');
      return { spec: m.generateCommand, run: m.runGenerate };
    },
  ],
  [
    'status',
    async () => {
      const m = await import('./commands/status.js');
      return { spec: m.statusCommand, run: m.runStatus };
    },
  ],
  [
    'canary',
    async () => {
      const m = await import('./commands/canary.js');
      return { spec: m.canaryCommand, run: m.runCanary };
    },
  ],
  [
    'bench',
    async () => {
      const m = await import('./commands/bench.js');
      return { spec: m.benchCommand, run: m.runBench };
    },
  ],
];

/** The overview of every command (loads them all: only for help). */
async function usage(): Promise<string> {
  const lines = [
    'llmmesh: a gRPC router mesh for LLM inference',
    '',
    'Usage: llmmesh <command> [options]',
    '',
    'Commands:',
  ];
  for (const [name, load] of COMMANDS) {
    let summary: string;
    try {
      summary = (await load()).spec.summary;
    } catch (err) {
      summary = `(cannot load: ${(err as Error).message})`;
    }
    lines.push(`  ${name.padEnd(10)} ${summary}`);
  }
  lines.push(
    '',
    'Run `llmmesh <command> --help` for its options (each has an LLMMESH_... environment variable).',
  );
  return `${lines.join('\n')}\n`;
}

/** Runs the command line; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(await usage());
    return name ? 0 : 2;
  }
  const entry = COMMANDS.find(([n]) => n === name);
  if (!entry) {
    process.stderr.write(`llmmesh: unknown command "${name}"\n\n${await usage()}`);
    return 2;
  }
  try {
    const command = await entry[1]();
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`llmmesh ${err.message}\nRun \`llmmesh ${name} --help\` for usage.\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`llmmesh ${name}: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`llmmesh ${name}: ${(err as Error).message ?? String(err)}\n`);
    const hint = addressInUseHint(name, err);
    if (hint) process.stderr.write(`${hint}\n`);
    return 1;
  }
}
