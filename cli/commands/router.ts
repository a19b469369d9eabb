/** `llmmesh router`: runs one router. */
import { createLogger } from '../../common/log.js';
import { startTelemetry } from '../../common/telemetry.js';
import { ConfigError, loadRouterConfigFile } from '../../router/config/load.js';
import { startRouter } from '../../router/server.js';
import { untilStopped } from '../lifecycle.js';
import { type CommandSpec, helpText, parseOptions, str, UsageError } from '../options.js';

export const routerCommand: CommandSpec = {
  name: 'router',
  summary: 'Run a router: the llmmesh.v1.Inference gRPC API in front of the sidecars.',
  usage: 'llmmesh router --config FILE [--check] [--listen ADDR] [--admin ADDR] [--endpoints A,B,...]',
  options: {
    config: {
      type: 'string',
      env: 'LLMMESH_CONFIG',
      valueName: 'FILE',
      description: 'Routing config (YAML); watched and hot-reloaded',
    },
    check: {
      type: 'boolean',
      description: 'Validate the config, print the problems and exit (non-zero when invalid)',
    },
    listen: {
      type: 'string',
      env: 'LLMMESH_LISTEN',
      valueName: 'ADDR',
      description: 'gRPC listen address; overrides `listen`',
    },
    admin: {
      type: 'string',
      env: 'LLMMESH_ADMIN',
      valueName: 'ADDR',
      description: 'Admin HTTP address; overrides `admin`',
    },
    endpoints: {
      type: 'string',
      env: 'LLMMESH_ENDPOINTS',
      valueName: 'A,B,...',
      description: 'Sidecar addresses (static discovery); overrides `discovery`',
    },
    'shutdown-grace-ms': {
      type: 'string',
      env: 'LLMMESH_SHUTDOWN_GRACE_MS',
      default: '30000',
      valueName: 'MS',
      description: 'How long in-flight streams may run on after SIGTERM',
    },
  },
};

/** Runs the command; returns the exit code. */
export async function runRouter(argv: string[]): Promise<number> {
  const { values } = parseOptions(routerCommand, argv);
  if (values.help) {
    process.stdout.write(helpText(routerCommand));
    return 0;
  }
  const path = str(values, 'config', routerCommand, true) as string;
  const overrides: Record<string, unknown> = {};
  const listen = str(values, 'listen', routerCommand);
  const admin = str(values, 'admin', routerCommand);
  const endpoints = str(values, 'endpoints', routerCommand);
  if (listen) overrides.listen = listen;
  if (admin) overrides.admin = admin;
  if (endpoints) {
    overrides.discovery = {
      kind: 'static',
      endpoints: endpoints
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    };
  }
  const grace = Number(str(values, 'shutdown-grace-ms', routerCommand));
  if (!Number.isFinite(grace) || grace < 0)
    throw new UsageError('router: --shutdown-grace-ms must be a number >= 0');

  const load = () => loadRouterConfigFile(path, overrides);
  if (values.check) {
    try {
      load();
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`${err.message}\n`);
        return 1;
      }
      throw err;
    }
    process.stdout.write(`${path}: ok\n`);
    return 0;
  }

  const log = createLogger('router');
  // The router watches the file (and its directory, for ConfigMap symlink
  // swaps) and keeps the last good config when an edit is invalid.
  const telemetry = startTelemetry('llmmesh-router');
  const router = await startRouter({
    config: load(),
    logger: log,
    watch: { path, load },
    tracer: telemetry.tracer,
  });
  process.on('SIGHUP', () => {
    log.info('SIGHUP: re-reading the config', { path });
    router.reloadConfig();
  });
  process.stdout.write(
    `llmmesh router listening on ${router.address}${router.adminUrl ? `, admin ${router.adminUrl}` : ''}\n`,
  );
  await untilStopped('router', async (reason) => {
    log.info('stopping', { reason, graceMs: grace });
    await router.close(grace);
    await telemetry.shutdown();
  });
  return 0;
}
