/**
 * The floor: a bare grpc-js pass-through of `Engine.GenerateStream` (no
 * routing, no metrics, no tracing, and no protobuf: request and chunks go
 * through as raw bytes, never decoded), the least any Node gRPC proxy can
 * cost. The overhead scenario sends the same workload through it and
 * through the router, so the router's cost reads against what Node itself costs.
 */
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { RotatingClient } from '../common/rotating-client.js';

const METHOD = '/llmmesh.v1.Engine/GenerateStream';
const raw = (b: Buffer) => b;
/** No channelz bookkeeping, as on every llmmesh server and upstream channel: the floor pays no more than the router. */
const BARE = { 'grpc.enable_channelz': 0 };

/** A running pass-through. */
export interface PassthroughProxy {
  readonly address: string;
  close(): Promise<void>;
}

/** Listens on `listen` (`host:port`) and forwards every `Engine.GenerateStream` to `upstream`. */
export async function startPassthroughProxy(listen: string, upstream: string): Promise<PassthroughProxy> {
  // Its upstream calls move to a fresh connection every so many, as the router's do
  // (common/rotating-client.ts): a burst of cancels would close the connection otherwise.
  const client = new RotatingClient(
    (own) => new grpc.Client(upstream, grpc.credentials.createInsecure(), { ...BARE, ...own }),
  );
  const server = new grpc.Server(BARE);
  server.register<Buffer, Buffer>(
    METHOD,
    (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const deadline = call.getDeadline();
      const up = client.call((c) =>
        c.makeServerStreamRequest<Buffer, Buffer>(METHOD, raw, raw, call.request, call.metadata, {
          deadline: deadline === Number.POSITIVE_INFINITY ? undefined : deadline,
        }),
      );
      call.once('cancelled', () => up.cancel());
      up.on('data', (chunk: Buffer) => {
        if (!call.write(chunk)) {
          up.pause();
          void once(call, 'drain').then(() => up.resume());
        }
      });
      up.on('error', (err: grpc.ServiceError) => call.emit('error', err));
      up.on('end', () => call.end());
    },
    raw,
    raw,
    'serverStream',
  );
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
