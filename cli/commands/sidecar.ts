/** `llmmesh sidecar`: runs the sidecar of one inference pod. */
import { createLogger } from '../../common/log.js';
import { startTelemetry } from '../../common/telemetry.js';
import type { ServerTlsFiles } from '../../common/tls.js';
import { adminDisabled } from '../../sidecar/admin-server.js';
import { DEFAULT_DRAIN_GRACE_MS, DEFAULT_DRAIN_HANDBACK_MS, startSidecar } from '../../sidecar/server.js';
import { untilStopped } from '../lifecycle.js';
import {
  type CommandSpec,
  helpText,
  num,
  type ParsedOptions,
  parseOptions,
  str,
  UsageError,
} from '../options.js';

export const sidecarCommand: CommandSpec = {
  name: 'sidecar',
  summary:
    "Run a sidecar: serves llmmesh.v1.Engine to routers and forwards to the pod's engine over OpenAI HTTP/SSE.",
  usage: 'llmmesh sidecar --engine-url URL --listen ADDR [--model NAME --version V] [--redis URL]',
  options: {
    'tls-cert': {
      type: 'string',
      env: 'LLMMESH_TLS_CERT',
      valueName: 'FILE',
      description: 'PEM certificate of the Engine API (TLS on when set; the file is re-read when it changes)',
    },
    'tls-key': {
      type: 'string',
      env: 'LLMMESH_TLS_KEY',
      valueName: 'FILE',
      description: 'PEM private key for --tls-cert',
    },
    'tls-client-ca': {
      type: 'string',
      env: 'LLMMESH_TLS_CLIENT_CA',
      valueName: 'FILE',
      description: 'Require router client certificates signed by this CA (mutual TLS)',
    },
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
    admin: {
      type: 'string',
      env: 'LLMMESH_ADMIN',
      default: '0.0.0.0:9091',
      valueName: 'ADDR',
      description:
        'Admin HTTP address: /metrics, /healthz, /readyz, /status (all interfaces, for Prometheus and kubelet probes; "off" disables)',
    },
    'admin-token-sha256': {
      type: 'string',
      env: 'LLMMESH_ADMIN_TOKEN_SHA256',
      valueName: 'HEX',
      description:
        'Require Authorization: Bearer <token> whose SHA-256 is HEX on the admin port, except /healthz and /readyz',
    },
    redis: {
      type: 'string',
      env: 'LLMMESH_REDIS_URL',
      valueName: 'URL',
      description:
        'Redis (redis://host:6379): shared L2 response cache and registration for redis discovery; optional',
    },
    'max-in-flight': {
      type: 'string',
      env: 'LLMMESH_MAX_IN_FLIGHT',
      default: 'auto',
      valueName: 'N',
      description:
        "Requests in flight to the engine before the sidecar queues; auto = the engine's max_num_seqs when it publishes it, else 256",
    },
    'max-queue': {
      type: 'string',
      env: 'LLMMESH_MAX_QUEUE',
      default: '1024',
      valueName: 'N',
      description: 'Requests that may wait in the sidecar; beyond, RESOURCE_EXHAUSTED with a retry pushback',
    },
    'queue-pushback-ms': {
      type: 'string',
      env: 'LLMMESH_QUEUE_PUSHBACK_MS',
      default: '500',
      valueName: 'MS',
      description: 'grpc-retry-pushback-ms sent when the queue is full',
    },
    'probe-interval-ms': {
      type: 'string',
      env: 'LLMMESH_PROBE_INTERVAL_MS',
      default: '500',
      valueName: 'MS',
      description:
        "Interval of the engine's /health and /metrics scrape (one loop however many routers watch)",
    },
    'report-interval-ms': {
      type: 'string',
      env: 'LLMMESH_REPORT_INTERVAL_MS',
      default: '250',
      valueName: 'MS',
      description: 'Load reports go out on every change and at least this often',
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
      default: String(DEFAULT_DRAIN_GRACE_MS),
      valueName: 'MS',
      description:
        'On SIGTERM, how long in-flight streams may finish (keep below terminationGracePeriodSeconds)',
    },
    'drain-handback-ms': {
      type: 'string',
      env: 'LLMMESH_DRAIN_HANDBACK_MS',
      default: String(DEFAULT_DRAIN_HANDBACK_MS),
      valueName: 'MS',
      description:
        'Streams still running this long before the drain grace ends are handed back to the router, which continues them on another pod (at most half the grace)',
    },
    'response-cache': {
      type: 'string',
      env: 'LLMMESH_RESPONSE_CACHE',
      default: 'on',
      valueName: 'on|off',
      description: 'Cache answers to deterministic requests (temperature 0 or a seed)',
    },
    'cache-ttl-ms': {
      type: 'string',
      env: 'LLMMESH_CACHE_TTL_MS',
      default: '600000',
      valueName: 'MS',
      description: 'Lifetime of a cached answer (memory and Redis)',
    },
    'cache-max-bytes': {
      type: 'string',
      env: 'LLMMESH_CACHE_MAX_BYTES',
      default: String(64 * 1024 * 1024),
      valueName: 'BYTES',
      description: 'Bound of the in-memory (L1) response cache; 0 keeps Redis only',
    },
    'cache-key-prefix': {
      type: 'string',
      env: 'LLMMESH_CACHE_KEY_PREFIX',
      default: 'llmmesh:cache:',
      valueName: 'PREFIX',
      description: 'Redis key prefix of the response cache (pods sharing it must agree)',
    },
    'redis-timeout-ms': {
      type: 'string',
      env: 'LLMMESH_REDIS_TIMEOUT_MS',
      default: '50',
      valueName: 'MS',
      description: 'Bound of each Redis command; a slow Redis is skipped, never waited for',
    },
    advertise: {
      type: 'string',
      env: 'LLMMESH_ADVERTISE',
      valueName: 'ADDR',
      description:
        "Address registered for redis discovery (default: the listen address; a wildcard host becomes this host's IP)",
    },
    'discovery-prefix': {
      type: 'string',
      env: 'LLMMESH_DISCOVERY_PREFIX',
      default: 'llmmesh:endpoints:',
      valueName: 'PREFIX',
      description: 'Redis key prefix of discovery registrations (routers must agree)',
    },
    'registration-ttl-ms': {
      type: 'string',
      env: 'LLMMESH_REGISTRATION_TTL_MS',
      default: '10000',
      valueName: 'MS',
      description: 'TTL of the registration key; a dead sidecar disappears within it',
    },
    'heartbeat-ms': {
      type: 'string',
      env: 'LLMMESH_HEARTBEAT_MS',
      default: '3000',
      valueName: 'MS',
      description: 'Registration refresh interval',
    },
    'prefix-index-blocks': {
      type: 'string',
      env: 'LLMMESH_PREFIX_INDEX_BLOCKS',
      valueName: 'N',
      description:
        "Fixed prefix-index size in 64-character blocks (default: from the engine's KV capacity, blocks × block size × 4 chars per token / 64)",
    },
  },
};

