/**
 * The sidecar's admin HTTP server: `/metrics` (Prometheus text), `/healthz`
 * (the process is up: a liveness probe), `/readyz` (the engine is ready and
 * the pod is not draining: a readiness probe) and `/status` (the current load
 * report as JSON).
 */
import http from 'node:http';
import { listenHttp } from '../common/http-listen.js';

/** What the admin server serves; provided by the sidecar. */
export interface SidecarAdminSource {
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Ready, or the reason it is not. */
  readiness(): { ready: boolean; reason: string };
  status(): unknown;
}

/** A running admin server. */
export interface SidecarAdminServer {
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** True when an `--admin` value means "no admin server". */
export function adminDisabled(address: string | false | undefined): boolean {
  if (address === undefined || address === false) return true;
  const v = address.trim().toLowerCase();
  return v === '' || v === '0' || v === 'off' || v === 'false' || v === 'none';
}

/** Starts the admin server on `address` (`host:port`, port 0 allowed). */
export async function startSidecarAdmin(
  address: string,
  source: SidecarAdminSource,
): Promise<SidecarAdminServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'text/plain', 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/healthz':
        send(200, 'text/plain', 'ok\n');
        return;
      case '/readyz': {
        const r = source.readiness();
        send(r.ready ? 200 : 503, 'text/plain', r.ready ? 'ready\n' : `not ready: ${r.reason}\n`);
        return;
      }
      case '/status':
        send(200, 'application/json', `${JSON.stringify(source.status(), null, 2)}\n`);
        return;
      case '/metrics':
        source.metrics().then(
          (m) => send(200, m.contentType, m.body),
          (err: unknown) => send(500, 'text/plain', `metrics failed: ${String(err)}\n`),
        );
        return;
      default:
        send(404, 'text/plain', 'not found: try /metrics, /healthz, /readyz, /status\n');
    }
  });
  return listenHttp(server, address, 'admin');
}
