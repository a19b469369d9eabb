/**
 * Loads the llmmesh.v1 protos at run time (grpc-js + proto-loader) and exposes
 * the service definitions and client constructors with their generated types.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { decodeChunk, encodeChunk } from './chunk-codec.js';
import { RelayChunk } from './chunk-relay.js';
import type { ProtoGrpcType as EngineProto } from './generated/engine.js';
import type { ProtoGrpcType as InferenceProto } from './generated/inference.js';
import type { EngineClient } from './generated/llmmesh/v1/Engine.js';
import type { GenerateChunk } from './generated/llmmesh/v1/GenerateChunk.js';
import type { GenerateRequest, GenerateRequest__Output } from './generated/llmmesh/v1/GenerateRequest.js';

/** proto-loader options; they must match those used by `npm run gen:proto`. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The files of the llmmesh.v1 package, relative to the proto root. */
export const PROTO_FILES = ['llmmesh/v1/inference.proto', 'llmmesh/v1/engine.proto'] as const;

/** Finds the `proto/` directory from source (`common/`) and from build output (`dist/common/`). */
export function protoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, PROTO_FILES[0]))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('cannot find proto/llmmesh/v1/inference.proto next to the llmmesh installation');
}

/** Everything the servers and clients need from the protos. */
export interface LoadedProtos {
  /** The package definition of both files, also used for server reflection. */
  readonly packageDefinition: protoLoader.PackageDefinition;
  readonly inference: InferenceProto['llmmesh']['v1'];
  readonly engine: EngineProto['llmmesh']['v1'];
  /** The router's Engine client: `GenerateStream` yields {@link RelayChunk}s. */
  readonly RelayEngine: RelayEngineClientConstructor;
}