function onOff(values: ParsedOptions, name: string): boolean {
  const v = str(values, name, sidecarCommand)?.toLowerCase() ?? 'on';
  if (['on', 'true', 'yes', '1'].includes(v)) return true;
  if (['off', 'false', 'no', '0'].includes(v)) return false;
  throw new UsageError(`sidecar: --${name} must be on or off, got "${v}"`);
}

/** Runs the command; returns the exit code. */
export async function runSidecar(argv: string[]): Promise<number> {
  const { values } = parseOptions(sidecarCommand, argv);
  if (values.help) {
    process.stdout.write(helpText(sidecarCommand));
    return 0;
  }
  const spec = sidecarCommand;
  const engineUrl = str(values, 'engine-url', spec, true) as string;
  const maxInFlightRaw = str(values, 'max-in-flight', spec);
  const maxInFlight =
    maxInFlightRaw === undefined || maxInFlightRaw === 'auto'
      ? undefined
      : num(values, 'max-in-flight', spec, { min: 1, integer: true });
  const admin = str(values, 'admin', spec);
  const log = createLogger('sidecar');
  const telemetry = startTelemetry('llmmesh-sidecar');
  const sidecar = await startSidecar({
    engineUrl,
    tracer: telemetry.tracer,
    tls: tlsFromFlags(values),
    listen: str(values, 'listen', spec, true) as string,
    model: str(values, 'model', spec),
    version: str(values, 'version', spec, true) as string,
    maxInFlight,
    maxQueue: num(values, 'max-queue', spec, { min: 0, integer: true }),
    queuePushbackMs: num(values, 'queue-pushback-ms', spec, { min: 0, integer: true }),
    probeIntervalMs: num(values, 'probe-interval-ms', spec, { min: 10, integer: true }),
    reportIntervalMs: num(values, 'report-interval-ms', spec, { min: 10, integer: true }),
    engineApiKey: str(values, 'engine-api-key', spec),
    admin: adminDisabled(admin) ? false : admin,
    adminTokenSha256: str(values, 'admin-token-sha256', spec),
    redis: str(values, 'redis', spec),
    responseCache: onOff(values, 'response-cache'),
    cacheTtlMs: num(values, 'cache-ttl-ms', spec, { min: 1, integer: true }),
    cacheL1MaxBytes: num(values, 'cache-max-bytes', spec, { min: 0, integer: true }),
    cacheKeyPrefix: str(values, 'cache-key-prefix', spec),
    redisTimeoutMs: num(values, 'redis-timeout-ms', spec, { min: 1, integer: true }),
    advertiseAddress: str(values, 'advertise', spec),
    discoveryPrefix: str(values, 'discovery-prefix', spec),
    registrationTtlMs: num(values, 'registration-ttl-ms', spec, { min: 100, integer: true }),
    heartbeatMs: num(values, 'heartbeat-ms', spec, { min: 10, integer: true }),
    prefixIndexBlocks: num(values, 'prefix-index-blocks', spec, { min: 1, integer: true }),
    drainHandbackMs: num(values, 'drain-handback-ms', spec, { min: 0, integer: true }),
    logger: log,
  });
  const grace = num(values, 'drain-grace-ms', spec, { min: 0, integer: true }) ?? DEFAULT_DRAIN_GRACE_MS;
  process.stdout.write(
    `llmmesh sidecar listening on ${sidecar.address}, engine ${engineUrl}` +
      (sidecar.adminUrl ? `, admin ${sidecar.adminUrl}` : '') +
      '\n',
  );
  sidecar.registration?.events.once('registered', () => {
    process.stdout.write(`llmmesh sidecar registered for redis discovery as ${sidecar.registration?.key}\n`);
  });
  await untilStopped('sidecar', async (reason) => {
    log.info('stopping', { reason, graceMs: grace });
    await sidecar.drain(grace);
    await telemetry.shutdown();
  });
  return 0;
}

function tlsFromFlags(values: ParsedOptions): ServerTlsFiles | undefined {
  const certFile = str(values, 'tls-cert', sidecarCommand);
  const keyFile = str(values, 'tls-key', sidecarCommand);
  const clientCaFile = str(values, 'tls-client-ca', sidecarCommand);
  if (!certFile && !keyFile) {
    if (clientCaFile) throw new UsageError('sidecar: --tls-client-ca needs --tls-cert and --tls-key');
    return undefined;
  }
  if (!certFile || !keyFile) throw new UsageError('sidecar: --tls-cert and --tls-key go together');
  return clientCaFile ? { certFile, keyFile, clientCaFile } : { certFile, keyFile };
}
