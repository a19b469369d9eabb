/**
 * The router's composition root: the objects of router/core.ts, the request
 * pipeline (lifecycle → director → upstream attempts) behind the gRPC
 * handlers, the admin server and config hot reload. The request path itself
 * lives in router/request/ and router/upstream/.
 */
import { type RunningGrpcServer, startGrpcServer } from '../common/grpc-server.js';
import { INFERENCE_SERVICE, loadProtos } from '../common/proto.js';
import { serverCredentials } from '../common/tls.js';
import { type AdminServer, startAdminServer } from './admin/server.js';
import type { Router, RouterOptions } from './api.js';
import { createConfigReloads } from './config-reload.js';
import { createRouterCore } from './core.js';
import { createInferenceHandlers } from './grpc/handlers.js';
import { createDirector } from './request/director.js';
import { createLifecycle } from './request/lifecycle.js';
import { usable } from './scheduling/load.js';
import { routerStatus } from './status.js';

export type { Router, RouterOptions } from './api.js';
export type { ConfigReloadEvent } from './config-reload.js';
export type { RouterStatus } from './status.js';

/** Starts the router: gRPC API, discovery, endpoint watching and (optionally) the admin server. */
export async function startRouter(options: RouterOptions): Promise<Router> {
  const config = options.config;
  const core = createRouterCore(options);
  const { ctx, gauges, events } = core;
  const { datastore, endpoints, metrics, log, now, split, admission, retryBudget, breakers } = ctx;
  const run = createLifecycle(ctx, createDirector(ctx), options.onRequestTrace);

  let server: RunningGrpcServer;
  try {
    server = await startGrpcServer({
      credentials: config.tls
        ? serverCredentials(
            {
              certFile: config.tls.cert_file,
              keyFile: config.tls.key_file,
              clientCaFile: config.tls.client_ca_file,
            },
            'tls',
          )
        : undefined,
      serverOptions: { 'grpc.max_receive_message_length': config.limits.max_request_bytes },
      address: options.listen ?? config.listen,
      services: [
        {
          definition: loadProtos().inference.Inference.service,
          implementation: createInferenceHandlers(run, datastore, endpoints),
        },
      ],
      reflect: [INFERENCE_SERVICE],
    });
  } catch (err) {
    await core.close();
    throw err;
  }

  const reloads = createConfigReloads({ apply: (next) => datastore.apply(next), metrics, log, events, now });
  const status = () =>
    routerStatus({
      listen: () => server.address,
      datastore,
      endpoints,
      split,
      admission,
      retryBudget,
      metrics,
      reloads: reloads.status,
      canary: ctx.canary,
    });

  let admin: AdminServer | undefined;
  const adminAddress = options.admin === undefined ? config.admin : options.admin;
  if (adminAddress !== false) {
    try {
      admin = await startAdminServer(
        adminAddress,
        {
          metrics: async () => {
            gauges.refresh();
            return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
          },
          status,
          ready: () => endpoints.snapshot().endpoints.some(usable),
          canary: ctx.canary,
        },
        { tokenSha256: config.admin_token_sha256 },
      );
    } catch (err) {
      await server.shutdown(0);
      await core.close();
      throw err;
    }
  }
  reloads.watch(options.watch?.path, options.watch?.load, options.watch?.debounceMs);

  server.setHealth('', 'SERVING');
  gauges.attach((serving) => server.setHealth(INFERENCE_SERVICE, serving ? 'SERVING' : 'NOT_SERVING'));
  log.info('router listening', {
    address: server.address,
    admin: admin?.url,
    discovery: config.discovery.kind,
  });

  return {
    address: server.address,
    port: server.port,
    adminUrl: admin?.url,
    endpoints,
    metrics,
    breakers,
    admission,
    events,
    config: () => datastore.config(),
    applyConfig: (next) => datastore.apply(next),
    reloadConfig: () => reloads.reload(),
    status,
    async close(graceMs = 10_000) {
      reloads.close();
      await server.shutdown(graceMs);
      await core.close();
      await admin?.close();
    },
  };
}
