/**
 * Small helpers for `node:http`: read a request body with a size limit, send
 * a JSON or text response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { badRequest, SimHttpError } from './errors.js';

/** Request bodies larger than this are refused (prompts are big, but not this big). */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** Reads the whole body; rejects with HTTP 413 past `limitBytes`. */
export function readBody(req: IncomingMessage, limitBytes = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) {
        reject(new SimHttpError(413, { detail: 'Request Entity Too Large' }, 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    // A client that goes away mid-upload: nothing to answer, but do not hang.
    req.on('close', () => {
      if (!req.complete)
        reject(new SimHttpError(400, { detail: 'Client disconnected' }, 'client disconnected'));
    });
  });
}

/** Reads and parses a JSON body; invalid JSON is a 400 as in vLLM. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const body = await readBody(req);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw badRequest('JSON decode error');
  }
}

/** Sends `body` as `application/json` (compact, as FastAPI does). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  sendText(res, status, text, 'application/json', headers);
}

/** Sends a text body with the given content type; an empty body when `text` is ''. */
export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  contentType: string | undefined,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (res.destroyed || res.headersSent) return;
  const all: Record<string, string | number> = { ...headers, 'content-length': Buffer.byteLength(text) };
  if (contentType) all['content-type'] = contentType;
  res.writeHead(status, all);
  res.end(text);
}
