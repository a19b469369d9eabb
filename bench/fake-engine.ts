/**
 * A synthetic `llmmesh.v1.Engine` server for the router benchmarks: it
 * reports itself ready on `WatchLoad` and answers `GenerateStream` with
 * `max_tokens` chunks as fast as the caller reads them (or one chunk per
 * `itlMs`), so the router's own forwarding cost is what a run measures.
 * One server can listen on many ports: each port is one endpoint to the router.
 */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { COALESCE_BACKLOG } from '../common/coalescing.js';
import type { EngineHandlers } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest__Output } from '../common/generated/llmmesh/v1/GenerateRequest.js';
import type { LoadReport } from '../common/generated/llmmesh/v1/LoadReport.js';
import type { WatchLoadRequest__Output } from '../common/generated/llmmesh/v1/WatchLoadRequest.js';
import { loadProtos } from '../common/proto.js';

/** A prompt starting with this makes the stream send one chunk and stay open until cancelled. */
export const HOLD_PROMPT = 'hold';

/** Options of {@link startFakeEngine}. */
export interface FakeEngineOptions {
  model: string;
  version: string;
  /** Ports to listen on (one endpoint each); default one. */
  endpoints?: number;
  host?: string;
  /** Text of every chunk (default ' tok'). */
  chunkText?: string;
  /** Delay between chunks; 0 sends as fast as the reader takes them (default 0). */
  itlMs?: number;
  /**
   * Rate mode: tokens are generated at this rate per stream whether or not
   * they are read (as a real engine does), and written like a sidecar does:
   * one chunk per token, or, once COALESCE_BACKLOG tokens wait for a reader
   * that is behind, all that wait as one chunk. Overrides `itlMs`.
   */
  tokensPerMs?: number;
  /** Load report interval (default 250 ms). */
  reportIntervalMs?: number;
}

/** A running fake engine. */
export interface FakeEngine {
  /** `host:port` of each endpoint. */
  readonly addresses: string[];
  /** Streams opened and chunks written so far. */
  stats(): { streams: number; active: number; chunks: number };
  close(): Promise<void>;
}

/** Starts a fake engine. */
export async function startFakeEngine(options: FakeEngineOptions): Promise<FakeEngine> {
  const host = options.host ?? '127.0.0.1';
  const text = options.chunkText ?? ' tok';
  const itlMs = options.itlMs ?? 0;
  const counts = { streams: 0, active: 0, chunks: 0 };
  let sequence = 0;
  const report = (): LoadReport => ({
    model: options.model,
    version: options.version,
    servedModelName: options.model,
    ready: true,
    inFlight: counts.active,
    sequence: ++sequence,
    engine: { numRequestsRunning: counts.active, numRequestsWaiting: 0, kvCacheUsagePerc: 0 },
    capacity: { maxNumSeqs: 1_000_000, numGpuBlocks: 1_000_000, blockSize: 16, maxModelLen: 131_072 },
  });
  const watchers = new Set<grpc.ServerWritableStream<WatchLoadRequest__Output, LoadReport>>();
  const timer = setInterval(() => {
    for (const w of watchers) if (w.writableLength === 0) w.write(report());
  }, options.reportIntervalMs ?? 250);

  const generate = async (call: grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>) => {
    counts.streams++;
    counts.active++;
    let cancelled = false;
    call.once('cancelled', () => {
      cancelled = true;
    });
    try {
      const req = call.request;
      const n = Math.max(1, req.sampling?.maxTokens || 16);
      if (req.prompt.startsWith(HOLD_PROMPT)) {
        call.write({ text, modelVersion: options.version });
        counts.chunks++;
        if (!cancelled) await once(call, 'cancelled');
        return;
      }
      if (options.tokensPerMs) {
        await generateAtRate(call, n, options.tokensPerMs, () => cancelled);
        return;
      }
      for (let i = 0; i < n && !cancelled; i++) {
        // Token ids on every chunk, as a sidecar over vLLM sends them (exact failover needs them).
        const chunk: GenerateChunk = { text, tokenIds: [1000 + (i % 30000)] };
        if (i === 0) chunk.modelVersion = options.version;
        if (i === n - 1) {
          chunk.finishReason = 'FINISH_REASON_LENGTH';
          chunk.usage = { promptTokens: 1, completionTokens: n, cachedTokens: 0 };
        }
        counts.chunks++;
        if (!call.write(chunk)) await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
        if (itlMs > 0) await new Promise((r) => setTimeout(r, itlMs));
      }
      if (!cancelled) call.end();
    } finally {
      counts.active--;
    }
  };

  const generateAtRate = async (
    call: grpc.ServerWritableStream<GenerateRequest__Output, GenerateChunk>,
    n: number,
    tokensPerMs: number,
    isCancelled: () => boolean,
  ) => {
    const start = performance.now();
    let sent = 0;
    while (sent < n && !isCancelled()) {
      const due = Math.min(n, Math.floor((performance.now() - start) * tokensPerMs) + 1);
      if (due <= sent) {
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      // Behind by COALESCE_BACKLOG or more (the first token always alone): one chunk for all that wait.
      const count = sent > 0 && due - sent >= COALESCE_BACKLOG ? due - sent : 1;
      const chunk: GenerateChunk = {
        text: text.repeat(count),
        tokenIds: Array.from({ length: count }, (_, k) => 1000 + ((sent + k) % 30000)),
      };
      if (sent === 0) chunk.modelVersion = options.version;
      sent += count;
      if (sent === n) {
        chunk.finishReason = 'FINISH_REASON_LENGTH';
        chunk.usage = { promptTokens: 1, completionTokens: n, cachedTokens: 0 };
      }
      counts.chunks++;
      if (!call.write(chunk)) await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
    }
    if (!isCancelled()) call.end();
  };

  const handlers: EngineHandlers = {
    GenerateStream(call) {
      void generate(call);
    },
    WatchLoad(call) {
      watchers.add(call);
      const stop = () => watchers.delete(call);
      call.once('cancelled', stop);
      call.once('close', stop);
      call.once('error', stop);
      call.write(report());
    },
  };
  const server = new grpc.Server();
  server.addService(loadProtos().engine.Engine.service, handlers);
  const addresses: string[] = [];
  for (let i = 0; i < (options.endpoints ?? 1); i++) {
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    addresses.push(`${host}:${port}`);
  }
  return {
    addresses,
    stats: () => ({ ...counts }),
    close() {
      clearInterval(timer);
      for (const w of watchers) w.end();
      server.forceShutdown();
      return Promise.resolve();
    },
  };
}
