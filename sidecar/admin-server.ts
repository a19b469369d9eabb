/**
 * The sidecar's admin HTTP server, on the shared admin server: `/metrics`
 * (Prometheus text), `/healthz` (the process is up: a liveness probe),
 * `/readyz` (the engine is ready and the pod is not draining: a readiness
 * probe) and `/status` (the current load report as JSON).
 */
import {
  type AdminHttpServer,
  adminDisabled,
  jsonReply,
  startAdminHttp,
  textReply,
} from '../common/admin-http.js';

export { adminDisabled };

/** What the admin server serves; provided by the sidecar. */
export interface SidecarAdminSource {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Ready, or the reason it is not. */
  readiness(): { ready: boolean; reason: string };
  status(): unknown;
}

/** A running admin server. */
export type SidecarAdminServer = AdminHttpServer;

/** Starts the admin server on `address` (`host:port`, port 0 allowed); `tokenSha256` guards all but the probes. */
export function startSidecarAdmin(
  address: string,
  source: SidecarAdminSource,
  options: { tokenSha256?: string } = {},
): Promise<SidecarAdminServer> {
  return startAdminHttp(
    address,
    {
      '/metrics': () => source.metrics(),
      '/healthz': () => textReply('ok\n'),
      '/readyz': () => {
        const r = source.readiness();
        return r.ready ? textReply('ready\n') : textReply(`not ready: ${r.reason}\n`, 503);
      },
      '/status': () => jsonReply(source.status()),
    },
    options,
  );
}
