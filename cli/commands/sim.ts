/** `llmmesh sim`: runs the vLLM-compatible simulator (the engine of the local mesh). */

import { startTelemetry } from '../../common/telemetry.js';
import type { SimFaults } from '../../sim/faults.js';
import { DEFAULT_PRESET_NAME, SIM_PRESETS } from '../../sim/presets.js';
import { createSimServer, type SimOptions } from '../../sim/server.js';
import { untilStopped } from '../lifecycle.js';
import type { MeshConfig } from '../mesh-config.js';
import {
  type CommandSpec,
  helpText,
  num,
  type ParsedOptions,
  parseOptions,
  str,
  UsageError,
} from '../options.js';

/** Flags of `llmmesh sim`, named after vLLM's where vLLM has the knob; each has an `LLMMESH_SIM_...` variable. */
export const simCommand: CommandSpec = {
  name: 'sim',
  summary: "Run the simulator: vLLM's OpenAI-compatible API, metrics and latency, with no GPU.",
  usage:
    'llmmesh sim --port N [--preset NAME] [--served-model-name NAME] [--max-model-len N] [--max-num-seqs N] [--time-scale X] [--fault-... ]',
  options: {
    port: {
      type: 'string',
      env: 'LLMMESH_SIM_PORT',
      default: '8000',
      valueName: 'N',
      description: 'HTTP port, 0 for any free one (vLLM --port)',
    },
    host: {
      type: 'string',
      env: 'LLMMESH_SIM_HOST',
      default: '127.0.0.1',
      valueName: 'HOST',
      description: 'Bind address (vLLM --host)',
    },
    preset: {
      type: 'string',
      env: 'LLMMESH_SIM_PRESET',
      default: DEFAULT_PRESET_NAME,
      valueName: 'NAME',
      description: `Model and GPUs to behave like: ${Object.keys(SIM_PRESETS).join(', ')}`,
    },
    'list-presets': {
      type: 'boolean',
      env: 'LLMMESH_SIM_LIST_PRESETS',
      description: 'Print the presets with their values and sources, and exit',
    },
    'served-model-name': {
      type: 'string',
      env: 'LLMMESH_SIM_SERVED_MODEL_NAME',
      default: 'llama-3-8b-chat',
      valueName: 'NAME',
      description: 'Model name the API serves (vLLM --served-model-name)',
    },
    model: {
      type: 'string',
      env: 'LLMMESH_SIM_MODEL',
      valueName: 'NAME',
      description: "Model reported as root by /v1/models (vLLM --model; default: the preset's)",
    },
    'max-model-len': {
      type: 'string',
      env: 'LLMMESH_SIM_MAX_MODEL_LEN',
      valueName: 'N',
      description:
        "Context length (vLLM --max-model-len; default: the model's own, 131072 for the presets, or less if the KV cache holds less)",
    },
    'max-num-seqs': {
      type: 'string',
      env: 'LLMMESH_SIM_MAX_NUM_SEQS',
      valueName: 'N',
      description: "Sequences running at once, the rest wait (vLLM --max-num-seqs; default: the preset's)",
    },
    'max-num-batched-tokens': {
      type: 'string',
      env: 'LLMMESH_SIM_MAX_NUM_BATCHED_TOKENS',
      valueName: 'N',
      description:
        "Tokens per engine step; longer prompts prefill in chunks (vLLM --max-num-batched-tokens; default: the preset's)",
    },
    'block-size': {
      type: 'string',
      env: 'LLMMESH_SIM_BLOCK_SIZE',
      default: '16',
      valueName: 'N',
      description: 'Tokens per KV-cache block (vLLM --block-size)',
    },
    'num-gpu-blocks-override': {
      type: 'string',
      env: 'LLMMESH_SIM_NUM_GPU_BLOCKS_OVERRIDE',
      valueName: 'N',
      description: "KV-cache blocks (vLLM --num-gpu-blocks-override; default: the preset's capacity)",
    },
    'no-enable-prefix-caching': {
      type: 'boolean',
      env: 'LLMMESH_SIM_NO_ENABLE_PREFIX_CACHING',
      description: 'Turn automatic prefix caching off (vLLM --no-enable-prefix-caching)',
    },
    'load-delay-ms': {
      type: 'string',
      env: 'LLMMESH_SIM_LOAD_DELAY_MS',
      default: '0',
      valueName: 'MS',
      description:
        "Simulated model load: /health answers 503 until it has passed; 'preset' for the preset's measured time",
    },
    'inter-token-latency-ms': {
      type: 'string',
      env: 'LLMMESH_SIM_INTER_TOKEN_LATENCY_MS',
      valueName: 'MS',
      description: "Fixed decode time per token, whatever the batch (replaces the preset's step model)",
    },
    'time-to-first-token-ms': {
      type: 'string',
      env: 'LLMMESH_SIM_TIME_TO_FIRST_TOKEN_MS',
      valueName: 'MS',
      description: "Fixed base prefill step time (replaces the preset's step model)",
    },
    'prefill-time-per-token-ms': {
      type: 'string',
      env: 'LLMMESH_SIM_PREFILL_TIME_PER_TOKEN_MS',
      valueName: 'MS',
      description: "Fixed prefill time per uncached prompt token (replaces the preset's step model)",
    },
    'time-scale': {
      type: 'string',
      env: 'LLMMESH_SIM_TIME_SCALE',
      default: '1',
      valueName: 'X',
      description: 'Multiplies every simulated delay: 0.1 runs 10x faster, 0 as fast as possible',
    },
    'fault-error-rate': {
      type: 'string',
      env: 'LLMMESH_SIM_FAULT_ERROR_RATE',
      valueName: 'P',
      description: 'Share of generation requests answered with --fault-error-status, 0..1',
    },
    'fault-error-status': {
      type: 'string',
      env: 'LLMMESH_SIM_FAULT_ERROR_STATUS',
      valueName: 'CODE',
      description: 'HTTP status of injected errors: 429, 500 or 503 (default 500)',
    },
    'fault-stall-after-tokens': {
      type: 'string',
      env: 'LLMMESH_SIM_FAULT_STALL_AFTER_TOKENS',
      valueName: 'N',
      description: 'Streams stop emitting after N tokens and stay open',
    },
    'fault-crash-after-tokens': {
      type: 'string',
      env: 'LLMMESH_SIM_FAULT_CRASH_AFTER_TOKENS',
      valueName: 'N',
      description: 'The process exits (code 1) once a stream has emitted N tokens',
    },
    'fault-slow-factor': {
      type: 'string',
      env: 'LLMMESH_SIM_FAULT_SLOW_FACTOR',
      valueName: 'X',
      description: 'Multiplies every engine step (2 = half speed)',
    },
    'fault-health-status': {
      type: 'string',
      env: 'LLMMESH_SIM_FAULT_HEALTH_STATUS',
      valueName: 'CODE',
      description: '/health answers this (200 or 503) whatever the model load',
    },
  },
};

