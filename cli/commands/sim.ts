/** `llmmesh sim`: runs the vLLM-compatible simulator (the engine of the local mesh). */
import { createSimServer } from '../../sim/server.js';
import { untilStopped } from '../lifecycle.js';
import { type CommandSpec, helpText, num, parseOptions, str } from '../options.js';

export const simCommand: CommandSpec = {
  name: 'sim',
  summary: "Run the simulator: vLLM's OpenAI-compatible API, metrics and latency, with no GPU.",
  usage: 'llmmesh sim --port N [--served-model-name NAME] [--max-model-len N] [--max-num-seqs N]',
  options: {
    port: {
      type: 'string',
      env: 'LLMMESH_SIM_PORT',
      default: '8000',
      valueName: 'N',
      description: 'HTTP port (vLLM --port)',
    },
    host: {
      type: 'string',
      env: 'LLMMESH_SIM_HOST',
      default: '127.0.0.1',
      valueName: 'HOST',
      description: 'Bind address (vLLM --host)',
    },
    'served-model-name': {
      type: 'string',
      env: 'LLMMESH_SIM_SERVED_MODEL_NAME',
      default: 'llama-3-8b-chat',
      valueName: 'NAME',
      description: 'Model name the API serves (vLLM --served-model-name)',
    },
    'max-model-len': {
      type: 'string',
      env: 'LLMMESH_SIM_MAX_MODEL_LEN',
      default: '8192',
      valueName: 'N',
      description: 'Context length (vLLM --max-model-len)',
    },
    'max-num-seqs': {
      type: 'string',
      env: 'LLMMESH_SIM_MAX_NUM_SEQS',
      default: '256',
      valueName: 'N',
      description: 'Sequences decoded at once (vLLM --max-num-seqs)',
    },
    'load-delay-ms': {
      type: 'string',
      env: 'LLMMESH_SIM_LOAD_DELAY_MS',
      default: '0',
      valueName: 'MS',
      description: 'Simulated model load: /health answers 503 until it has passed',
    },
    'inter-token-latency-ms': {
      type: 'string',
      env: 'LLMMESH_SIM_INTER_TOKEN_LATENCY_MS',
      default: '10',
      valueName: 'MS',
      description: 'Decode time per token',
    },
    'time-to-first-token-ms': {
      type: 'string',
      env: 'LLMMESH_SIM_TIME_TO_FIRST_TOKEN_MS',
      default: '20',
      valueName: 'MS',
      description: 'Base prefill time',
    },
    'time-scale': {
      type: 'string',
      env: 'LLMMESH_SIM_TIME_SCALE',
      default: '1',
      valueName: 'X',
      description: 'Multiplies every simulated delay (0 = as fast as possible)',
    },
  },
};

/** Runs the command; returns the exit code. */
export async function runSim(argv: string[]): Promise<number> {
  const { values } = parseOptions(simCommand, argv);
  if (values.help) {
    process.stdout.write(helpText(simCommand));
    return 0;
  }
  const spec = simCommand;
  const sim = createSimServer({
    servedModelName: str(values, 'served-model-name', spec, true) as string,
    maxModelLen: num(values, 'max-model-len', spec, { min: 16, integer: true }),
    maxNumSeqs: num(values, 'max-num-seqs', spec, { min: 1, integer: true }),
    loadDelayMs: num(values, 'load-delay-ms', spec, { min: 0 }),
    interTokenLatencyMs: num(values, 'inter-token-latency-ms', spec, { min: 0 }),
    timeToFirstTokenMs: num(values, 'time-to-first-token-ms', spec, { min: 0 }),
    timeScale: num(values, 'time-scale', spec, { min: 0 }),
  });
  const port = num(values, 'port', spec, { min: 0, max: 65535, integer: true }) ?? 8000;
  const bound = await sim.listen(port, str(values, 'host', spec) ?? '127.0.0.1');
  process.stdout.write(`llmmesh sim serving on ${bound.url}\n`);
  await untilStopped('sim', () => sim.close());
  return 0;
}
