/** `llmmesh sidecar`: runs the sidecar of one inference pod. */
import { createLogger } from '../../common/log.js';
import { startSidecar } from '../../sidecar/server.js';
import { untilStopped } from '../lifecycle.js';
import { type CommandSpec, helpText, num, parseOptions, str } from '../options.js';

export const sidecarCommand: CommandSpec = {
  name: 'sidecar',
  summary:
    "Run a sidecar: serves llmmesh.v1.Engine to routers and forwards to the pod's engine over OpenAI HTTP/SSE.",
  usage: 'llmmesh sidecar --engine-url URL --listen ADDR [--model NAME --version V]',
  options: {
    'engine-url': {
      type: 'string',
      env: 'LLMMESH_ENGINE_URL',
      valueName: 'URL',
      description: "The engine's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000",
    },
    listen: {
      type: 'string',
      env: 'LLMMESH_LISTEN',
      default: '0.0.0.0:7001',
      valueName: 'ADDR',
      description: 'gRPC listen address',
    },
    model: {
      type: 'string',
      env: 'LLMMESH_MODEL',
      valueName: 'NAME',
      description: "Logical model name announced to routers (default: the engine's served model)",
    },
    version: {
      type: 'string',
      env: 'LLMMESH_VERSION',
      default: 'v1',
      valueName: 'V',
      description: 'Model version announced to routers',
    },
    'max-in-flight': {
      type: 'string',
      env: 'LLMMESH_MAX_IN_FLIGHT',
      default: '256',
      valueName: 'N',
      description: 'Requests in flight to the engine before the sidecar queues (≈ vLLM --max-num-seqs)',
    },
    'probe-interval-ms': {
      type: 'string',
      env: 'LLMMESH_PROBE_INTERVAL_MS',
      default: '1000',
      valueName: 'MS',
      description: "Interval of the engine's /health and /metrics probes",
    },
    'engine-api-key': {
      type: 'string',
      env: 'LLMMESH_ENGINE_API_KEY',
      valueName: 'KEY',
      description: 'API key of the engine (vLLM --api-key)',
    },
    'drain-grace-ms': {
      type: 'string',
      env: 'LLMMESH_DRAIN_GRACE_MS',
      default: '30000',
      valueName: 'MS',
      description: 'On SIGTERM, how long in-flight streams may finish',
    },
  },
};

/** Runs the command; returns the exit code. */
export async function runSidecar(argv: string[]): Promise<number> {
  const { values } = parseOptions(sidecarCommand, argv);
  if (values.help) {
    process.stdout.write(helpText(sidecarCommand));
    return 0;
  }
  const engineUrl = str(values, 'engine-url', sidecarCommand, true) as string;
  const log = createLogger('sidecar');
  const sidecar = await startSidecar({
    engineUrl,
    listen: str(values, 'listen', sidecarCommand, true) as string,
    model: str(values, 'model', sidecarCommand),
    version: str(values, 'version', sidecarCommand, true) as string,
    maxInFlight: num(values, 'max-in-flight', sidecarCommand, { min: 1, integer: true }),
    probeIntervalMs: num(values, 'probe-interval-ms', sidecarCommand, { min: 10, integer: true }),
    engineApiKey: str(values, 'engine-api-key', sidecarCommand),
    logger: log,
  });
  const grace = num(values, 'drain-grace-ms', sidecarCommand, { min: 0, integer: true }) ?? 30_000;
  process.stdout.write(`llmmesh sidecar listening on ${sidecar.address}, engine ${engineUrl}\n`);
  await untilStopped('sidecar', async (reason) => {
    log.info('draining', { reason, graceMs: grace });
    await sidecar.drain(grace);
  });
  return 0;
}