/** What the command line asks for: where to listen and the simulator's options. */
export interface SimCommandConfig {
  port: number;
  host: string;
  options: SimOptions;
}

/** Reads the flags and environment of `llmmesh sim` into server options; throws a UsageError naming a bad flag. */
export function simConfigFromArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): SimCommandConfig {
  const { values } = parseOptions(simCommand, argv, env);
  return simConfigFromValues(values, env);
}

function simConfigFromValues(values: ParsedOptions, env: NodeJS.ProcessEnv = process.env): SimCommandConfig {
  const spec = simCommand;
  const preset = str(values, 'preset', spec) ?? DEFAULT_PRESET_NAME;
  if (!SIM_PRESETS[preset]) {
    throw new UsageError(
      `sim: --preset must be one of ${Object.keys(SIM_PRESETS).join(', ')}, got "${preset}"`,
    );
  }
  const count = (name: string, min = 1) => num(values, name, spec, { min, integer: true });
  const loadDelay = str(values, 'load-delay-ms', spec);
  const faults: Partial<SimFaults> = {
    errorRate: num(values, 'fault-error-rate', spec, { min: 0, max: 1 }),
    errorStatus: oneOf(values, 'fault-error-status', [429, 500, 503] as const),
    stallAfterTokens: count('fault-stall-after-tokens', 0),
    crashAfterTokens: count('fault-crash-after-tokens', 0),
    slowFactor: num(values, 'fault-slow-factor', spec, { min: Number.MIN_VALUE }),
    healthStatus: oneOf(values, 'fault-health-status', [200, 503] as const),
  };
  const options: SimOptions = {
    servedModelName: str(values, 'served-model-name', spec, true) as string,
    preset,
    model: str(values, 'model', spec),
    maxModelLen: count('max-model-len', 16),
    maxNumSeqs: count('max-num-seqs'),
    maxNumBatchedTokens: count('max-num-batched-tokens'),
    blockSize: count('block-size'),
    numGpuBlocks: count('num-gpu-blocks-override'),
    enablePrefixCaching: values['no-enable-prefix-caching'] === true ? false : undefined,
    loadDelayMs: loadDelay === 'preset' ? 'preset' : num(values, 'load-delay-ms', spec, { min: 0 }),
    interTokenLatencyMs: num(values, 'inter-token-latency-ms', spec, { min: 0 }),
    timeToFirstTokenMs: num(values, 'time-to-first-token-ms', spec, { min: 0 }),
    prefillTimePerTokenMs: num(values, 'prefill-time-per-token-ms', spec, { min: 0 }),
    timeScale: num(values, 'time-scale', spec, { min: 0 }),
    // As vLLM: `GET /server_info` (with max_num_seqs) only in its dev mode.
    ...(env.VLLM_SERVER_DEV_MODE === '1' ? { serverInfo: true } : {}),
    faults: Object.fromEntries(Object.entries(faults).filter(([, v]) => v !== undefined)),
    onCrash: ({ afterTokens }) => {
      process.stderr.write(`llmmesh sim: simulated crash after ${afterTokens} tokens (fault injection)\n`);
      process.exit(1);
    },
  };
  return {
    port: num(values, 'port', spec, { min: 0, max: 65535, integer: true }) ?? 8000,
    host: str(values, 'host', spec) ?? '127.0.0.1',
    options,
  };
}

