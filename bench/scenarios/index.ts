/** The benchmark scenarios `llmmesh bench --scenario NAME` runs. */
import type { BenchReport } from '../report.js';
import type { ScenarioContext } from './context.js';
import { runOverhead } from './overhead.js';
import { runOverload } from './overload.js';
import { runRouting } from './routing.js';
import { runScale } from './scale.js';
import { runThroughput } from './throughput.js';

export type { ScenarioContext } from './context.js';

/** Scenario names, in the order BENCHMARKS.md presents them. */
export const SCENARIO_NAMES: readonly string[] = ['overhead', 'throughput', 'routing', 'scale', 'overload'];

/** Runs scenario `name`. */
export async function runScenario(name: string, ctx: ScenarioContext): Promise<BenchReport> {
  switch (name) {
    case 'overhead':
      return runOverhead(ctx);
    case 'throughput':
      return runThroughput(ctx);
    case 'routing':
      return runRouting(ctx);
    case 'scale':
      return runScale(ctx);
    case 'overload':
      return runOverload(ctx);
    default:
      throw new RangeError(`unknown scenario "${name}" (${SCENARIO_NAMES.join(', ')})`);
  }
}
