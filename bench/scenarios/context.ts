/** What every benchmark scenario gets from `llmmesh bench --scenario`. */
import type { LoadProgress } from '../load-generator.js';

/** The context of a scenario run. */
export interface ScenarioContext {
  /** A short run (seconds) to check the setup; its numbers are not to be quoted. */
  quick: boolean;
  /** overhead: pin the measured proxy alone on core 0, the rest on core 1 (where taskset exists). */
  pin?: boolean;
  /** The command line, for the report. */
  command: string;
  signal: AbortSignal;
  /** One line of news (setup steps, findings). */
  log(line: string): void;
  onProgress?: (label: string, p: LoadProgress) => void;
  /** Where the measured router process writes a V8 CPU profile (`node --cpu-prof`), if anywhere. */
  cpuProfDir?: string;
  /** The scenario's settings file, when it has one (routing: `routing.yaml`). */
  configPath?: string;
}