/** An Engine client whose `GenerateStream` yields chunks as received (common/chunk-relay.ts). */
export type RelayEngineClient = Omit<EngineClient, 'GenerateStream' | 'generateStream'> & {
  GenerateStream(
    argument: GenerateRequest,
    metadata: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientReadableStream<RelayChunk>;
};

export type RelayEngineClientConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => RelayEngineClient;

let loaded: LoadedProtos | undefined;

/**
 * Loads the protos once per process. The result is immutable descriptors, so
 * sharing it is safe (a cache). The only other module state here is the
 * request bytes kept beside decoded requests (weak maps: they go with them).
 */
export function loadProtos(): LoadedProtos {
  if (loaded) return loaded;
  const packageDefinition = protoLoader.loadSync([...PROTO_FILES], {
    ...PROTO_LOADER_OPTIONS,
    includeDirs: [protoRoot()],
  });
  useChunkCodec(packageDefinition);
  keepRequestBytes(packageDefinition);
  const grpcObject = grpc.loadPackageDefinition(packageDefinition);
  const inference = (grpcObject as unknown as InferenceProto).llmmesh.v1;
  const engine = (grpcObject as unknown as EngineProto).llmmesh.v1;
  loaded = { packageDefinition, inference, engine, RelayEngine: relayEngineClient(engine.Engine.service) };
  return loaded;
}

/** `Engine.GenerateStream`'s path. */
const ENGINE_GENERATE_PATH = '/llmmesh.v1.Engine/GenerateStream';

/**
 * The bytes a request goes to an engine as, when they are known without
 * encoding it (see {@link setWireBytes}). Keyed by the request object, so a
 * copy of it (`{ ...request, continuation }`) is encoded as usual.
 */
const wireBytes = new WeakMap<object, Buffer>();
/** A `GenerateRequest` as received (see {@link takeReceivedBytes}). */
const received = new WeakMap<object, Buffer>();

/**
 * The bytes `req` was decoded from, when it arrived on `Inference.Generate`
 * or `Inference.GenerateStream` of this process; given once (they are not
 * kept for the rest of the request's life).
 */
export function takeReceivedBytes(req: GenerateRequest__Output): Buffer | undefined {
  const bytes = received.get(req);
  if (bytes) received.delete(req);
  return bytes;
}

/**
 * Declares `bytes` the encoding of `req` on the Engine hop: the relay client
 * writes them instead of encoding it. `req` must not change afterwards.
 */
export function setWireBytes(req: GenerateRequest__Output, bytes: Buffer): void {
  wireBytes.set(req, bytes);
}

/** Keeps the bytes of each `GenerateRequest` the Inference service decodes (a router relays them as they came). */
function keepRequestBytes(definition: protoLoader.PackageDefinition): void {
  const inference = definition['llmmesh.v1.Inference'] as protoLoader.ServiceDefinition;
  for (const name of ['Generate', 'GenerateStream']) {
    const method = inference[name];
    if (!method) throw new Error(`llmmesh.v1 protos without Inference.${name}`);
    const decode = method.requestDeserialize;
    method.requestDeserialize = (bytes: Buffer) => {
      const req = decode(bytes) as object;
      received.set(req, bytes);
      return req;
    };
  }
}

/** An Engine client constructor whose `GenerateStream` reads each chunk into a {@link RelayChunk}. */
function relayEngineClient(service: grpc.ServiceDefinition): RelayEngineClientConstructor {
  const generate = service.GenerateStream as grpc.MethodDefinition<GenerateRequest, unknown>;
  const encode = generate.requestSerialize;
  relaySerialize = (req: GenerateRequest) => wireBytes.get(req) ?? encode(req);
  const relay = { ...generate, requestSerialize: relaySerialize, responseDeserialize: readRelayChunk };
  return grpc.makeGenericClientConstructor(
    { ...service, GenerateStream: relay },
    'Engine',
  ) as unknown as RelayEngineClientConstructor;
}

const readRelayChunk = (bytes: Buffer) => new RelayChunk(bytes);
let relaySerialize: (req: GenerateRequest) => Buffer;

/**
 * Opens `Engine.GenerateStream` on a relay client: its chunks arrive as
 * {@link RelayChunk}s and a request with known bytes ({@link setWireBytes})
 * goes out as them. The call is made on the client directly, without the
 * generated method's argument shuffling, and without the stack trace grpc-js
 * captures at every call to decorate a failed call's error (a proxy making
 * one call per request pays for it on every request; the router reports
 * upstream failures by status, never by stack).
 */
export function openRelayStream(
  client: RelayEngineClient,
  request: GenerateRequest,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
): grpc.ClientReadableStream<RelayChunk> {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return (client as unknown as grpc.Client).makeServerStreamRequest(
      ENGINE_GENERATE_PATH,
      relaySerialize,
      readRelayChunk,
      request,
      metadata,
      options,
    );
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * What `Inference.GenerateStream` writes: a message as bytes (a relayed
 * chunk) as is, any other value through the hand-written codec.
 */
function serializeChunk(value: GenerateChunk | Buffer): Buffer {
  return Buffer.isBuffer(value) ? value : encodeChunk(value);
}

/**
 * Streamed chunks through the hand-written codec (common/chunk-codec.ts):
 * reading `Engine.GenerateStream` and writing `Inference.GenerateStream`
 * (where a relayed chunk's bytes go out as they are). The other directions
 * (an engine writing, a client reading) keep proto-loader's codec; the two
 * are wire-compatible.
 */
function useChunkCodec(definition: protoLoader.PackageDefinition): void {
  const engine = (definition['llmmesh.v1.Engine'] as protoLoader.ServiceDefinition).GenerateStream;
  const inference = (definition['llmmesh.v1.Inference'] as protoLoader.ServiceDefinition).GenerateStream;
  if (!engine || !inference) throw new Error('llmmesh.v1 protos without GenerateStream');
  engine.responseDeserialize = decodeChunk;
  inference.responseSerialize = serializeChunk as (value: object) => Buffer;
}

/** Fully qualified service names, as clients and health checks see them. */
export const INFERENCE_SERVICE = 'llmmesh.v1.Inference';
export const ENGINE_SERVICE = 'llmmesh.v1.Engine';
