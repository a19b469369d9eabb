/**
 * Calling a sidecar directly over gRPC (`llmmesh.v1.Engine`), as a router
 * does: streams with their response metadata, and load watchers that apply
 * prefix-index updates the way a router must.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { EngineClient } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import type { LoadReport__Output } from '../common/generated/llmmesh/v1/LoadReport.js';
import { loadProtos } from '../common/proto.js';

/** A gRPC client of one sidecar. */
export function createSidecarClient(address: string): EngineClient {
  const { engine } = loadProtos();
  return new engine.Engine(address, grpc.credentials.createInsecure()) as unknown as EngineClient;
}

/** What one GenerateStream call produced. */
export interface StreamResult {
  chunks: GenerateChunk__Output[];
  /** Initial metadata (headers). */
  headers: grpc.Metadata | undefined;
  text: string;
}

/** Runs one GenerateStream to the end; rejects with the gRPC error. */
export function generate(
  client: EngineClient,
  req: GenerateRequest,
  options: {
    metadata?: Record<string, string>;
    signal?: AbortSignal;
    onChunk?: (c: GenerateChunk__Output) => void;
  } = {},
): Promise<StreamResult> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(options.metadata ?? {})) md.set(k, v);
  return new Promise((resolve, reject) => {
    const call = client.GenerateStream(req, md);
    const chunks: GenerateChunk__Output[] = [];
    let headers: grpc.Metadata | undefined;
    options.signal?.addEventListener('abort', () => call.cancel(), { once: true });
    call.on('metadata', (m: grpc.Metadata) => {
      headers = m;
    });
    call.on('data', (c: GenerateChunk__Output) => {
      chunks.push(c);
      options.onChunk?.(c);
    });
    call.on('error', reject);
    call.on('end', () => resolve({ chunks, headers, text: chunks.map((c) => c.text).join('') }));
  });
}

/** The cache result header of a stream. */
export function cacheHeader(r: StreamResult): string {
  return String(r.headers?.get('x-llmmesh-cache')[0] ?? '');
}

/** A WatchLoad stream held open by a test. */
export interface LoadWatcher {
  readonly reports: LoadReport__Output[];
  /** The prefix index as this watcher's updates built it. */
  readonly index: Set<number>;
  /** Emits `report` for each report (after the index was updated). */
  readonly events: EventEmitter;
  /** The last report received. */
  last(): LoadReport__Output | undefined;
  /** Resolves with the first report (from now on, or the last one) satisfying `match`. */
  until(
    match: (r: LoadReport__Output) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<LoadReport__Output>;
  /** Resolves when the stream ends or fails. */
  readonly closed: Promise<void>;
  cancel(): void;
}

/** Opens a load watch on `client`. */
export function watchLoad(client: EngineClient, watcherId = 'test'): LoadWatcher {
  const call = client.WatchLoad({ watcherId });
  const reports: LoadReport__Output[] = [];
  const index = new Set<number>();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  call.on('data', (r: LoadReport__Output) => {
    const u = r.prefixIndex;
    if (u) {
      if (u.reset) index.clear();
      for (const h of u.removed) index.delete(Number(h));
      for (const h of u.added) index.add(Number(h));
    }
    reports.push(r);
    events.emit('report', r);
  });
  const closed = new Promise<void>((resolve) => {
    call.on('error', () => resolve());
    call.on('end', () => resolve());
  });
  return {
    reports,
    index,
    events,
    closed,
    last: () => reports.at(-1),
    until(match, what, timeoutMs = 10_000) {
      const last = reports.at(-1);
      if (last && match(last)) return Promise.resolve(last);
      return new Promise((resolve, reject) => {
        const on = (r: LoadReport__Output) => {
          if (!match(r)) return;
          clearTimeout(timer);
          events.off('report', on);
          resolve(r);
        };
        const timer = setTimeout(() => {
          events.off('report', on);
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for a report: ${what}; last: ${JSON.stringify(reports.at(-1))}`,
            ),
          );
        }, timeoutMs);
        events.on('report', on);
      });
    },
    cancel: () => call.cancel(),
  };
}
