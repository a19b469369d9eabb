/**
 * The router's admin HTTP server: `/` (the status page), `/status` and
 * `/status.json` (JSON), `/metrics` (Prometheus), `/healthz` (process up) and
 * `/readyz` (at least one endpoint ready), on the shared admin server; and
 * `POST /canary/{pause,resume,promote,rollback}` with `{"model": M}`
 * (router/canary/admin.ts).
 */
import { type AdminHttpServer, jsonReply, startAdminHttp, textReply } from '../../common/admin-http.js';
import { type CanaryControl, canaryActions } from '../canary/admin.js';
import { STATUS_PAGE_HTML } from './status-page.js';

/** What the admin server serves; provided by the router. */
export interface AdminSource {
  metrics(): Promise<{ contentType: string; body: string }>;
  status(): unknown;
  ready(): boolean;
  /** Operator actions on canary progressions. */
  canary?: CanaryControl;
}

/** A running admin server. */
export type AdminServer = AdminHttpServer;

/** Options of {@link startAdminServer}. */
export interface AdminOptions {
  /**
   * SHA-256 (hex) of a token required as `Authorization: Bearer <token>` on
   * everything but `/healthz` and `/readyz` (which probes must reach).
   */
  tokenSha256?: string;
}

/** Starts the admin server on `address` (`host:port`, port 0 allowed). */
export function startAdminServer(
  address: string,
  source: AdminSource,
  options: AdminOptions = {},
): Promise<AdminServer> {
  const status = () => jsonReply(source.status());
  return startAdminHttp(
    address,
    {
      '/': () => ({ contentType: 'text/html; charset=utf-8', body: STATUS_PAGE_HTML }),
      '/status.json': status,
      '/status': status,
      '/metrics': () => source.metrics(),
      '/healthz': () => textReply('ok\n'),
      '/readyz': () => (source.ready() ? textReply('ready\n') : textReply('no ready endpoint\n', 503)),
    },
    { ...options, actions: source.canary ? canaryActions(source.canary) : undefined },
  );
}
