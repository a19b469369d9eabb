/**
 * The floor: a bare grpc-js pass-through of `Engine.GenerateStream` (no
 * routing, no metrics, no tracing), the least any Node gRPC proxy can cost.
 * The overhead scenario sends the same workload through it and through the
 * router, so the router's cost reads against what Node itself costs.
 */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { EngineClient, EngineHandlers } from '../common/generated/llmmesh/v1/Engine.js';
import type { GenerateChunk__Output } from '../common/generated/llmmesh/v1/GenerateChunk.js';
import { loadProtos } from '../common/proto.js';

/** A running pass-through. */
export interface PassthroughProxy {
  readonly address: string;
  close(): Promise<void>;
}

/** Listens on `listen` (`host:port`) and forwards every `Engine.GenerateStream` to `upstream`. */
export async function startPassthroughProxy(listen: string, upstream: string): Promise<PassthroughProxy> {
  const { Engine } = loadProtos().engine;
  const client = new Engine(upstream, grpc.credentials.createInsecure()) as unknown as EngineClient;
  const server = new grpc.Server();
  const handlers: EngineHandlers = {
    GenerateStream(call) {
      const up = client.GenerateStream(call.request, call.metadata);
      call.once('cancelled', () => up.cancel());
      up.on('data', (chunk: GenerateChunk__Output) => {
        if (!call.write(chunk)) {
          up.pause();
          void once(call, 'drain').then(() => up.resume());
        }
      });
      up.on('error', (err: grpc.ServiceError) => call.emit('error', err));
      up.on('end', () => call.end());
    },
    WatchLoad(call) {
      call.emit('error', {
        code: grpc.status.UNIMPLEMENTED,
        details: 'pass-through forwards GenerateStream only',
      });
    },
  };
  server.addService(Engine.service, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  const host = listen.slice(0, listen.lastIndexOf(':'));
  return {
    address: `${host}:${port}`,
    close() {
      client.close();
      return new Promise((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}
