/**
 * A real `llmmesh.v1.Engine` gRPC server on loopback whose behaviour a test
 * chooses per request, and whose load reports (prefix index included) the
 * test pushes: failures before or after the first token, stalls, saturation.
 * `close()` fails the test when a generation stream is still open.
 */

import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { EngineHandlers } from '../../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk } from '../../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest__Output } from '../../common/generated/llmmesh/v1/GenerateRequest.js';
import type { LoadReport } from '../../common/generated/llmmesh/v1/LoadReport.js';
import type { PrefixIndexUpdate } from '../../common/generated/llmmesh/v1/PrefixIndexUpdate.js';
import type { WatchLoadRequest__Output } from '../../common/generated/llmmesh/v1/WatchLoadRequest.js';
import { type RunningGrpcServer, startGrpcServer } from '../../common/grpc-server.js';
import { ENGINE_SERVICE, loadProtos } from '../../common/proto.js';

/** What the stub does with one generation request. */
export type StubBehaviour =
  | { kind: 'ok'; tokens?: number }
  /**
   * Fails with `code` after sending `afterTokens` chunks (0: before the first
   * token); with `finished`, the last of them carries the finish reason.
   */
  | { kind: 'fail'; code: grpc.status; message?: string; afterTokens?: number; finished?: boolean }
  /** Sends nothing until the caller goes away. */
  | { kind: 'stall' };

/** One generation request the stub received. */
export interface StubRequest {
  request: GenerateRequest__Output;
  metadata: grpc.Metadata;
  /** The deadline the caller passed on (ms epoch), if any. */
  deadline: number | undefined;
}

/** A running stub. */
export interface EngineStub {
  readonly address: string;
  readonly requests: StubRequest[];
  /** Chooses the behaviour per request (default: ok with `max_tokens` or 4 tokens). */
  behave: (req: GenerateRequest__Output, metadata: grpc.Metadata) => StubBehaviour;
  /** Changes the load report and pushes it to every watcher. */
  report(change: Partial<LoadReport>): void;
  /** Pushes a prefix-index delta (and keeps the full index for new watchers). */
  prefix(update: { reset?: boolean; added?: number[]; removed?: number[]; blockChars?: number }): void;
  /** Emits `request` (StubRequest) and `watch`. */
  readonly events: EventEmitter;
  /** Streams currently open. */
  openStreams(): number;
  close(): Promise<void>;
}

/** Starts a stub Engine on `host:0` (or `host:port`) serving `model`/`version`. */
export async function startEngineStub(options: {
  model: string;
  version: string;
  host?: string;
  port?: number;
  maxNumSeqs?: number;
  /** Unchanged reports are re-sent this often (default 200 ms). */
  reportIntervalMs?: number;
}): Promise<EngineStub> {
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let sequence = 0;
  let blockChars = 64;
  const index = new Set<number>();
  const base: LoadReport = {
    model: options.model,
    version: options.version,
    servedModelName: options.model,
    ready: true,
    draining: false,
    inFlight: 0,
    queued: 0,
    engine: { numRequestsRunning: 0, numRequestsWaiting: 0, kvCacheUsagePerc: 0 },
    capacity: { maxNumSeqs: options.maxNumSeqs ?? 256, numGpuBlocks: 1000, blockSize: 16, maxModelLen: 8192 },
  };
  const watchers = new Set<grpc.ServerWritableStream<WatchLoadRequest__Output, LoadReport>>();
  const open = new Set<grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>>();
  const requests: StubRequest[] = [];
  const send = (prefixIndex?: PrefixIndexUpdate) => {
    for (const w of watchers) w.write({ ...base, sequence: ++sequence, prefixIndex: prefixIndex ?? null });
  };

  const stub: EngineStub = {
    address: '',
    requests,
    events,
    behave: (req) => ({ kind: 'ok', tokens: req.sampling?.maxTokens || 4 }),
    report(change) {
      Object.assign(base, change);
      send();
    },
    prefix(u) {
      if (u.reset) index.clear();
      if (u.blockChars) blockChars = u.blockChars;
      for (const h of u.removed ?? []) index.delete(h);
      for (const h of u.added ?? []) index.add(h);
      send({ reset: u.reset ?? false, added: u.added ?? [], removed: u.removed ?? [], blockChars });
    },
    openStreams: () => open.size,
    close: async () => {},
  };

  const handlers: EngineHandlers = {
    WatchLoad(call) {
      watchers.add(call);
      const stop = () => watchers.delete(call);
      call.once('cancelled', stop);
      call.once('close', stop);
      call.once('error', stop);
      call.write({
        ...base,
        sequence: ++sequence,
        prefixIndex: { reset: true, added: [...index], removed: [], blockChars },
      });
      events.emit('watch');
    },
    GenerateStream(call) {
      const deadline = call.getDeadline();
      const r: StubRequest = {
        request: call.request,
        metadata: call.metadata,
        deadline:
          deadline instanceof Date
            ? deadline.getTime()
            : Number.isFinite(deadline)
              ? Number(deadline)
              : undefined,
      };
      requests.push(r);
      open.add(call);
      let done = false;
      const finish = () => {
        done = true;
        open.delete(call);
        events.emit('stream-closed');
      };
      call.once('cancelled', finish);
      events.emit('request', r);
      const b = stub.behave(call.request, call.metadata);
      if (b.kind === 'stall') return;
      const tokens = b.kind === 'ok' ? (b.tokens ?? 4) : (b.afterTokens ?? 0);
      let i = 0;
      const step = () => {
        if (done) return;
        if (i < tokens) {
          const chunk: GenerateChunk = { text: ` t${i}` };
          if (i === 0) chunk.modelVersion = options.version;
          if ((b.kind === 'ok' || b.finished) && i === tokens - 1) {
            chunk.finishReason = 'FINISH_REASON_LENGTH';
            chunk.usage = { promptTokens: 3, completionTokens: tokens, cachedTokens: 0 };
          }
          i++;
          call.write(chunk);
          setImmediate(step);
          return;
        }
        finish();
        if (b.kind === 'fail')
          call.emit('error', { code: b.code, details: b.message ?? `stub ${grpc.status[b.code]}` });
        else call.end();
      };
      setImmediate(step);
    },
  };

  const server: RunningGrpcServer = await startGrpcServer({
    address: `${options.host ?? '127.0.0.1'}:${options.port ?? 0}`,
    services: [{ definition: loadProtos().engine.Engine.service, implementation: handlers }],
    reflect: [ENGINE_SERVICE],
  });
  server.setHealth(ENGINE_SERVICE, 'SERVING');
  // Like a sidecar: a report at least every interval, so watchers never see it stale.
  const heartbeat = setInterval(() => send(), options.reportIntervalMs ?? 200);
  heartbeat.unref();
  return Object.assign(stub, {
    address: server.address,
    close: async () => {
      clearInterval(heartbeat);
      // Cancellations travel a socket: give them a moment before calling them leaks.
      if (open.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, 2_000);
          function done() {
            clearTimeout(timer);
            events.off('stream-closed', check);
            resolve();
          }
          function check() {
            if (open.size === 0) done();
          }
          events.on('stream-closed', check);
        });
      }
      const leaked = open.size;
      for (const w of watchers) w.end();
      await server.shutdown(0);
      if (leaked > 0)
        throw new Error(`engine stub ${server.address}: ${leaked} generation stream(s) left open`);
    },
  });
}
