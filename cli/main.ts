/** The `llmmesh` command: one executable, one subcommand per component. */
import { ConfigError } from '../router/config/load.js';
import { benchCommand, runBench } from './commands/bench.js';
import { generateCommand, runGenerate } from './commands/generate.js';
import { routerCommand, runRouter } from './commands/router.js';
import { runSidecar, sidecarCommand } from './commands/sidecar.js';
import { runSim, simCommand } from './commands/sim.js';
import { runStart, startCommand } from './commands/start.js';
import { runStatus, statusCommand } from './commands/status.js';
import { type CommandSpec, UsageError } from './options.js';

const COMMANDS: Array<[CommandSpec, (argv: string[]) => Promise<number>]> = [
  [startCommand, runStart],
  [routerCommand, runRouter],
  [sidecarCommand, runSidecar],
  [simCommand, runSim],
  [generateCommand, runGenerate],
  [statusCommand, runStatus],
  [benchCommand, runBench],
];

function usage(): string {
  const lines = [
    'llmmesh: a gRPC router mesh for LLM inference',
    '',
    'Usage: llmmesh <command> [options]',
    '',
    'Commands:',
  ];
  for (const [spec] of COMMANDS) lines.push(`  ${spec.name.padEnd(10)} ${spec.summary}`);
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
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const entry = COMMANDS.find(([spec]) => spec.name === name);
  if (!entry) {
    process.stderr.write(`llmmesh: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  try {
    return await entry[1](rest);
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
    return 1;
  }
}
