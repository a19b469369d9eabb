/**
 * The router's admin HTTP server: `/metrics` (Prometheus), `/status` (JSON),
 * `/healthz` (process up) and `/readyz` (at least one endpoint ready).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { listenHttp } from '../../common/http-listen.js';
import { STATUS_PAGE_HTML } from './status-page.js';

/** What the admin server serves; provided by the router. */
export interface AdminSource {
  metrics(): Promise<{ contentType: string; body: string }>;
  status(): unknown;
  ready(): boolean;
}

/** A running admin server. */
export interface AdminServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Options of {@link startAdminServer}. */
export interface AdminOptions {
  /**
   * SHA-256 (hex) of a token required as `Authorization: Bearer <token>` on
   * everything but `/healthz` and `/readyz` (which probes must reach).
   */
  tokenSha256?: string;
}

/** Starts the admin server on `address` (`host:port`, port 0 allowed). */
export async function startAdminServer(
  address: string,
  source: AdminSource,
  options: AdminOptions = {},
): Promise<AdminServer> {
  const token = options.tokenSha256 ? Buffer.from(options.tokenSha256.toLowerCase(), 'hex') : undefined;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'text/plain', 'method not allowed\n');
      return;
    }
    if (token && path !== '/healthz' && path !== '/readyz') {
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const presented = createHash('sha256')
        .update(m?.[1] ?? '')
        .digest();
      if (!m || !timingSafeEqual(presented, token)) {
        send(401, 'text/plain', 'admin token required: Authorization: Bearer <token>\n', {
          'www-authenticate': 'Bearer realm="llmmesh-admin"',
        });
        return;
      }
    }
    switch (path) {
      case '/':
        send(200, 'text/html; charset=utf-8', STATUS_PAGE_HTML);
        return;
      case '/healthz':
        send(200, 'text/plain', 'ok\n');
        return;
      case '/readyz': {
        const ok = source.ready();
        send(ok ? 200 : 503, 'text/plain', ok ? 'ready\n' : 'no ready endpoint\n');
        return;
      }
      case '/status':
      case '/status.json':
        send(200, 'application/json', `${JSON.stringify(source.status(), null, 2)}\n`);
        return;
      case '/metrics':
        source.metrics().then(
          (m) => send(200, m.contentType, m.body),
          (err: unknown) => send(500, 'text/plain', `metrics failed: ${String(err)}\n`),
        );
        return;
      default:
        send(404, 'text/plain', 'not found: try /, /status.json, /metrics, /healthz, /readyz\n');
    }
  });
  return listenHttp(server, address, 'admin');
}
