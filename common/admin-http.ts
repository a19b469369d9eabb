/**
 * The admin HTTP server of the router and the sidecar: a few read-only
 * routes (metrics, probes, status) behind an optional bearer token. Both
 * processes use this one server, so probes, `HEAD`, errors and the token
 * behave the same on either.
 *
 * - `GET` and `HEAD` only (405 otherwise); `HEAD` answers with the headers
 *   `GET` would send (`content-length` included) and no body.
 * - With a token, every route but the probe routes (`/healthz`, `/readyz`,
 *   which kubelet must reach) needs `Authorization: Bearer <token>`; the
 *   server keeps only the token's SHA-256 and compares in constant time.
 * - Unknown paths get 404 with the list of routes; a route that throws gets 500.
 * - Actions (`POST`, e.g. the router's canary control) take a JSON body and need
 *   `content-type: application/json` (a cross-site form cannot send it) and the
 *   token when one is set; a body over 64 KiB is refused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { type ListeningHttpServer, listenHttp } from './http-listen.js';

/** What a route answers. */
export interface AdminReply {
  /** Default 200. */
  status?: number;
  contentType: string;
  body: string;
}

/** Routes by exact path (no query string); a route may answer asynchronously. */
export type AdminRoutes = Record<string, () => AdminReply | Promise<AdminReply>>;

/** Actions by exact path, answering `POST` with a parsed JSON body. */
export type AdminActions = Record<string, (body: unknown) => AdminReply | Promise<AdminReply>>;

const MAX_ACTION_BODY_BYTES = 64 * 1024;

/** Options of {@link startAdminHttp}. */
export interface AdminHttpOptions {
  /** SHA-256 (hex) of the bearer token required on every route but the probes. */
  tokenSha256?: string;
  /** Routes reachable without the token (default `/healthz`, `/readyz`). */
  openPaths?: readonly string[];
  /** `POST` routes. */
  actions?: AdminActions;
}

/** A running admin server. */
export type AdminHttpServer = ListeningHttpServer;

/** Paths probes use; never behind the token. */
export const PROBE_PATHS: readonly string[] = ['/healthz', '/readyz'];

/** True when an admin address means "no admin server" (absent, false, empty, `0`, `off`, `false`, `none`). */
export function adminDisabled(address: string | false | undefined): boolean {
  if (address === undefined || address === false) return true;
  const v = address.trim().toLowerCase();
  return v === '' || v === '0' || v === 'off' || v === 'false' || v === 'none';
}

/** Plain-text reply. */
export function textReply(body: string, status = 200): AdminReply {
  return { status, contentType: 'text/plain', body };
}

/** Pretty JSON reply. */
export function jsonReply(value: unknown): AdminReply {
  return { contentType: 'application/json', body: `${JSON.stringify(value, null, 2)}\n` };
}

/** Starts the admin server on `address` (`host:port`, port 0 allowed); `name` names it in errors. */
export async function startAdminHttp(
  address: string,
  routes: AdminRoutes,
  options: AdminHttpOptions = {},
  name = 'admin',
): Promise<AdminHttpServer> {
  if (options.tokenSha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(options.tokenSha256)) {
    throw new Error(`${name} token: expected the token's SHA-256 as 64 hex digits`);
  }
  const token = options.tokenSha256 ? Buffer.from(options.tokenSha256.toLowerCase(), 'hex') : undefined;
  const open = new Set(options.openPaths ?? PROBE_PATHS);
  const notFound = `not found: try ${Object.keys(routes).join(', ')}\n`;

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const send = (reply: AdminReply, headers: Record<string, string> = {}) => {
      const body = Buffer.from(reply.body, 'utf8');
      res.writeHead(reply.status ?? 200, {
        'content-type': reply.contentType,
        'content-length': String(body.length),
        'cache-control': 'no-store',
        ...headers,
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const action =
      req.method === 'POST' && options.actions && Object.hasOwn(options.actions, path)
        ? options.actions[path]
        : undefined;
    if (req.method !== 'GET' && req.method !== 'HEAD' && !action) {
      send(textReply('method not allowed\n', 405), { allow: 'GET, HEAD' });
      return;
    }
    if (token && (action || !open.has(path)) && !bearerMatches(req.headers.authorization, token)) {
      send(textReply('admin token required: Authorization: Bearer <token>\n', 401), {
        'www-authenticate': 'Bearer realm="llmmesh-admin"',
      });
      return;
    }
    if (action) {
      runAction(req, action).then(send, (err: unknown) =>
        send(textReply(`${path.slice(1)} failed: ${String(err)}\n`, 500)),
      );
      return;
    }
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (!route) {
      send(textReply(notFound, 404));
      return;
    }
    Promise.resolve()
      .then(route)
      .then(
        (reply) => send(reply),
        (err: unknown) => send(textReply(`${path.slice(1)} failed: ${String(err)}\n`, 500)),
      );
  });
  return listenHttp(server, address, name);
}

async function runAction(req: http.IncomingMessage, action: AdminActions[string]): Promise<AdminReply> {
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    req.resume();
    return textReply('expected content-type: application/json\n', 415);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ACTION_BODY_BYTES) return textReply('request body too large\n', 413);
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
  } catch (err) {
    return textReply(`body is not JSON: ${(err as Error).message}\n`, 400);
  }
  return action(body);
}

function bearerMatches(header: string | undefined, tokenSha256: Buffer): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return false;
  const presented = createHash('sha256')
    .update(m[1] ?? '')
    .digest();
  return presented.length === tokenSha256.length && timingSafeEqual(presented, tokenSha256);
}
