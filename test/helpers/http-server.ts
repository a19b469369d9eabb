/**
 * A real HTTP server on 127.0.0.1:0 whose answers a test chooses per request,
 * used to replay recorded engine output. Fails the test on close when a
 * connection is still open (no leaked sockets).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running test server. */
export interface TestHttpServer {
  url: string;
  host: string;
  /** Requests seen, in order. */
  requests: Array<{ method: string; path: string; headers: http.IncomingHttpHeaders; body: string }>;
  /** Resolves when a request's client went away before the response finished. */
  aborted: Promise<void>;
  close(): Promise<void>;
}

/** Starts a server; `handler` writes the response. */
export async function startHttpServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
): Promise<TestHttpServer> {
  let markAborted!: () => void;
  const aborted = new Promise<void>((r) => {
    markAborted = r;
  });
  const requests: TestHttpServer['requests'] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('utf8');
      requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
      res.on('close', () => {
        if (!res.writableFinished) markAborted();
      });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    aborted,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Writes a recorded SSE body the way an engine would: status 200, event-stream, chunked. */
export function replaySse(res: http.ServerResponse, body: string): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
  // Split mid-event on purpose: parsers must not depend on TCP segmentation.
  const mid = Math.floor(body.length / 2);
  res.write(body.slice(0, mid));
  setImmediate(() => res.end(body.slice(mid)));
}