/**
 * The `llmmesh sim` flags for one pod of a mesh file (its `sim` settings over
 * the mesh-wide ones), without the listen address and model name.
 */
export function simArgsFromMesh(sim: Partial<MeshConfig['sim']>): string[] {
  const args: string[] = [];
  const flag = (name: string, value: number | string | undefined) => {
    if (value !== undefined) args.push(`--${name}`, String(value));
  };
  flag('preset', sim.preset);
  flag('time-scale', sim.time_scale);
  flag('max-model-len', sim.max_model_len);
  flag('max-num-seqs', sim.max_num_seqs);
  flag('max-num-batched-tokens', sim.max_num_batched_tokens);
  flag('block-size', sim.block_size);
  flag('num-gpu-blocks-override', sim.num_gpu_blocks_override);
  flag('load-delay-ms', sim.load_delay_ms);
  flag('inter-token-latency-ms', sim.inter_token_latency_ms);
  flag('time-to-first-token-ms', sim.time_to_first_token_ms);
  const faults = sim.faults ?? {};
  flag('fault-error-rate', faults.error_rate);
  flag('fault-error-status', faults.error_status);
  flag('fault-stall-after-tokens', faults.stall_after_tokens);
  flag('fault-crash-after-tokens', faults.crash_after_tokens);
  flag('fault-slow-factor', faults.slow_factor);
  flag('fault-health-status', faults.health_status);
  return args;
}

function oneOf<T extends number>(values: ParsedOptions, name: string, allowed: readonly T[]): T | undefined {
  const raw = str(values, name, simCommand);
  if (raw === undefined) return undefined;
  const n = Number(raw) as T;
  if (!allowed.includes(n))
    throw new UsageError(`sim: --${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
  return n;
}

function presetList(): string {
  const lines: string[] = [];
  for (const p of Object.values(SIM_PRESETS)) {
    const c = p.stepCost;
    lines.push(
      `${p.name}${p.name === DEFAULT_PRESET_NAME ? ' (default)' : ''}: ${p.description}`,
      `  model ${p.model}; max_num_seqs ${p.maxNumSeqs}; max_num_batched_tokens ${p.maxNumBatchedTokens}; KV ${p.kvCacheTokens} tokens; context up to ${p.nativeMaxModelLen}; load ${p.loadDelayMs / 1000} s`,
      `  step ms = ${c.baseMs} + ${c.prefillMsPerToken}·prefill tokens + ${c.attentionMsPerMillionPositions}·prefill positions/1e6 + ${c.decodeMsPerSequence}·decoding seqs + ${c.contextMsPerThousandTokens}·context tokens/1000`,
      ...p.sources.map((s) => `  - ${s.what} [${s.where}]`),
      '',
    );
  }
  return `${lines.join('\n')}`;
}

/** Runs the command; returns the exit code. */
export async function runSim(argv: string[]): Promise<number> {
  const { values } = parseOptions(simCommand, argv);
  if (values.help) {
    process.stdout.write(helpText(simCommand));
    return 0;
  }
  if (values['list-presets'] === true) {
    process.stdout.write(presetList());
    return 0;
  }
  const { port, host, options } = simConfigFromValues(values);
  const telemetry = startTelemetry('llmmesh-sim');
  const sim = createSimServer({ ...options, tracer: telemetry.tracer });
  const bound = await sim.listen(port, host);
  process.stdout.write(`llmmesh sim serving on ${bound.url} (preset ${options.preset})\n`);
  await untilStopped('sim', async () => {
    await sim.close();
    await telemetry.shutdown();
  });
  return 0;
}
