/** Binding the admin HTTP servers of router and sidecar, with errors that name the address. */
import type http from 'node:http';
import { formatHostPort, parseHostPort } from './address.js';

/** A listening HTTP server. */
export interface ListeningHttpServer {
  /** Base URL to reach it (`0.0.0.0` and `::` shown as 127.0.0.1). */
  readonly url: string;
  readonly port: number;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/** Listens on `address` (`host:port`, port 0 allowed); `what` names the server in errors. */
export async function listenHttp(
  server: http.Server,
  address: string,
  what: string,
): Promise<ListeningHttpServer> {
  const { host, port } = parseHostPort(address, what);
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `cannot listen on ${address} (${what}): address already in use`
            : `cannot listen on ${address} (${what}): ${err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const boundPort = typeof bound === 'object' && bound ? bound.port : port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    url: `http://${formatHostPort(urlHost, boundPort)}`,
    port: boundPort,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
