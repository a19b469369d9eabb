/**
 * The router's admin HTTP server: `/metrics` (Prometheus), `/status` (JSON),
 * `/healthz` (process up) and `/readyz` (at least one endpoint ready).
 */
import http from 'node:http';
import { parseHostPort } from '../../common/address.js';

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

/** Starts the admin server on `address` (`host:port`, port 0 allowed). */
export async function startAdminServer(address: string, source: AdminSource): Promise<AdminServer> {
  const { host, port } = parseHostPort(address, 'admin');
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
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
        const ok = source.ready();
        send(ok ? 200 : 503, 'text/plain', ok ? 'ready\n' : 'no ready endpoint\n');
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
        send(404, 'text/plain', 'not found: try /status, /metrics, /healthz, /readyz\n');
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `cannot listen on ${address} (admin): address already in use`
            : `cannot listen on ${address} (admin): ${err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const boundPort = typeof bound === 'object' && bound ? bound.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return {
    url: `http://${urlHost}:${boundPort}`,
    port: boundPort,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
